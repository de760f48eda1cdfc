// The trigger benchmark's objects: releases app-i in namespaces of 1,000, each consuming its own ConfigMap
// cm-i and Secret sec-i, stamped with their values digest as the webhook would; plus Helm-release-sized
// Secrets (owner=helm, sh.helm.release.v1.*) that nobody consumes. Created many at a time, with progress.
import type { ValuesReference } from '../../src/flux/helmrelease.ts';
import type { KubeClient } from '../../src/kube/client.ts';
import {
  ConfigMaps,
  collectionPath,
  HelmReleases,
  Namespaces,
  objectPath,
  Secrets,
} from '../../src/kube/resources.ts';
import { Annotations, Labels } from '../../src/names.ts';
import { type DigestKeys, digestKey, valuesDigestOfBytes } from '../../src/values/digest.ts';

/** The digest key the benchmark writes into the operator's key Secret before it starts, so releases can be pre-stamped. */
export const BENCH_DIGEST_KEYS: DigestKeys = {
  current: digestKey(Buffer.from('helmrelease-autopilot bench digest key, 32+ bytes')),
};

/** Size of one Helm release Secret's data (they are about this big in real clusters). */
export const BIG_SECRET_BYTES = 900 * 1024;
/** Releases per namespace. */
export const PER_NAMESPACE = 1000;
/** Requests in flight while creating the set. */
const IN_FLIGHT = 32;

export interface ScaleSet {
  releases: number;
  bigSecrets: number;
  namespaces: string[];
}

/** One release of the set, by its global index. */
export class Release {
  readonly namespace: string;
  readonly i: number;
  constructor(g: number) {
    this.namespace = namespaceOf(Math.floor(g / PER_NAMESPACE));
    this.i = g % PER_NAMESPACE;
  }
  get key(): string {
    return `${this.namespace}/app-${this.i}`;
  }
  get configMap(): string {
    return `cm-${this.i}`;
  }
  get configMapKey(): string {
    return `${this.namespace}/${this.configMap}`;
  }
}

const namespaceOf = (n: number) => `bench-scale-${n}`;

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
const secretText = (i: number) => `password: p${i}\n`;

/** Changes the values of a release's ConfigMap (a new generation: a trigger is due). */
export function changeValues(client: KubeClient, r: Release, gen: number): Promise<unknown> {
  return client.mergePatch(objectPath(ConfigMaps, r.namespace, r.configMap), {
    data: { 'values.yaml': valuesText(r.i, gen) },
  });
}

const ref = (kind: 'ConfigMap' | 'Secret', name: string): ValuesReference => ({
  kind,
  name,
  valuesKey: 'values.yaml',
  targetPath: '',
  optional: false,
});

/** Prints progress every few seconds while objects are created. */
function progress(total: number, t0: number) {
  let done = 0;
  let last = t0;
  return () => {
    done++;
    const now = performance.now();
    if (now - last > 5000 || done === total) {
      last = now;
      const s = (now - t0) / 1000;
      process.stderr.write(
        `  created ${done}/${total} objects in ${s.toFixed(0)} s (${Math.round(done / s)}/s)\n`,
      );
    }
  };
}

/** Creates the set: namespaces, ConfigMaps and Secrets, Helm release Secrets, then the stamped releases. */
export async function createScaleSet(
  client: KubeClient,
  releases: number,
  bigSecrets: number,
): Promise<ScaleSet> {
  const namespaces = Array.from({ length: Math.ceil(releases / PER_NAMESPACE) }, (_, n) => namespaceOf(n));
  for (const name of namespaces) await client.create(collectionPath(Namespaces), { metadata: { name } });
  const all = Array.from({ length: releases }, (_, g) => new Release(g));
  const tick = progress(releases * 3 + bigSecrets, performance.now());
  const sources = all.flatMap((r) => [
    () =>
      client.create(collectionPath(ConfigMaps, r.namespace), {
        metadata: { name: r.configMap },
        data: { 'values.yaml': valuesText(r.i, 0), 'unused.txt': 'x'.repeat(200) },
      }),
    () =>
      client.create(collectionPath(Secrets, r.namespace), {
        metadata: { name: `sec-${r.i}` },
        data: { 'values.yaml': Buffer.from(secretText(r.i)).toString('base64') },
      }),
  ]);
  await parallel(sources, IN_FLIGHT, async (create) => {
    await create();
    tick();
  });
  // Helm release Secrets: large, unconsumed; the operator must never fetch them.
  const blob = Buffer.alloc(BIG_SECRET_BYTES, 0x5a).toString('base64');
  await parallel(
    Array.from({ length: bigSecrets }, (_, i) => i),
    4,
    async (i) => {
      await client.create(collectionPath(Secrets, namespaces[0]), {
        metadata: { name: `sh.helm.release.v1.app-${i}.v1`, labels: { owner: 'helm' } },
        type: 'helm.sh/release.v1',
        data: { release: blob },
      });
      tick();
    },
  );
  await parallel(all, IN_FLIGHT, async (r) => {
    const refs = [ref('ConfigMap', r.configMap), ref('Secret', `sec-${r.i}`)];
    const digest = valuesDigestOfBytes(BENCH_DIGEST_KEYS.current, r.namespace, refs, (x) =>
      Buffer.from(x.kind === 'ConfigMap' ? valuesText(r.i, 0) : secretText(r.i)),
    );
    await client.create(collectionPath(HelmReleases, r.namespace), {
      apiVersion: 'helm.toolkit.fluxcd.io/v2',
      kind: 'HelmRelease',
      metadata: {
        name: `app-${r.i}`,
        labels: { [Labels.managed]: 'true' },
        annotations: { [Annotations.valuesDigest]: digest },
      },
      spec: {
        interval: '5m',
        chart: { spec: { chart: 'app', sourceRef: { kind: 'HelmRepository', name: 'repo' } } },
        valuesFrom: refs.map((x) => ({ kind: x.kind, name: x.name })),
      },
    });
    tick();
  });
  return { releases, bigSecrets, namespaces };
}

/** Hands out releases not used by an earlier scenario, in a random order, so no two scenarios share one. */
export class ReleasePool {
  private readonly free: number[];
  constructor(releases: number) {
    this.free = Array.from({ length: releases }, (_, g) => g);
    for (let i = this.free.length - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1));
      [this.free[i], this.free[j]] = [this.free[j] as number, this.free[i] as number];
    }
  }
  take(n: number): Release[] {
    if (n > this.free.length) throw new Error(`the set has ${this.free.length} unused releases, ${n} wanted`);
    return this.free.splice(0, n).map((g) => new Release(g));
  }
  get left(): number {
    return this.free.length;
  }
}
