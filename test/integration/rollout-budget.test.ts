// The rollout budget against a real API server: 200 releases consume one ConfigMap, --max-upgrades-in-flight
// 10. The test plays helm-controller: for each new requestedAt it marks the upgrade running (Ready=Unknown,
// Reconciling=True, "Running 'upgrade' action ...") and, a little later, done (lastHandledReconcileAt = the
// token, Ready=True, Reconciling gone). A release counts as in flight, for the test, from the moment it sees
// the request until it sends its "done" write — a window inside the operator's own (from its reservation
// until it has seen that write) — so the count is a lower bound of the operator's and must never pass 10; the
// operator's own count is sampled too.

import { afterEach, describe, expect, it } from 'vitest';
import type { HelmRelease } from '../../src/flux/helmrelease.ts';
import { parseHelmRelease } from '../../src/flux/helmrelease.ts';
import { Informer } from '../../src/kube/informer.ts';
import { HelmReleases, objectPath } from '../../src/kube/resources.ts';
import { Annotations, Flux } from '../../src/names.ts';
import { adminClient, createNamespace, eventually, operatorClient } from '../support/cluster.ts';
import { testDigestKeys } from '../support/digest-key.ts';
import { testLogger } from '../support/log.ts';
import { createConfigMap, createRelease, patchConfigMap, sleep, startOperator } from './triggers-harness.ts';

const RELEASES = 200;
const MAX = 10;

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const condition = (type: string, status: string, reason: string, message: string) => ({
  type,
  status,
  reason,
  message,
  observedGeneration: 1,
  lastTransitionTime: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
});

describe('--max-upgrades-in-flight', () => {
  it(`${RELEASES} releases on one ConfigMap, N = ${MAX}: never more than ${MAX} in flight, each triggered exactly once`, async () => {
    const client = await adminClient();
    cleanups.push(() => client.close());
    const ns = await createNamespace(client, 'rollout');
    await createConfigMap(client, ns, 'shared', { data: { 'values.yaml': 'v: 1' } });
    const names = Array.from({ length: RELEASES }, (_, i) => `app-${String(i).padStart(3, '0')}`);
    for (const name of names) await createRelease(client, ns, name, [{ kind: 'ConfigMap', name: 'shared' }]);

    const asOperator = await operatorClient();
    const op = await startOperator(
      asOperator,
      [ns],
      { 'write-qps': 500, 'write-burst': 500, concurrency: 8 },
      testDigestKeys,
      {
        maxUpgradesInFlight: MAX,
      },
    );
    cleanups.push(async () => {
      await op.stop();
      asOperator.close();
    });
    await eventually(
      () =>
        [...op.caches.helmReleases.list()].filter(
          (c) => c.namespace === ns && c.value.metadata.annotations[Annotations.valuesDigest],
        ).length === RELEASES,
      { timeoutMs: 60_000, what: 'every release stamped' },
    );

    // helm-controller, played: one upgrade per new request, 100-300 ms each.
    const t0 = Date.now();
    const requests = new Map<string, Set<string>>();
    const order: string[] = [];
    const timeline: { at: number; inFlight: number; done: number }[] = [];
    let inFlight = 0;
    let maxInFlight = 0;
    let done = 0;
    let maxOperator = 0;
    let maxWaiting = 0;
    const flux = new Informer<HelmRelease>({
      client,
      resource: HelmReleases,
      namespace: ns,
      logger: testLogger(),
      transform: (raw) => {
        const p = parseHelmRelease(raw);
        return p.ok ? p.value : undefined;
      },
    });
    const upgrade = async (name: string, token: string) => {
      const status = `${objectPath(HelmReleases, ns, name)}/status`;
      const running = "Running 'upgrade' action with timeout of 5m0s";
      await client.mergePatch(status, {
        status: {
          conditions: [
            condition('Reconciling', 'True', 'Progressing', running),
            condition('Ready', 'Unknown', 'Progressing', running),
          ],
        },
      });
      await sleep(100 + Math.floor(Math.random() * 200));
      // Counted out before the write: the operator frees the slot only once it has seen it.
      inFlight--;
      done++;
      timeline.push({ at: Date.now() - t0, inFlight, done });
      await client.mergePatch(status, {
        status: {
          lastHandledReconcileAt: token,
          conditions: [
            condition(
              'Ready',
              'True',
              'UpgradeSucceeded',
              `Helm upgrade succeeded for release ${ns}/${name}`,
            ),
          ],
        },
      });
    };
    flux.on({
      update: (_old, c) => {
        const token = c.value.metadata.annotations[Flux.requestedAt];
        if (!token) return;
        const seen = requests.get(c.name) ?? new Set<string>();
        if (seen.has(token)) return;
        seen.add(token);
        requests.set(c.name, seen);
        order.push(c.name);
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        timeline.push({ at: Date.now() - t0, inFlight, done });
        void upgrade(c.name, token);
      },
    });
    flux.start();
    await flux.waitForSync();
    cleanups.push(() => flux.stop());
    const sampler = setInterval(() => {
      maxOperator = Math.max(maxOperator, op.budget.inFlight);
      maxWaiting = Math.max(maxWaiting, op.budget.waiting);
    }, 5);
    cleanups.push(() => clearInterval(sampler));

    await patchConfigMap(client, ns, 'shared', { data: { 'values.yaml': 'v: 2' } });
    await eventually(() => done === RELEASES, {
      timeoutMs: 120_000,
      intervalMs: 100,
      what: `${RELEASES} upgrades done`,
    });
    await sleep(1500);

    const perSecond = new Map<number, number>();
    for (const e of timeline) if (e.inFlight >= 0) perSecond.set(Math.floor(e.at / 1000), e.done);
    process.stdout.write(
      [
        `rollout budget: ${RELEASES} releases, one ConfigMap change, --max-upgrades-in-flight ${MAX}`,
        `  triggered: ${requests.size} releases, ${[...requests.values()].reduce((n, s) => n + s.size, 0)} requests (${[...requests.values()].filter((s) => s.size !== 1).length} releases with more than one)`,
        `  max in flight: ${maxInFlight} (counted by the test playing Flux), ${maxOperator} (the operator's own count, sampled every 5 ms); max waiting: ${maxWaiting}`,
        `  first request after ${timeline[0]?.at} ms, last upgrade done after ${timeline.at(-1)?.at} ms`,
        `  upgrades done by second: ${[...perSecond].map(([s, n]) => `${s}s:${n}`).join(' ')}`,
        '',
      ].join('\n'),
    );
    expect(maxInFlight).toBeLessThanOrEqual(MAX);
    expect(maxInFlight).toBe(MAX);
    expect(maxOperator).toBeLessThanOrEqual(MAX);
    expect(requests.size).toBe(RELEASES);
    for (const [name, tokens] of requests) expect(tokens.size, name).toBe(1);
    expect(op.budget.inFlight).toBe(0);
    expect(op.budget.waiting).toBe(0);
  }, 240_000);
});
