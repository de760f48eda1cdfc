// The shipped alerts (manifests/components/prometheusrule) are valid Prometheus rules and fire exactly when
// test/promtool/alerts.test.yaml says, proven by promtool itself (Debian's `prometheus` package; .ci/run
// installs it). A machine without promtool fails here with the install command, never skips.
import { execFile } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { array, isObject, str } from '../../src/util/narrow.ts';
import { RULES_FILE } from '../support/metrics-usage.ts';

const run = promisify(execFile);
const PROMTOOL_TESTS = join(import.meta.dirname, '..', 'promtool', 'alerts.test.yaml');

async function promtool(args: string[], cwd: string): Promise<string> {
  const bin = process.env.PROMTOOL ?? 'promtool';
  try {
    const { stdout, stderr } = await run(bin, args, { cwd });
    return stdout + stderr;
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stdout?: string; stderr?: string };
    if (e.code === 'ENOENT')
      throw new Error(
        `promtool not found (${bin}): install it with "apt-get install prometheus" (or set PROMTOOL)`,
      );
    throw new Error(`promtool ${args.join(' ')} failed:\n${e.stdout ?? ''}${e.stderr ?? ''}`);
  }
}

const rule = parse(readFileSync(RULES_FILE, 'utf8')) as unknown;
const spec = isObject(rule) && isObject(rule.spec) ? rule.spec : {};
const alerts = array(spec.groups)
  .filter(isObject)
  .flatMap((g) => array(g.rules).filter(isObject))
  .map((r) => str(r.alert))
  .filter((a): a is string => a !== undefined);
const cases = (parse(readFileSync(PROMTOOL_TESTS, 'utf8')) as { tests: unknown[] }).tests
  .filter(isObject)
  .flatMap((t) => array(t.alert_rule_test).filter(isObject));

describe('alerts (promtool)', () => {
  let dir: string;
  beforeAll(() => {
    // The rule groups as a plain rule file, beside a copy of the tests that name it.
    dir = mkdtempSync(join(tmpdir(), 'autopilot-promtool-'));
    writeFileSync(join(dir, 'rules.yaml'), stringify(spec));
    copyFileSync(PROMTOOL_TESTS, join(dir, 'alerts.test.yaml'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('ships the five alerts the issue asks for', () => {
    expect(alerts).toEqual([
      'HelmReleaseAutopilotRetriesExhausted',
      'HelmReleaseAutopilotTriggerErrors',
      'HelmReleaseAutopilotWebhookErrors',
      'HelmReleaseAutopilotCertificateExpiringSoon',
      'HelmReleaseAutopilotNoLeader',
    ]);
  });

  it('promtool check rules: valid rules and templates', async () => {
    expect(await promtool(['check', 'rules', 'rules.yaml'], dir)).toContain(
      `SUCCESS: ${alerts.length} rules found`,
    );
  });

  it.each(alerts)('%s has a case where it fires and one where it must not', (alert) => {
    const mine = cases.filter((c) => c.alertname === alert);
    expect(mine.some((c) => array(c.exp_alerts).length > 0)).toBe(true);
    expect(mine.some((c) => array(c.exp_alerts).length === 0)).toBe(true);
  });

  it('promtool test rules: every case of test/promtool/alerts.test.yaml passes', async () => {
    const out = await promtool(['test', 'rules', 'alerts.test.yaml'], dir);
    expect(out).toContain('SUCCESS');
    expect(out).not.toContain('FAILED');
  });
});
