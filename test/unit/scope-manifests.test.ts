// The shipped webhook configuration and the operator's default scope agree: the namespaces the
// MutatingWebhookConfiguration's namespaceSelector excludes are the default of --exclude-namespaces for the
// namespace the base installs into, so admission and the reconcilers skip the same releases.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { parseConfig } from '../../src/config.ts';
import { namespaceScope } from '../../src/scope.ts';

const BASE = join(import.meta.dirname, '..', '..', 'manifests', 'base');
const yaml = (file: string) => parse(readFileSync(join(BASE, file), 'utf8'));

interface Selector {
  matchExpressions: { key: string; operator: string; values: string[] }[];
}

describe('shipped webhook configuration and --exclude-namespaces', () => {
  it("the namespaceSelector excludes exactly the flag's default", () => {
    const hook = yaml('mutatingwebhookconfiguration.yaml') as { webhooks: { namespaceSelector: Selector }[] };
    const operatorNamespace = (yaml('deployment.yaml') as { metadata: { namespace: string } }).metadata
      .namespace;
    const [expr, ...more] = hook.webhooks[0]?.namespaceSelector.matchExpressions ?? [];
    expect(more).toEqual([]);
    expect(expr).toMatchObject({ key: 'kubernetes.io/metadata.name', operator: 'NotIn' });
    // The Deployment sets --namespace from its own namespace (AUTOPILOT_NAMESPACE, fieldRef).
    const config = parseConfig([], { AUTOPILOT_NAMESPACE: operatorNamespace });
    expect([...config['exclude-namespaces']].sort()).toEqual([...(expr?.values ?? [])].sort());
    const scope = namespaceScope(config);
    for (const ns of expr?.values ?? []) expect(scope.inScope(ns)).toBe(false);
    expect(scope.inScope('team-a')).toBe(true);
  });
});
