// The soak's change generator: one change at a steady rate, of a kind drawn by weight — a consumed key, an
// unconsumed key, a metadata-only change, a Secret, an explicitly linked ConfigMap, an optional source that
// appears or goes, a release created (its ConfigMap created moments before) or deleted, a release suspended
// (and resumed 5–20 s later). Every write is reported to the oracle with the resourceVersion of its answer;
// a write whose answer is lost (the API server went away) is read back, so the oracle never misses a version.
import { ApiError, type KubeClient } from '../../src/kube/client.ts';
import { collectionPath, HelmReleases, objectPath } from '../../src/kube/resources.ts';
import { Annotations, Labels } from '../../src/names.ts';
import { isObject, str, stringMap } from '../../src/util/narrow.ts';
import { sleep } from '../../src/util/sleep.ts';
import {
  createSource,
  NAMESPACES,
  namespaceOf,
  type ReleaseSpec,
  releaseObject,
  sourcePath,
  stateOf,
  values,
} from './objects.ts';
import type { Oracle } from './oracle.ts';

export const KINDS = [
  'consumed-key',
  'unconsumed-key',
  'metadata-only',
  'secret',
  'link',
  'optional-source',
  'release-create',
  'release-delete',
  'suspend-resume',
] as const;
export type ChangeKind = (typeof KINDS)[number];

const WEIGHTS: Record<ChangeKind, number> = {
  'consumed-key': 25,
  'unconsumed-key': 12,
  'metadata-only': 10,
  secret: 14,
  link: 8,
  'optional-source': 6,
  'release-create': 8,
  'release-delete': 5,
  'suspend-resume': 6,
};

