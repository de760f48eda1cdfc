// The chart's files that follow other files of the repository are current (npm run docs writes them):
// values.schema.json's `flags` from src/config.ts, the dashboard and alerts from manifests/components/, and the
// versions from package.json. (test/integration/chart.test.ts renders the chart against manifests/.)
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { CHART_DIR, COPIED_FILES, NAMED_FLAG_VALUES, renderSchema, SCHEMA_FILE } from '../../hack/chart.ts';
import { FLAGS } from '../../src/config.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const read = (path: string) => readFileSync(path, 'utf8');

describe('charts/helmrelease-autopilot files', () => {
  it('values.schema.json lists exactly the flags of src/config.ts (run npm run docs after changing a flag)', () => {
    const current = read(SCHEMA_FILE);
    expect(current).toBe(renderSchema(current));
  });

  it.each(COPIED_FILES.map((f) => [f.copy.slice(ROOT.length + 1), f.source.slice(ROOT.length + 1)]))(
    '%s is a copy of %s (run npm run docs)',
    (copy, source) => {
      expect(read(join(ROOT, copy))).toBe(read(join(ROOT, source)));
    },
  );

  it('the named values accept what their flags accept', () => {
    const schema = JSON.parse(read(SCHEMA_FILE)) as { properties: Record<string, { enum?: string[] }> };
    const logLevel = FLAGS[NAMED_FLAG_VALUES.logLevel];
    expect(schema.properties.logLevel?.enum).toEqual(['', ...(logLevel.values ?? [])]);
    // A comma-separated string is one item of the list flag, split by the operator.
    expect(FLAGS[NAMED_FLAG_VALUES.watchNamespace].type).toBe('list');
  });

  it('the chart installs the version of the code: appVersion = package.json version = manifests/ image tag', () => {
    const chart = parse(read(join(CHART_DIR, 'Chart.yaml'))) as { appVersion: string; version: string };
    const pkg = JSON.parse(read(join(ROOT, 'package.json'))) as { version: string };
    const base = parse(read(join(ROOT, 'manifests/base/kustomization.yaml'))) as {
      images: { newTag: string }[];
    };
    expect(chart.appVersion).toBe(pkg.version);
    expect(chart.version).toBe(pkg.version);
    expect(base.images[0]?.newTag).toBe(pkg.version);
  });
});
