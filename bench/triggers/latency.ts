// Scenario "latency" (debounce 0): ConfigMap PATCH sent → new requestedAt seen by a watch, for a sample of
// the releases, next to the API server's own floor (the same PATCH seen by a ConfigMap watch).
import type { ControlPlane } from '../../hack/controlplane.ts';
import type { KubeClient } from '../../src/kube/client.ts';
import { ConfigMaps, objectPath } from '../../src/kube/resources.ts';
import { sleep } from '../../src/util/sleep.ts';
import { summary } from '../stats.ts';
import { createSet, valuesText } from './objects.ts';
import { ConfigMapWatch, ReleaseWatch } from './observers.ts';
import { OperatorProcess } from './operator-process.ts';

/**
 * Creates `count` releases in a namespace of their own, starts the operator on it and measures `samples`
 * changes. The operator and the release watch keep running (the storm scenarios reuse them): stop both.
 */
export async function latencyPhase(cp: ControlPlane, client: KubeClient, count: number, samples: number) {
  const ns = `bench-lat-${count}`;
  const t0 = performance.now();
  await createSet(client, { namespace: ns, count });
  const createdMs = Math.round(performance.now() - t0);
  const op = new OperatorProcess(cp.kubeconfigPath, {
    BENCH_NAMESPACE: ns,
    BENCH_DEBOUNCE_MS: '0',
    BENCH_WRITE_QPS: '1000',
    BENCH_WRITE_BURST: '1000',
  });
  const synced = await op.waitFor('synced');
  const idle = await op.waitFor('idle');
  const releases = await new ReleaseWatch(client, ns).start();
  const cms = await new ConfigMapWatch(client, ns).start();
  const trigger: number[] = [];
  const floor: number[] = [];
  let missed = 0;
  const picks = Array.from({ length: count }, (_, i) => i)
    .sort(() => Math.random() - 0.5)
    .slice(0, samples);
  for (const i of picks) {
    const seenCm = cms.next(`cm-${i}`);
    const seenTrigger = releases.nextTrigger(`${ns}/app-${i}`, 5000);
    const start = performance.now();
    await client.mergePatch(objectPath(ConfigMaps, ns, `cm-${i}`), {
      data: { 'values.yaml': valuesText(i, 1) },
    });
    const [cmAt, trAt] = await Promise.all([seenCm, seenTrigger]);
    floor.push(cmAt - start);
    if (Number.isNaN(trAt)) missed++;
    else trigger.push(trAt - start);
    await sleep(20);
  }
  await cms.stop();
  const result = {
    releases: count,
    createMs: createdMs,
    operatorSyncedMs: synced.ms,
    operatorIdleMs: idle.ms,
    startupWrites: releases.totalWrites - trigger.length,
    triggerLatencyMs: summary(trigger, 1),
    apiWatchFloorMs: summary(floor, 1),
    missed,
  };
  return { result, op, releases, ns };
}

export type LatencyResult = Awaited<ReturnType<typeof latencyPhase>>['result'];
