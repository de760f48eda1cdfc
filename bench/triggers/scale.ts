// Scenario "scale": start-up to synced and to idle, and RSS, with many releases, as many ConfigMaps and
// Secrets (some of them Helm-release-sized), the operator in a child process at its default configuration
// (debounce 2 s, 20 writes/s); once per set of V8 flags, since RSS depends on them more than on the caches.
import type { ControlPlane } from '../../hack/controlplane.ts';
import type { KubeClient } from '../../src/kube/client.ts';
import { sleep } from '../../src/util/sleep.ts';
import { BIG_SECRET_BYTES, createSet } from './objects.ts';
import { ReleaseWatch } from './observers.ts';
import { OperatorProcess } from './operator-process.ts';

export interface ScaleOptions {
  releases: number;
  /** Helm-release-sized Secrets (unconsumed) in the first namespace. */
  bigSecrets: number;
  /** One operator start per entry: the node flags it runs with ('' for Node's defaults). */
  operatorNodeFlags: readonly string[];
}

export async function scalePhase(cp: ControlPlane, client: KubeClient, o: ScaleOptions) {
  const perNs = 1000;
  const namespaces = Math.ceil(o.releases / perNs);
  const t0 = performance.now();
  for (let n = 0; n < namespaces; n++) {
    const count = Math.min(perNs, o.releases - n * perNs);
    const big = n === 0 ? o.bigSecrets : 0;
    await createSet(client, { namespace: `bench-scale-${n}`, count, secrets: true, bigSecrets: big });
    process.stderr.write(
      `  created ${Math.min(o.releases, (n + 1) * perNs)}/${o.releases} releases (${Math.round((performance.now() - t0) / 1000)} s)\n`,
    );
  }
  const createMs = Math.round(performance.now() - t0);
  const runs = [];
  for (const flags of o.operatorNodeFlags) runs.push(await scaleRun(cp, client, flags));
  return {
    releases: o.releases,
    configMaps: runs[0]?.configMaps,
    secrets: runs[0]?.secrets,
    bigSecrets: o.bigSecrets,
    bigSecretBytes: BIG_SECRET_BYTES,
    createMs,
    runs,
  };
}

/** One operator start against the scale set, default configuration (debounce 2 s, 20 writes/s). */
async function scaleRun(cp: ControlPlane, client: KubeClient, flags: string) {
  const baseline = new OperatorProcess(cp.kubeconfigPath, { BENCH_BASELINE: '1' }, flags);
  const bare = await baseline.waitFor('baseline');
  await baseline.stop();
  const releases = await new ReleaseWatch(client).start();
  const op = new OperatorProcess(cp.kubeconfigPath, {}, flags);
  const synced = await op.waitFor('synced');
  const idle = await op.waitFor('idle');
  await sleep(3000); // a debounced second look would write here if anything were wrong
  const stats = await op.stats();
  await op.stop();
  await releases.stop();
  return {
    operatorNodeFlags: flags,
    configMaps: synced.configMaps,
    secrets: synced.secrets,
    rssOfCodeAloneMB: bare.rssMB,
    syncedMs: synced.ms,
    rssAtSyncedMB: synced.rssMB,
    idleMs: idle.ms,
    rssAtIdleMB: idle.rssMB,
    peakRssMB: stats.peakMB,
    rssAfterGcMB: stats.rssMB,
    heapUsedAfterGcMB: stats.heapUsedMB,
    heapTotalAfterGcMB: stats.heapTotalMB,
    externalAfterGcMB: stats.externalMB,
    valueFetches: idle.fetches,
    objectsHeld: idle.valuesHeld,
    writesToReleases: releases.totalWrites,
  };
}