/** A small seeded PRNG (mulberry32): the same seed draws the same changes. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export class Generator {
  readonly counts: Record<string, number> = Object.fromEntries(KINDS.map((k) => [k, 0]));
  /** Writes whose answer was lost and that were read back. */
  readBacks = 0;
  failed = 0;
  private readonly live: ReleaseSpec[];
  private readonly busy = new Set<string>();
  private readonly suspended = new Map<string, number>();
  private readonly inFlight = new Set<Promise<void>>();
  private gen = 1;
  private created = 0;

  private readonly client: KubeClient;
  private readonly oracle: Oracle;
  private readonly random: () => number;

  constructor(client: KubeClient, oracle: Oracle, specs: ReleaseSpec[], random: () => number) {
    this.client = client;
    this.oracle = oracle;
    this.random = random;
    this.live = [...specs];
  }

  /** Draws changes at `rate` per second until `until` (Date.now()), then resumes every suspended release. */
  async run(rate: number, until: number): Promise<void> {
    const interval = 1000 / rate;
    let next = Date.now();
    while (Date.now() < until) {
      this.resumeDue(Date.now());
      const kind = this.draw();
      const p = this.change(kind)
        .catch(() => {
          this.failed++;
        })
        .finally(() => this.inFlight.delete(p));
      this.inFlight.add(p);
      next += interval;
      await sleep(Math.max(0, next - Date.now()));
    }
    await Promise.all(this.inFlight);
    this.resumeDue(Number.POSITIVE_INFINITY);
    await Promise.all(this.inFlight);
  }

  private draw(): ChangeKind {
    const total = Object.values(WEIGHTS).reduce((a, b) => a + b, 0);
    let x = this.random() * total;
    for (const k of KINDS) {
      x -= WEIGHTS[k];
      if (x < 0) return k;
    }
    return 'consumed-key';
  }

  private pick(filter: (s: ReleaseSpec) => boolean = () => true): ReleaseSpec | undefined {
    const candidates = this.live.filter((s) => filter(s) && !this.busy.has(`${s.namespace}/${s.name}`));
    return candidates[Math.floor(this.random() * candidates.length)];
  }

  private async change(kind: ChangeKind): Promise<void> {
    const s =
      kind === 'link'
        ? this.pick((x) => x.links.length > 0)
        : kind === 'optional-source'
          ? this.pick((x) => x.optional !== undefined)
          : kind === 'secret'
            ? this.pick((x) => x.secret !== undefined)
            : this.pick();
    if (!s && kind !== 'release-create') return;
    const key = s ? `${s.namespace}/${s.name}` : '';
    if (s) this.busy.add(key);
    this.counts[kind] = (this.counts[kind] ?? 0) + 1;
    const gen = this.gen++;
    try {
      await this.apply(kind, s as ReleaseSpec, gen);
    } finally {
      if (s) this.busy.delete(key);
    }
  }

  private async apply(kind: ChangeKind, s: ReleaseSpec, gen: number): Promise<void> {
    switch (kind) {
      case 'consumed-key':
        return this.patchSource('ConfigMap', s.namespace, s.configMap, {
          data: { [s.consumedKey]: values(s.name, gen) },
        });
      case 'unconsumed-key': {
        const unread = ['unused.txt', s.consumedKey === 'alt.yaml' ? 'values.yaml' : 'alt.yaml'];
        const k = unread[Math.floor(this.random() * unread.length)] as string;
        return this.patchSource('ConfigMap', s.namespace, s.configMap, { data: { [k]: `u${gen}` } });
      }
      case 'metadata-only':
        return this.patchSource('ConfigMap', s.namespace, s.configMap, {
          metadata: { labels: { 'soak.example/touched': String(gen) } },
        });
      case 'secret':
        return this.patchSource('Secret', s.namespace, s.secret as string, {
          data: { 'values.yaml': Buffer.from(`password: p${gen}\n`).toString('base64') },
        });
      case 'link': {
        const name = (s.links[0] as string).split('/')[2] as string;
        return this.patchSource('ConfigMap', s.namespace, name, { data: { 'settings.conf': `gen=${gen}` } });
      }
      case 'optional-source':
        return this.toggleOptional(s, gen);
      case 'release-create':
        return this.createRelease(gen);
      case 'release-delete':
        return this.deleteRelease(s);
      case 'suspend-resume':
        return this.suspend(s);
    }
  }

  /** A merge patch of a source; a lost answer is read back (the generator is the only writer of sources). */
  private async patchSource(
    kind: 'ConfigMap' | 'Secret',
    namespace: string,
    name: string,
    patch: unknown,
  ): Promise<void> {
    const path = sourcePath(kind, namespace, name);
    try {
      this.record(kind, namespace, name, await this.client.mergePatch(path, patch));
    } catch (err) {
      if (err instanceof ApiError && err.status < 500) throw err;
      await this.readBack(kind, namespace, name);
    }
  }

  private record(kind: 'ConfigMap' | 'Secret', namespace: string, name: string, raw: unknown): void {
    const s = stateOf(raw);
    if (s) this.oracle.source(`${kind}/${namespace}/${name}`, s.rv, Date.now(), s.state);
  }

  private async readBack(kind: 'ConfigMap' | 'Secret', namespace: string, name: string): Promise<void> {
    this.readBacks++;
    for (let i = 0; i < 120; i++) {
      try {
        this.record(kind, namespace, name, await this.client.get(sourcePath(kind, namespace, name)));
        return;
      } catch (err) {
        if (err instanceof ApiError && err.status === 404) {
          // Deleted: the delete's resourceVersion is unknown; the next list-free approximation is "now".
          return;
        }
        await sleep(500);
      }
    }
  }

  private async toggleOptional(s: ReleaseSpec, gen: number): Promise<void> {
    const name = s.optional as string;
    const path = sourcePath('ConfigMap', s.namespace, name);
    try {
      await this.client.get(path);
      await this.client.delete(path);
      // The deletion's resourceVersion: the next write in etcd is later, so a write of ours with a fresh rv
      // bounds it; take a marker write (a create of nothing) is not possible, so read a fresh revision.
      this.oracle.source(`ConfigMap/${s.namespace}/${name}`, await this.revisionNow(), Date.now(), null);
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 404)) throw err;
      await createSource(this.client, this.oracle, 'ConfigMap', s.namespace, name, {
        'values.yaml': values(`${s.name}-opt`, gen),
      });
    }
  }

  /** A resourceVersion at least as new as every write so far (a list of one namespace, limit 1). */
  private async revisionNow(): Promise<number> {
    const list = await this.client.request({
      path: collectionPath(HelmReleases, namespaceOf(0)),
      query: { limit: 1 },
    });
    return Number(isObject(list) && isObject(list.metadata) ? str(list.metadata.resourceVersion) : NaN);
  }

  /** A new release consuming a ConfigMap created moments before, through the webhook. */
  private async createRelease(gen: number): Promise<void> {
    const n = this.created++;
    const namespace = namespaceOf(Math.floor(this.random() * NAMESPACES));
    const spec: ReleaseSpec = {
      namespace,
      name: `new-${n}`,
      refs: [
        { kind: 'ConfigMap', name: `newcm-${n}`, valuesKey: 'values.yaml', targetPath: '', optional: false },
      ],
      links: [],
      configMap: `newcm-${n}`,
      consumedKey: 'values.yaml',
    };
    await createSource(this.client, this.oracle, 'ConfigMap', namespace, spec.configMap, {
      'values.yaml': values(spec.name, gen),
      'unused.txt': 'u',
    });
    const res = await this.client.create(collectionPath(HelmReleases, namespace), releaseObject(spec));
    if (!isObject(res) || !isObject(res.metadata)) return;
    this.oracle.created({
      key: `${namespace}/${spec.name}`,
      namespace,
      name: spec.name,
      refs: spec.refs,
      links: [],
      createdRv: Number(str(res.metadata.resourceVersion)),
      createdAt: Date.now(),
      // Labelled without a digest (the webhook's lookup failed) counts as unstamped: the operator triggers
      // such a release once, by design (src/triggers/decide.ts).
      stamped:
        stringMap(res.metadata.labels)[Labels.managed] === 'true' &&
        stringMap(res.metadata.annotations)[Annotations.valuesDigest] !== undefined,
    });
    this.live.push(spec);
  }

  private async deleteRelease(s: ReleaseSpec): Promise<void> {
    const key = `${s.namespace}/${s.name}`;
    this.live.splice(this.live.indexOf(s), 1);
    this.suspended.delete(key);
    this.oracle.deleted(key, Date.now());
    await this.client.delete(objectPath(HelmReleases, s.namespace, s.name));
  }

  private async suspend(s: ReleaseSpec): Promise<void> {
    const key = `${s.namespace}/${s.name}`;
    if (this.suspended.has(key)) return;
    const res = await this.client.mergePatch(objectPath(HelmReleases, s.namespace, s.name), {
      spec: { suspend: true },
    });
    if (isObject(res) && isObject(res.metadata))
      this.oracle.suspended(key, Number(str(res.metadata.resourceVersion)));
    this.suspended.set(key, Date.now() + 5000 + this.random() * 15_000);
  }

  private resumeDue(now: number): void {
    for (const [key, at] of this.suspended) {
      if (at > now) continue;
      this.suspended.delete(key);
      const [namespace, name] = key.split('/') as [string, string];
      const p = (async () => {
        for (let i = 0; i < 120; i++) {
          try {
            const res = await this.client.mergePatch(objectPath(HelmReleases, namespace, name), {
              spec: { suspend: false },
            });
            if (isObject(res) && isObject(res.metadata))
              this.oracle.resumed(key, Number(str(res.metadata.resourceVersion)));
            return;
          } catch (err) {
            if (err instanceof ApiError && err.status === 404) return;
            await sleep(500);
          }
        }
      })().finally(() => this.inFlight.delete(p));
      this.inFlight.add(p);
    }
  }
}
