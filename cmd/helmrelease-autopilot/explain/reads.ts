// What explain reads, with the user's own client and permissions: every read says whether it found the
// object, found it missing, or was refused (403) — a refusal is reported, never guessed around. The trigger
// gatherer's reads (src/triggers/gather.ts) are served from a snapshot of these reads through the operator's
// own ValuesStore, so the digests are computed exactly as the reconciler computes them.
import type { HelmRelease, ValuesSourceKind } from '../../../src/flux/helmrelease.ts';
import { ApiError, type KubeClient } from '../../../src/kube/client.ts';
import { createdUnstampedAfterInstall } from '../../../src/kube/created.ts';
import { ConfigMaps, objectPath, type Resource, Secrets } from '../../../src/kube/resources.ts';
import type { LabelMatcher } from '../../../src/kube/selector.ts';
import type { TriggerReads } from '../../../src/triggers/gather.ts';
import { type SourceId, sourceId } from '../../../src/triggers/links.ts';
import { errorMessage } from '../../../src/util/errors.ts';
import { array, isObject, type JsonObject, str, stringMap } from '../../../src/util/narrow.ts';
import type { DigestKeys } from '../../../src/values/digest.ts';
import { DIGEST_KEY_SECRET, parseDigestKeySecret } from '../../../src/values/key-secret.ts';
import { type SourceData, ValuesStore } from '../../../src/values/store.ts';

/** The outcome of one read. */
export type Read<T> =
  | { state: 'found'; value: T }
  | { state: 'missing' }
  | { state: 'forbidden'; message: string }
  | { state: 'failed'; message: string };

/** A read that could not answer: the user lacks a permission, or the API server failed. */
export class Unreadable extends Error {
  /** What could not be read, e.g. "Secret apps/db" or "the key Secret". */
  readonly what: string;
  readonly forbidden: boolean;
  constructor(what: string, read: Extract<Read<unknown>, { state: 'forbidden' | 'failed' }>) {
    super(read.state === 'forbidden' ? `no access to ${what}` : `could not read ${what}: ${read.message}`);
    this.name = 'Unreadable';
    this.what = what;
    this.forbidden = read.state === 'forbidden';
  }
}

async function attempt<T>(fn: () => Promise<T>): Promise<Read<T>> {
  try {
    return { state: 'found', value: await fn() };
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) return { state: 'missing' };
    if (err instanceof ApiError && err.status === 403) return { state: 'forbidden', message: err.message };
    return { state: 'failed', message: errorMessage(err) };
  }
}

export function getObject(client: KubeClient, path: string): Promise<Read<JsonObject>> {
  return attempt(async () => {
    const raw = await client.get(path);
    if (!isObject(raw)) throw new Error(`GET ${path}: the answer is not an object`);
    return raw;
  });
}

/** Every item of a (paged) LIST. */
export function listObjects(
  client: KubeClient,
  path: string,
  query: Record<string, string> = {},
  accept?: string,
): Promise<Read<JsonObject[]>> {
  return attempt(async () => {
    const items: JsonObject[] = [];
    let cont: string | undefined;
    do {
      const raw = await client.request({
        path,
        query: { ...query, limit: 500, ...(cont ? { continue: cont } : {}) },
        ...(accept ? { accept } : {}),
        timeoutMs: 60_000,
      });
      if (!isObject(raw)) throw new Error(`LIST ${path}: the answer is not an object`);
      items.push(...array(raw.items).filter(isObject));
      cont = isObject(raw.metadata) ? str(raw.metadata.continue) : undefined;
    } while (cont);
    return items;
  });
}

/** A ConfigMap or Secret as read: its data (for the digests) and its labels (Flux's own watch label). */
export interface SourceObject extends SourceData {
  labels: Record<string, string>;
}

export const sourceResource = (kind: ValuesSourceKind): Resource =>
  kind === 'ConfigMap' ? ConfigMaps : Secrets;

export function toSourceObject(raw: JsonObject): SourceObject {
  const meta = isObject(raw.metadata) ? raw.metadata : {};
  return {
    resourceVersion: str(meta.resourceVersion) ?? '',
    labels: stringMap(meta.labels),
    data: stringMap(raw.data),
    binaryData: stringMap(raw.binaryData),
  };
}

/** ConfigMaps and Secrets read once each (several releases may share one). */
export class SourceReads {
  private readonly client: KubeClient;
  private readonly reads = new Map<SourceId, Promise<Read<SourceObject>>>();

  constructor(client: KubeClient) {
    this.client = client;
  }

