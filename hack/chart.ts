// What charts/helmrelease-autopilot shares with src/config.ts and manifests/, in one place: which flags the chart
// derives itself, which named values stand for flags, the `flags` part of values.schema.json (generated from
// FLAGS), and the files the chart carries as copies of manifests/components/ (npm run docs writes both;
// test/unit/chart-files.test.ts fails when they are stale).
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FLAGS } from '../src/config.ts';

const ROOT = join(import.meta.dirname, '..');
export const CHART_DIR = join(ROOT, 'charts', 'helmrelease-autopilot');
export const SCHEMA_FILE = join(CHART_DIR, 'values.schema.json');

/** Flags the chart sets from other values; values.schema.json keeps them out of `flags`. */
export const DERIVED_FLAGS = {
  'tls-mode': 'tls.mode',
  'webhook-configuration': 'tls.mode=self-signed: the release’s own MutatingWebhookConfiguration',
  'self-signed-dns-names':
    'tls.mode=self-signed: the webhook Service’s names, plus tls.selfSigned.extraDnsNames',
  namespace: 'the release namespace, through AUTOPILOT_NAMESPACE (fieldRef)',
  'exclude-namespaces': 'webhook.excludeNamespaces plus the release namespace, as the webhook configuration',
} as const satisfies Partial<Record<keyof typeof FLAGS, string>>;

/** Named values that stand for a flag (an entry of `flags` wins over them). */
export const NAMED_FLAG_VALUES = {
  logLevel: 'log-level',
  watchNamespace: 'watch-namespace',
} as const satisfies Record<string, keyof typeof FLAGS>;

/** Flags the chart's templates read (ports, certificate mount): they must stay in `flags`. */
export const REQUIRED_FLAGS = ['health-port', 'metrics-port', 'webhook-port', 'cert-dir'] as const;

/** manifests/ files the chart carries verbatim (Helm reads files only from inside the chart). */
export const COPIED_FILES: readonly { source: string; copy: string }[] = [
  {
    source: join(ROOT, 'manifests/components/dashboard/dashboard.json'),
    copy: join(CHART_DIR, 'files/dashboard.json'),
  },
  {
    source: join(ROOT, 'manifests/components/prometheusrule/prometheusrule.yaml'),
    copy: join(CHART_DIR, 'files/prometheusrule.yaml'),
  },
];

/** parseDuration's grammar (src/config.ts). */
const DURATION = '^(0|([0-9]+(\\.[0-9]+)?(ms|s|m|h))+)$';

type JsonSchema = Record<string, unknown>;

function flagSchema(spec: (typeof FLAGS)[keyof typeof FLAGS]): JsonSchema {
  const nullable = (type: string) => [type, 'null'];
  const description = spec.help;
  switch (spec.type) {
    case 'bool':
      return { description, type: nullable('boolean') };
    case 'int':
      return { description, type: nullable('integer') };
    case 'number':
      return { description, type: nullable('number') };
    case 'duration':
      return { description, type: nullable('string'), pattern: DURATION };
    case 'list':
      return { description, type: nullable('array'), items: { type: 'string' } };
    case 'enum':
      return { description, enum: [...(spec.values ?? []), null] };
    default:
      return { description, type: nullable('string') };
  }
}

/** The schema of values `flags`: every flag of FLAGS but the derived ones, nothing else. */
export function flagsSchema(): JsonSchema {
  const properties: Record<string, JsonSchema> = {};
  for (const [name, spec] of Object.entries(FLAGS)) {
    if (name in DERIVED_FLAGS) continue;
    properties[name] = flagSchema(spec);
  }
  return {
    description:
      'Operator flags by name without "--" (README "Configuration"); null keeps the default. Derived by the chart, so not allowed here: ' +
      Object.entries(DERIVED_FLAGS)
        .map(([flag, from]) => `${flag} (${from})`)
        .join('; '),
    type: 'object',
    additionalProperties: false,
    required: [...REQUIRED_FLAGS],
    properties,
  };
}

/** values.schema.json with its `flags` part regenerated. */
export function renderSchema(current: string): string {
  const schema = JSON.parse(current) as { properties: Record<string, unknown> };
  schema.properties.flags = flagsSchema();
  return `${JSON.stringify(schema, null, 2)}\n`;
}

export function syncChart(): void {
  writeFileSync(SCHEMA_FILE, renderSchema(readFileSync(SCHEMA_FILE, 'utf8')));
  for (const { source, copy } of COPIED_FILES) writeFileSync(copy, readFileSync(source));
}
