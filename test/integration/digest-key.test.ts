// The cluster's digest key on a real API server, as the operator's ServiceAccount (manifests/base RBAC):
// replicas racing to create it end up with one key; until it is loaded readiness is false and the webhook
// admits without a digest; once loaded, digests are keyed with it.
import { Registry } from 'prom-client';
import { afterAll, describe, expect, it } from 'vitest';
import { type Roles, startRoles } from '../../cmd/helmrelease-autopilot/roles.ts';
import { parseConfig } from '../../src/config.ts';
import type { KubeClient } from '../../src/kube/client.ts';
import { collectionPath, HelmReleases, Namespaces, objectPath, Secrets } from '../../src/kube/resources.ts';
import { Annotations, Labels } from '../../src/names.ts';
import { type DigestKeys, digestKey } from '../../src/values/digest.ts';
import {
  DIGEST_KEY_SECRET,
  loadOrCreateDigestKeys,
  parseDigestKeySecret,
} from '../../src/values/key-secret.ts';
import { adminClient, eventually, operatorClient } from '../support/cluster.ts';
import { testLogger } from '../support/log.ts';
import { helmRelease } from '../support/webhook.ts';
import { annotationsOf, expectedDigest, labelsOf, startWebhookFixture } from './webhook-fixture.ts';

/** manifests/base's namespace (the operator's ServiceAccount and its Roles live there). */
const OPERATOR_NAMESPACE = 'helmrelease-autopilot';

const cleanups: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

describe('the digest key', () => {
  it('replicas racing to create it all end up with the one key that was stored', async () => {
    const admin = await adminClient();
    cleanups.push(async () => admin.close());
    // The operator's own namespace, with manifests/base's digest-key Role (installed by the global setup).
    const ns = OPERATOR_NAMESPACE;
    await admin.delete(objectPath(Secrets, ns, DIGEST_KEY_SECRET)).catch(() => {});
    const replicas = await Promise.all(Array.from({ length: 8 }, () => operatorClient()));
    cleanups.push(async () => {
      for (const c of replicas) c.close();
    });
    const loaded = await Promise.all(replicas.map((c) => loadOrCreateDigestKeys(c, ns)));
    const stored = parseDigestKeySecret(await admin.get(objectPath(Secrets, ns, DIGEST_KEY_SECRET)));
    expect(new Set(loaded.map((k) => k.current.id))).toEqual(new Set([stored.current.id]));
    expect(stored.current.secret.byteLength).toBe(32);
    // A later start reads it again (create answers 409): the same key.
    const again = await loadOrCreateDigestKeys(replicas[0] as KubeClient, ns);
    expect(again.current.id).toBe(stored.current.id);
  });

  it('until it is loaded, readiness is false and the reconcilers wait; once its namespace exists it is created and loaded', async () => {
    const admin = await adminClient();
    cleanups.push(async () => admin.close());
    const ns = `digest-key-late-${Date.now().toString(36)}`;
    const config = parseConfig(
      [
        '--webhook=false',
        '--leader-elect=false',
        `--watch-namespace=${ns}`,
        '--health-port=0',
        '--metrics-port=0',
        `--namespace=${ns}`,
      ],
      {},
    );
    const registry = new Registry();
    const roles: Roles = await startRoles({
      config,
      client: admin,
      log: testLogger(),
      registry,
      exit: () => {},
    });
    cleanups.push(() => roles.stop());
    const keyReady = () => roles.checks.find((c) => c.name === 'digest-key')?.ready();
    const leader = async () =>
      (await registry.getSingleMetric('helmrelease_autopilot_leader')?.get())?.values[0]?.value;
    await eventually(() => roles.checks.find((c) => c.name === 'caches')?.ready(), { what: 'caches synced' });
    // The namespace does not exist: every create fails (404) and is retried; nothing runs meanwhile.
    expect(keyReady()).toBe(false);
    expect(await leader()).toBe(0);
    await admin.create(collectionPath(Namespaces), { metadata: { name: ns } });
    await eventually(keyReady, {
      what: 'the digest key loaded after its namespace appeared',
      timeoutMs: 20_000,
    });
    await eventually(async () => (await leader()) === 1, { what: 'the reconcilers started' });
    parseDigestKeySecret(await admin.get(objectPath(Secrets, ns, DIGEST_KEY_SECRET)));
  });

  it('while no key is loaded the webhook admits releases labelled but without a digest; then stamps keyed digests', async () => {
    let keys: DigestKeys | undefined;
    const f = await startWebhookFixture({ digestKeys: () => keys });
    cleanups.push(() => f.stop());
    const ns = await f.namespace();
    const valuesFrom = [{ kind: 'ConfigMap', name: 'absent', optional: true }];
    const before = await f.client.create(collectionPath(HelmReleases, ns), helmRelease('before', valuesFrom));
    expect(labelsOf(before)[Labels.managed]).toBe('true');
    expect(annotationsOf(before)[Annotations.valuesDigest]).toBeUndefined();
    keys = { current: digestKey(Buffer.from('a key loaded later, at least 32 bytes long')) };
    const after = await f.client.create(collectionPath(HelmReleases, ns), helmRelease('after', valuesFrom));
    expect(annotationsOf(after)[Annotations.valuesDigest]).toMatch(
      new RegExp(`^hmac-sha256:v2:${keys.current.id}:[0-9a-f]{64}$`),
    );
    // The fixture's expectedDigest is under the test key: another key, another digest.
    expect(annotationsOf(after)[Annotations.valuesDigest]).not.toBe(expectedDigest(ns, valuesFrom, {}));
  });
});
