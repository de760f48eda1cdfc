// Many objects for the scale tests: ConfigMaps cm-NNNN and HelmReleases app-NNNN consuming them (names
// zero-padded, so the API server lists them in index order), created a few at a time.
import type { KubeClient } from '../../src/kube/client.ts';
import { ConfigMaps, collectionPath, HelmReleases, objectPath } from '../../src/kube/resources.ts';

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
