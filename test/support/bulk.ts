// Many objects for the scale tests: ConfigMaps cm-NNNN and HelmReleases app-NNNN consuming them (names
// zero-padded, so the API server lists them in index order), created a few at a time.
import { parseHelmRelease } from '../../src/flux/helmrelease.ts';
import type { KubeClient } from '../../src/kube/client.ts';
import { Informer } from '../../src/kube/informer.ts';
import { ConfigMaps, collectionPath, HelmReleases, objectPath } from '../../src/kube/resources.ts';
import { Annotations, Flux } from '../../src/names.ts';
import { eventually } from './cluster.ts';
import { testLogger } from './log.ts';
import { startOperator } from './operator.ts';

/** Runs fn over 0..count-1, n at a time. */
export async function parallel(count: number, n: number, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, count) }, async () => {
      while (next < count) await fn(next++);
    }),
  );
}

export const cmName = (i: number) => `cm-${String(i).padStart(4, '0')}`;
export const appName = (i: number) => `app-${String(i).padStart(4, '0')}`;

/** The values of cm-i at generation gen. */
export const valuesOf = (i: number, gen: number) => `replicaCount: ${gen}\nname: app-${i}\n`;

/** Creates cm-i and app-i (consuming cm-i, unstamped) for i in [from, from + count), with labels(i) on app-i. */
export async function createValuesReleases(
  client: KubeClient,
  namespace: string,
  o: { count: number; from?: number; labels?: (i: number) => Record<string, string> },
): Promise<void> {
  const from = o.from ?? 0;
  await parallel(o.count, 16, async (k) => {
    const i = from + k;
    await client.create(collectionPath(ConfigMaps, namespace), {
      metadata: { name: cmName(i) },
      data: { 'values.yaml': valuesOf(i, 0) },
    });
    await client.create(collectionPath(HelmReleases, namespace), {
      apiVersion: 'helm.toolkit.fluxcd.io/v2',
      kind: 'HelmRelease',
      metadata: { name: appName(i), labels: o.labels?.(i) ?? {} },
      spec: {
        interval: '5m',
        chart: { spec: { chart: 'c', sourceRef: { kind: 'HelmRepository', name: 'r' } } },
        valuesFrom: [{ kind: 'ConfigMap', name: cmName(i) }],
      },
    });
  });
}

/** Changes the data of cm-i to generation gen. */
export function changeValues(
  client: KubeClient,
  namespace: string,
  i: number,
  gen: number,
): Promise<unknown> {
  return client.mergePatch(objectPath(ConfigMaps, namespace, cmName(i)), {
    data: { 'values.yaml': valuesOf(i, gen) },
  });
}

/** Every write to the namespace's releases, with when it was seen, and every requestedAt. */
export async function watchReleases(client: KubeClient, namespace: string) {
  const writes: { name: string; at: number; requestedAt: string | undefined }[] = [];
  const informer = new Informer({
    client,
    resource: HelmReleases,
    namespace,
    logger: testLogger(),
    transform: (raw) => {
      const hr = parseHelmRelease(raw);
      return hr.ok ? hr.value.metadata.annotations : undefined;
    },
  });
  informer.on({
    update: (_old, c) =>
      writes.push({ name: c.name, at: Date.now(), requestedAt: c.value[Flux.requestedAt] }),
  });
  informer.start();
  await informer.waitForSync();
  const stamped = () => [...informer.list()].filter((c) => c.value[Annotations.valuesDigest]).length;
  const triggeredAt = (name: string, after: number) =>
    writes.find((w) => w.name === name && w.requestedAt !== undefined && w.at >= after)?.at;
  return { writes, stamped, triggeredAt, stop: () => informer.stop() };
}

/**
 * Has a first operator run stamp every release (a generous write budget), as the webhook would have, and
 * stops it: the state a restart or a failover starts from. `extraFlags`: e.g. the shard's selector.
 */
export async function stampAll(
  namespace: string,
  releases: Awaited<ReturnType<typeof watchReleases>>,
  count: number,
  extraFlags: string[] = [],
): Promise<void> {
  // No Lease: under this write load the helper's short Lease could be lost (and the process end).
  const flags = ['--leader-elect=false', '--write-qps=2000', '--write-burst=2000', '--concurrency=16'];
  const op = startOperator(namespace, ['--debounce=0', ...flags, ...extraFlags]);
  try {
    await eventually(() => releases.stamped() >= count, { what: 'every release stamped', timeoutMs: 90_000 });
  } finally {
    op.proc.kill('SIGTERM');
    await op.exit;
  }
}