  /** The cluster's digest keys, from their Secret in the operator's namespace (tenants may not read it). */
  async digestKeys(operatorNamespace: string): Promise<Read<DigestKeys>> {
    // The whole object: its creationTimestamp is the installation time (createdUnstampedAfterInstall).
    const r = await getObject(this.client, objectPath(Secrets, operatorNamespace, DIGEST_KEY_SECRET));
    if (r.state !== 'found') return r;
    try {
      return { state: 'found', value: parseDigestKeySecret(r.value) };
    } catch (err) {
      return { state: 'failed', message: errorMessage(err) };
    }
  }

  read(kind: ValuesSourceKind, namespace: string, name: string): Promise<Read<SourceObject>> {
    const id = sourceId(kind, namespace, name);
    let r = this.reads.get(id);
    if (!r) {
      r = getObject(this.client, objectPath(sourceResource(kind), namespace, name)).then((x) =>
        x.state === 'found' ? { state: 'found', value: toSourceObject(x.value) } : x,
      );
      this.reads.set(id, r);
    }
    return r;
  }
}

/** The sources whose link annotations name each release, read with the user's LIST rights. */
export interface LinkIndex {
  linkedSources(namespace: string, name: string): readonly SourceId[];
  /** Kinds whose links could not be listed everywhere they may come from: why, and from where they are unknown. */
  unknown: { kind: ValuesSourceKind; why: string; from: 'any namespace' | 'other namespaces' }[];
}

/**
 * The trigger gatherer's reads for one release, from what `sources` read: the values digest through a
 * ValuesStore over that snapshot (the reconciler's own store and digest functions), link digests likewise.
 * A source the user may not read makes the read throw Unreadable, so no decision is taken on a guess.
 */
export async function snapshotReads(
  hr: HelmRelease,
  sources: SourceReads,
  links: LinkIndex,
  recorded: readonly SourceId[],
  keys: { where: string; read: Read<DigestKeys> },
  fluxWatches?: LabelMatcher,
): Promise<TriggerReads> {
  const { namespace, name } = hr.metadata;
  const ids = new Set<SourceId>([
    ...hr.valuesFrom.map((r) => sourceId(r.kind, namespace, r.name)),
    ...links.linkedSources(namespace, name),
    ...recorded,
  ]);
  const snapshot = new Map<SourceId, Read<SourceObject>>();
  await Promise.all(
    [...ids].map(async (id) => {
      const [kind, ns, n] = id.split('/') as [ValuesSourceKind, string, string];
      snapshot.set(id, await sources.read(kind, ns, n));
    }),
  );
  const known = (id: SourceId): Read<SourceObject> => {
    const r = snapshot.get(id);
    if (!r) throw new Error(`explain did not read ${id}`);
    if (r.state === 'forbidden' || r.state === 'failed') throw new Unreadable(describeSource(id), r);
    return r;
  };
  const view = (kind: ValuesSourceKind) => ({
    get: (ns: string, n: string) => {
      const r = known(sourceId(kind, ns, n));
      return r.state === 'found' ? { resourceVersion: r.value.resourceVersion } : undefined;
    },
    hasSynced: () => true,
  });
  // Digests are keyed with the cluster's key: without it there is no digest to compare, only a note.
  const digestKeys = (): DigestKeys => {
    if (keys.read.state === 'found') return keys.read.value;
    if (keys.read.state === 'missing') throw new Error(`the key Secret ${keys.where} does not exist yet`);
    throw new Unreadable(`the key Secret ${keys.where}`, keys.read);
  };
  const store = new ValuesStore({
    keys: digestKeys,
    sources: { ConfigMap: view('ConfigMap'), Secret: view('Secret') },
    fetch: async (kind, ns, n) => {
      const r = known(sourceId(kind, ns, n));
      return r.state === 'found' ? r.value : null;
    },
  });
  return {
    valuesDigest: (release) => store.valuesDigest(release.metadata.namespace, release.valuesFrom),
    valuesDigestAsStored: (release, stored) =>
      store.valuesDigestAsStored(release.metadata.namespace, release.valuesFrom, stored),
    linkedSources: (ns, n) => links.linkedSources(ns, n),
    dataDigest: (kind, ns, n) => store.dataDigest(kind, ns, n),
    dataDigestAsStored: (kind, ns, n, stored) => store.dataDigestAsStored(kind, ns, n, stored),
    exists: (id) => known(id).state === 'found',
    // What the reconciler's caches answer for a release created while no webhook answered (src/kube/created.ts).
    createdUnstamped: (release) =>
      keys.read.state === 'found' && createdUnstampedAfterInstall(release, keys.read.value.since),
    fluxWatched: (id) => {
      const r = known(id);
      return r.state === 'found' && fluxWatches !== undefined && fluxWatches(r.value.labels);
    },
  };
}

/** "ConfigMap/ns/name" as people write it: "ConfigMap ns/name". */
export function describeSource(id: SourceId): string {
  const [kind, ns, n] = id.split('/');
  return `${kind} ${ns}/${n}`;
}
