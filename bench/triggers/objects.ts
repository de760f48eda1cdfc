// The trigger benchmark's objects: per namespace, ConfigMaps cm-i (and Secrets sec-i) and HelmReleases app-i
// consuming them, stamped with their values digest as the webhook would; optionally Helm-release-sized
// Secrets nobody consumes.
import type { ValuesReference } from '../../src/flux/helmrelease.ts';
import type { KubeClient } from '../../src/kube/client.ts';
import { ConfigMaps, collectionPath, HelmReleases, Namespaces, Secrets } from '../../src/kube/resources.ts';
import { Annotations, Labels } from '../../src/names.ts';
import { type DigestKeys, digestKey, valuesDigestOfBytes } from '../../src/values/digest.ts';

/** The digest key the benchmark's operator runs with (operator-child.ts), so releases can be pre-stamped. */
export const BENCH_DIGEST_KEYS: DigestKeys = {
  current: digestKey(Buffer.from('helmrelease-autopilot bench digest key, 32+ bytes')),
};

/** Size of one Helm release Secret's data (they are about this big in real clusters). */
export const BIG_SECRET_BYTES = 900 * 1024;

/** Runs fn over items, n at a time. */
export async function parallel<T>(items: readonly T[], n: number, fn: (item: T, i: number) => Promise<void>) {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        await fn(items[i] as T, i);
      }
    }),
  );
}

/** The values.yaml of ConfigMap cm-i at generation gen. */
export const valuesText = (i: number, gen: number) =>
  `replicaCount: ${gen}\nimage:\n  repository: example/app-${i}\n  tag: "1.${gen}.0"\nresources:\n  limits: {cpu: 500m, memory: 256Mi}\n`;

const ref = (kind: 'ConfigMap' | 'Secret', name: string): ValuesReference => ({
  kind,
  name,
  valuesKey: 'values.yaml',
  targetPath: '',
  optional: false,
});

export interface SetOptions {
  namespace: string;
  count: number;
  /** Also give each release a Secret it consumes (up to count - bigSecrets). */
  secrets?: boolean;
  bigSecrets?: number;
}

/** Creates ConfigMaps cm-i, (Secrets sec-i), and releases app-i consuming them, stamped as the webhook would. */
export async function createSet(client: KubeClient, o: SetOptions): Promise<void> {
  await client.create(collectionPath(Namespaces), { metadata: { name: o.namespace } });
  const idx = Array.from({ length: o.count }, (_, i) => i);
  const big = o.bigSecrets ?? 0;
  const withSecret = (i: number) => o.secrets === true && i < o.count - big;
  await parallel(idx, 24, async (i) => {
    await client.create(collectionPath(ConfigMaps, o.namespace), {
      metadata: { name: `cm-${i}` },
      data: { 'values.yaml': valuesText(i, 0), 'unused.txt': 'x'.repeat(200) },
    });
    if (withSecret(i)) {
      await client.create(collectionPath(Secrets, o.namespace), {
        metadata: { name: `sec-${i}` },
        data: { 'values.yaml': Buffer.from(`password: p${i}\n`).toString('base64') },
      });
    }
  });
  // Helm release Secrets: large, unconsumed; the operator must never fetch them.
  const blob = Buffer.alloc(BIG_SECRET_BYTES, 0x5a).toString('base64');
  await parallel(
    Array.from({ length: big }, (_, i) => i),
    4,
    async (i) => {
      await client.create(collectionPath(Secrets, o.namespace), {
        metadata: { name: `sh.helm.release.v1.app-${i}.v1`, labels: { owner: 'helm' } },
        type: 'helm.sh/release.v1',
        data: { release: blob },
      });
    },
  );
  await parallel(idx, 24, async (i) => {
    const refs = [ref('ConfigMap', `cm-${i}`), ...(withSecret(i) ? [ref('Secret', `sec-${i}`)] : [])];
    const digest = valuesDigestOfBytes(BENCH_DIGEST_KEYS.current, o.namespace, refs, (r) =>
      Buffer.from(r.kind === 'ConfigMap' ? valuesText(i, 0) : `password: p${i}\n`),
    );
    await client.create(collectionPath(HelmReleases, o.namespace), {
      apiVersion: 'helm.toolkit.fluxcd.io/v2',
      kind: 'HelmRelease',
      metadata: {
        name: `app-${i}`,
        labels: { [Labels.managed]: 'true' },
        annotations: { [Annotations.valuesDigest]: digest },
      },
      spec: {
        interval: '5m',
        chart: { spec: { chart: 'app', sourceRef: { kind: 'HelmRepository', name: 'repo' } } },
        valuesFrom: refs.map((r) => ({ kind: r.kind, name: r.name })),
      },
    });
  });
}
