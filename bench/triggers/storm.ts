// Scenario "storm": many changes at once — every ConfigMap of a set changed once (debounce 0), and 1,000
// changes on 100 ConfigMaps (debounce 1 s). Measures the time to settle and writes per affected release:
// exactly one patch per affected release per change window is expected.
import type { ControlPlane } from '../../hack/controlplane.ts';
import type { KubeClient } from '../../src/kube/client.ts';
import { ConfigMaps, objectPath } from '../../src/kube/resources.ts';
import { sleep } from '../../src/util/sleep.ts';
import { parallel, valuesText } from './objects.ts';
import { ReleaseWatch } from './observers.ts';
import { OperatorProcess } from './operator-process.ts';

/** Every ConfigMap of the set changed once, all at once: one patch per release expected. */
export async function stormOnce(client: KubeClient, releases: ReleaseWatch, ns: string, count: number) {
  releases.reset();
  const t0 = performance.now();
  const done = Promise.all(
    Array.from({ length: count }, (_, i) => releases.nextTrigger(`${ns}/app-${i}`, 120_000)),
  );
  await parallel(
    Array.from({ length: count }, (_, i) => i),
    16,
    async (i) => {
      await client.mergePatch(objectPath(ConfigMaps, ns, `cm-${i}`), {
        data: { 'values.yaml': valuesText(i, 2) },
      });
    },
  );
  const changesMs = Math.round(performance.now() - t0);
  const seen = await done;
  const settleMs = Math.round(Math.max(...seen.filter((x) => !Number.isNaN(x))) - t0);
  await sleep(2000); // extra writes would show up here
  return {
    changes: count,
    changesIssuedMs: changesMs,
    settleMs,
    missed: seen.filter(Number.isNaN).length,
    ...writesPer(releases, count),
  };
}

/** 1,000 changes on 100 ConfigMaps (10 each, back to back) with a 1 s debounce window. */
export async function stormDebounced(cp: ControlPlane, client: KubeClient, ns: string) {
  const op = new OperatorProcess(cp.kubeconfigPath, {
    BENCH_NAMESPACE: ns,
    BENCH_DEBOUNCE_MS: '1000',
    BENCH_WRITE_QPS: '1000',
    BENCH_WRITE_BURST: '1000',
  });
  await op.waitFor('idle');
  const releases = await new ReleaseWatch(client, ns).start();
  const affected = 100;
  const t0 = performance.now();
  const done = Promise.all(
    Array.from({ length: affected }, (_, i) => releases.nextTrigger(`${ns}/app-${i}`, 120_000)),
  );
  await parallel(
    Array.from({ length: affected }, (_, i) => i),
    16,
    async (i) => {
      for (let gen = 10; gen < 20; gen++) {
        await client.mergePatch(objectPath(ConfigMaps, ns, `cm-${i}`), {
          data: { 'values.yaml': valuesText(i, gen) },
        });
      }
    },
  );
  const changesMs = Math.round(performance.now() - t0);
  const seen = await done;
  const settleMs = Math.round(Math.max(...seen.filter((x) => !Number.isNaN(x))) - t0);
  await sleep(2500);
  const result = {
    changes: affected * 10,
    configMaps: affected,
    debounceMs: 1000,
    changesIssuedMs: changesMs,
    settleMs,
    ...writesPer(releases, affected),
  };
  await releases.stop();
  await op.stop();
  return result;
}

function writesPer(releases: ReleaseWatch, affected: number) {
  const per = [...releases.writes.values()];
  const triggers = [...releases.triggers.values()];
  return {
    releasesWritten: per.length,
    totalWrites: per.reduce((a, b) => a + b, 0),
    maxWritesPerRelease: Math.max(0, ...per),
    releasesWithOneTrigger: triggers.filter((n) => n === 1).length,
    releasesWithMoreTriggers: triggers.filter((n) => n > 1).length,
    affected,
  };
}
