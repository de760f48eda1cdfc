// Leader failover loses no change and triggers none twice: two real operator processes, the leader is
// SIGKILLed right after a change, and the follower that takes over triggers exactly that change once.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseHelmRelease } from '../../src/flux/helmrelease.ts';
import type { KubeClient } from '../../src/kube/client.ts';
import { Informer } from '../../src/kube/informer.ts';
import { ConfigMaps, collectionPath, HelmReleases, Leases, objectPath } from '../../src/kube/resources.ts';
import { Annotations, Flux } from '../../src/names.ts';
import { adminClient, createNamespace, eventually } from '../support/cluster.ts';
import { testLogger } from '../support/log.ts';
import { startOperator } from '../support/operator.ts';

describe('leader failover', () => {
  let client: KubeClient;
  beforeAll(async () => {
    client = await adminClient();
  });
  afterAll(() => client.close());

  it('loses no change and triggers none twice when the leader is killed', async () => {
    const ns = await createNamespace(client, 'failover');
    await client.create(collectionPath(ConfigMaps, ns), {
      metadata: { name: 'values' },
      data: { 'values.yaml': 'v: 1' },
    });
    await client.create(collectionPath(HelmReleases, ns), {
      apiVersion: 'helm.toolkit.fluxcd.io/v2',
      kind: 'HelmRelease',
      metadata: { name: 'app' },
      spec: {
        interval: '5m',
        chart: { spec: { chart: 'c', sourceRef: { kind: 'HelmRepository', name: 'r' } } },
        valuesFrom: [{ kind: 'ConfigMap', name: 'values' }],
      },
    });
    // Every requestedAt the release ever carries, in order.
    const requests: string[] = [];
    const releases = new Informer({
      client,
      resource: HelmReleases,
      namespace: ns,
      logger: testLogger(),
      transform: (raw) => {
        const hr = parseHelmRelease(raw);
        return hr.ok ? hr.value : undefined;
      },
    });
    releases.on({
      update: (_old, obj) => {
        const token = obj.value.metadata.annotations[Flux.requestedAt];
        if (token && requests.at(-1) !== token) requests.push(token);
      },
    });
    releases.start();
    await releases.waitForSync();
    const digest = () => releases.get(ns, 'app')?.value.metadata.annotations[Annotations.valuesDigest];
    const ops = [0, 1].map(() => startOperator(ns, ['--retries=false', '--debounce=0']));
    try {
      // Backfilled without a trigger, then the first change is triggered once.
      const backfilled = await eventually(digest, { what: 'digest backfilled', timeoutMs: 20_000 });
      expect(requests).toEqual([]);
      const change = (v: number) =>
        client.mergePatch(objectPath(ConfigMaps, ns, 'values'), { data: { 'values.yaml': `v: ${v}` } });
      await change(2);
      await eventually(() => requests.length === 1, { what: 'first trigger' });
      // helm-controller handles it (until then a further change is held: src/flux/activity.ts).
      await client.mergePatch(`${objectPath(HelmReleases, ns, 'app')}/status`, {
        status: { lastHandledReconcileAt: requests[0] },
      });
      const afterFirst = digest();
      expect(afterFirst).not.toBe(backfilled);

      // Kill the leader, then change the data while nobody leads.
      const lease = (await client.get(objectPath(Leases, ns, 'helmrelease-autopilot'))) as {
        spec: { holderIdentity: string };
      };
      const leader = ops.findIndex((o) => o.out.join('').includes(lease.spec.holderIdentity));
      expect(leader).toBeGreaterThanOrEqual(0);
      ops[leader]?.proc.kill('SIGKILL');
      await change(3);
      await eventually(() => requests.length >= 2, {
        what: 'the new leader triggers the change',
        timeoutMs: 15_000,
      });
      await eventually(() => digest() !== afterFirst, { what: 'new digest recorded' });
      // Quiet period: nothing else is triggered (not the first change again, not the second twice).
      await new Promise((r) => setTimeout(r, 2000));
      expect(requests.length).toBe(2);
      expect(ops[1 - leader]?.out.join('')).toContain('became leader');
    } finally {
      for (const o of ops) o.proc.kill('SIGKILL');
      await releases.stop();
    }
  });
});
