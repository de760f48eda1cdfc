// The values cache behind ValuesLookup, shared by the webhook and the trigger reconciler. ConfigMaps and
// Secrets are watched metadata-only (src/kube/caches.ts); data is fetched (GET) only for objects a caller
// asks about, and only when the cached copy's resourceVersion differs from the metadata cache's. Of the
// fetched data only a keyed digest per consumed key is kept (src/values/digest.ts), never the bytes, so
// memory follows the number of references, not their size (Helm's release Secrets are ~1 MB). Concurrent
// fetches of one object version are shared. An object the metadata cache does not know (yet) is fetched
// too: it may have been created moments before (a release applied together with its ConfigMap), and
// answering "missing" from a lagging cache stamped or recorded a digest of data nobody reads — found by the
// soak (bench/soak): the next reconcile saw the object and triggered a release whose data never changed.
import type { ValuesReference, ValuesSourceKind } from '../flux/helmrelease.ts';
import { isNotFound, type KubeClient } from '../kube/client.ts';
import { ConfigMaps, collectionPath, objectPath, Secrets } from '../kube/resources.ts';
import { flatKey } from '../util/intern.ts';
import { array, isObject, str, stringMap } from '../util/narrow.ts';
import {
  type DigestKey,
  type DigestKeys,
  keyBytesOf,
  keyDigest,
  objectDataDigest,
  objectDataDigestIn,
  olderFormatOf,
  type SourceObject,
  valuesDigest,
  valuesDigestIn,
} from './digest.ts';
import type { ValuesLookup } from './lookup.ts';

/** What the store needs from a metadata cache: the resourceVersion of an object, if it exists. */
export interface SourceMetaView {
  get(namespace: string, name: string): { resourceVersion: string } | undefined;
  hasSynced(): boolean;
}

/** An object's data as fetched; transient (only digests of it are kept). */
export interface SourceData {
  resourceVersion: string;
  data: Record<string, string>;
  binaryData: Record<string, string>;
}

/** GETs one ConfigMap or Secret; null when it does not exist. */
export type FetchObject = (
  kind: ValuesSourceKind,
  namespace: string,
  name: string,
) => Promise<SourceData | null>;

/** One page of a LIST of ConfigMaps or Secrets in a namespace (full objects). */
export type ListObjects = (
  kind: ValuesSourceKind,
  namespace: string,
  page: { limit: number; continue?: string; labelSelector?: string },
) => Promise<{ items: (SourceData & { name: string })[]; continue?: string }>;

export interface ValuesStoreOptions {
  sources: Record<ValuesSourceKind, SourceMetaView>;
  /** The digest keys; undefined until loaded (lookups reject until then, so no digest is guessed). */
  keys: () => DigestKeys | undefined;
  fetch: FetchObject;
  /** For prefetch(); without it prefetch() does nothing. */
  list?: ListObjects;
  /** Concurrent GETs at most (a start-up with thousands of releases must not flood the API server). */
  maxConcurrentFetches?: number;
}

export interface ValuesStoreStats {
  fetches: number;
  /** LIST pages read by prefetch(). */
  lists: number;
  hits: number;
  /** Lookups of objects the metadata cache did not know: fetched (a GET), not answered "missing". */
  missingFromMetadata: number;
  /** Digests computed in an older format (v1, or v2 under the previous key) to compare with a stored one. */
  olderFormat: number;
}

interface Entry {
  /** resourceVersion of the fetched object ('' when the GET found nothing). */
  rv: string;
  /** The metadata cache's resourceVersion when the fetch started: data is at least that new. */
  metaRv: string;
  /**
   * Keyed digest (keyDigest) of each consumed key, never the bytes: [key, digest, key, digest, ...], the
   * 32 digest bytes as a one-byte string (latin1), null when the key is missing. An array and a string
   * instead of a Map of Uint8Arrays: ~220 bytes less per object, 4 MB at 10,000 releases (issue #12).
   */
  keys: (string | null)[];
  /** Digest over all data (objectDataDigest), when someone asked (explicit links). */
  dataDigest?: string | null;
}

interface Want {
  keys: readonly string[];
  dataDigest: boolean;
}

const objectKey = (kind: ValuesSourceKind, namespace: string, name: string) => flatKey(kind, namespace, name);

export class ValuesStore implements ValuesLookup {
  private readonly o: Required<Omit<ValuesStoreOptions, 'list'>> & Pick<ValuesStoreOptions, 'list'>;
  private readonly entries = new Map<string, Entry>();
  /** Single flight: one GET per (object, metadata resourceVersion) at a time. */
  private readonly inflight = new Map<string, Promise<SourceData | null>>();
  private readonly slots: Semaphore;
  readonly stats: ValuesStoreStats = {
    fetches: 0,
    lists: 0,
    hits: 0,
    missingFromMetadata: 0,
    olderFormat: 0,
  };

  constructor(options: ValuesStoreOptions) {
    this.o = { maxConcurrentFetches: 16, ...options };
    this.slots = new Semaphore(this.o.maxConcurrentFetches);
  }

  hasSynced(): boolean {
    return this.o.sources.ConfigMap.hasSynced() && this.o.sources.Secret.hasSynced();
  }

  /** Number of objects whose key digests are held. */
  get size(): number {
    return this.entries.size;
  }

  /** The digest keys, or a rejection while they are not loaded (no digest is guessed then). */
  private keysNow(): DigestKeys {
    if (!this.hasSynced()) throw new Error('values cache is not synced yet');
    const keys = this.o.keys();
    if (!keys) throw new Error('the digest key is not loaded yet');
    return keys;
  }

  async valuesDigest(
    namespace: string,
    refs: readonly ValuesReference[],
    signal?: AbortSignal,
  ): Promise<string> {
    const key = this.keysNow().current;
    const wanted = new Map<string, { kind: ValuesSourceKind; name: string; keys: Set<string> }>();
    for (const ref of refs) {
      const k = objectKey(ref.kind, namespace, ref.name);
      const w = wanted.get(k) ?? { kind: ref.kind, name: ref.name, keys: new Set<string>() };
      w.keys.add(ref.valuesKey);
      wanted.set(k, w);
    }
    const found = new Map<string, Entry | null>();
    await Promise.all(
      [...wanted].map(async ([k, w]) => {
        const entry = await this.entryFor(
          w.kind,
          namespace,
          w.name,
          { keys: [...w.keys], dataDigest: false },
          signal,
        );
        found.set(k, entry);
      }),
    );
    return valuesDigest(key, namespace, refs, (ref) =>
      keyDigestOf(found.get(objectKey(ref.kind, namespace, ref.name)), ref.valuesKey),
    );
  }

  /**
   * The values digest of the current data in the older format `stored` is in (v1, or v2 under the previous
   * key), so a caller can tell "stored in an older format, data unchanged" from "data changed"; undefined
   * when `stored` is in no such format. The objects are fetched for this (the bytes are needed and are not
   * kept): one GET each, shared with concurrent lookups, at most maxConcurrentFetches at a time.
   */
  async valuesDigestAsStored(
    namespace: string,
    refs: readonly ValuesReference[],
    stored: string | undefined,
    signal?: AbortSignal,
  ): Promise<string | undefined> {
    const format = olderFormatOf(stored, this.keysNow());
    if (!format) return undefined;
    this.stats.olderFormat++;
    const objects = new Map<string, SourceData | null>();
    const wanted = new Map(refs.map((r) => [objectKey(r.kind, namespace, r.name), r]));
    await Promise.all(
      [...wanted].map(async ([k, r]) => {
        objects.set(k, await this.fetchCurrent(r.kind, namespace, r.name, [r.valuesKey], signal));
      }),
    );
    return valuesDigestIn(
      format,
      namespace,
      refs,
      (ref) => objects.get(objectKey(ref.kind, namespace, ref.name)) ?? undefined,
    );
  }

  /** A digest over all data of one object (explicit links fire on any data change), or null when missing. */
  async dataDigest(
    kind: ValuesSourceKind,
    namespace: string,
    name: string,
    signal?: AbortSignal,
  ): Promise<string | null> {
    this.keysNow();
    const entry = await this.entryFor(kind, namespace, name, { keys: [], dataDigest: true }, signal);
    return entry?.dataDigest ?? null;
  }

  /** dataDigest in the older format `stored` is in, as valuesDigestAsStored; null when the object is missing. */
  async dataDigestAsStored(
    kind: ValuesSourceKind,
    namespace: string,
    name: string,
    stored: string | undefined,
    signal?: AbortSignal,
  ): Promise<string | null | undefined> {
    const format = olderFormatOf(stored, this.keysNow());
    if (!format) return undefined;
    this.stats.olderFormat++;
    const object = await this.fetchCurrent(kind, namespace, name, [], signal);
    return object ? objectDataDigestIn(format, { kind, namespace, name }, object) : null;
  }

  /**
   * Loads the wanted keys of many objects of one namespace with a paged LIST instead of a GET each (a
   * start-up with thousands of releases). Objects not wanted are dropped page by page; an object whose
   * resourceVersion differs from the metadata cache's is not kept (a later lookup GETs it). Pages are sized
   * by what the previous page weighed, so a page of 1 MiB objects stays a few MiB (a page is held whole,
   * as text and parsed, until its digests are taken). Returns how many objects were kept.
   */
  async prefetch(
    kind: ValuesSourceKind,
    namespace: string,
    wanted: ReadonlyMap<string, readonly string[]>,
    labelSelector?: string,
  ): Promise<number> {
    if (!this.o.list) return 0;
    const key = this.keysNow().current;
    let kept = 0;
    let cont: string | undefined;
    let limit = FIRST_PAGE;
    do {
      const page = await this.o.list(kind, namespace, {
        limit,
        ...(cont ? { continue: cont } : {}),
        ...(labelSelector ? { labelSelector } : {}),
      });
      this.stats.lists++;
      for (const item of page.items) {
        const keys = wanted.get(item.name);
        if (!keys || this.o.sources[kind].get(namespace, item.name)?.resourceVersion !== item.resourceVersion)
          continue;
        this.remember(
          { kind, namespace, name: item.name },
          item.resourceVersion,
          item,
          {
            keys,
            dataDigest: false,
          },
          key,
        );
        kept++;
      }
      limit = nextPageLimit(page.items);
      cont = page.continue;
    } while (cont);
    return kept;
  }

  /**
   * Drops what is held for an object unless it is still current at `resourceVersion` (called by the metadata
   * informers on update and, without a version, on delete), so memory follows what is still referenced.
   */
  invalidate(kind: ValuesSourceKind, namespace: string, name: string, resourceVersion?: string): void {
    const k = objectKey(kind, namespace, name);
    const entry = this.entries.get(k);
    if (entry && (resourceVersion === undefined || entry.rv !== resourceVersion)) this.entries.delete(k);
  }

  /** The entry for an object, fetched if the cached one is stale or lacks what is wanted; null if missing. */
  private async entryFor(
    kind: ValuesSourceKind,
    namespace: string,
    name: string,
    want: Want,
    signal?: AbortSignal,
  ): Promise<Entry | null> {
    const key = this.keysNow().current;
    const metaRv = this.metaRv(kind, namespace, name);
    const cached = this.entries.get(objectKey(kind, namespace, name));
    if (metaRv !== UNKNOWN && cached && isCurrent(cached, metaRv) && covers(cached, want)) {
      this.stats.hits++;
      return cached.rv === '' ? null : cached;
    }
    const object = await abortable(this.flight(kind, namespace, name, metaRv), signal);
    return this.remember({ kind, namespace, name }, metaRv, object, want, key);
  }

  /** The metadata cache's resourceVersion of an object, or UNKNOWN (counted) when it does not know it. */
  private metaRv(kind: ValuesSourceKind, namespace: string, name: string): string {
    const meta = this.o.sources[kind].get(namespace, name);
    if (meta) return meta.resourceVersion;
    this.stats.missingFromMetadata++;
    return UNKNOWN;
  }

  /**
   * The object's data as the API has it now (at least as new as the metadata cache), for a digest in an
   * older format; the digests of `keys` are remembered on the way, the data itself is not kept.
   */
  private async fetchCurrent(
    kind: ValuesSourceKind,
    namespace: string,
    name: string,
    keys: readonly string[],
    signal?: AbortSignal,
  ): Promise<SourceData | null> {
    const key = this.keysNow().current;
    const metaRv = this.metaRv(kind, namespace, name);
    const object = await abortable(this.flight(kind, namespace, name, metaRv), signal);
    this.remember({ kind, namespace, name }, metaRv, object, { keys, dataDigest: false }, key);
    return object;
  }

  /** Single flight: the one GET of an object at a metadata resourceVersion, shared by concurrent callers. */
  private flight(
    kind: ValuesSourceKind,
    namespace: string,
    name: string,
    metaRv: string,
  ): Promise<SourceData | null> {
    const flightKey = `${objectKey(kind, namespace, name)}@${metaRv}`;
    let flight = this.inflight.get(flightKey);
    if (!flight) {
      flight = this.fetchOnce(kind, namespace, name);
      this.inflight.set(flightKey, flight);
      const done = () => this.inflight.delete(flightKey);
      void flight.then(done, done);
    }
    return flight;
  }

  private async fetchOnce(
    kind: ValuesSourceKind,
    namespace: string,
    name: string,
  ): Promise<SourceData | null> {
    await this.slots.acquire();
    try {
      this.stats.fetches++;
      return await this.o.fetch(kind, namespace, name);
    } finally {
      this.slots.release();
    }
  }

  /** Keeps the digests of the wanted keys of a fetched object (merging with what is held for its version). */
  private remember(
    source: SourceObject,
    metaRv: string,
    object: SourceData | null,
    want: Want,
    key: DigestKey,
  ): Entry | null {
    const k = objectKey(source.kind, source.namespace, source.name);
    // Absent, and unknown to the metadata cache too: nothing worth keeping (made-up names in admissions and
    // dry-runs must not grow the store); the next lookup asks again.
    if (!object && metaRv === UNKNOWN) {
      this.entries.delete(k);
      return null;
    }
    const rv = object?.resourceVersion ?? '';
    let entry = this.entries.get(k);
    if (!entry || entry.rv !== rv) {
      entry = { rv, metaRv, keys: [] };
      this.entries.set(k, entry);
    } else entry.metaRv = metaRv;
    if (!object) return null;
    for (const valuesKey of want.keys) {
      if (holdsKey(entry, valuesKey)) continue;
      const digest = keyDigest(key, source, valuesKey, keyBytesOf(source.kind, object, valuesKey));
      entry.keys.push(valuesKey, digest === null ? null : Buffer.from(digest).toString('latin1'));
    }
    if (want.dataDigest && entry.dataDigest === undefined)
      entry.dataDigest = objectDataDigest(key, source, object);
    return entry;
  }
}

/**
 * The metadata resourceVersion of an object the metadata cache does not know: never a real one, so what is
 * fetched under it is never taken for current once the cache knows the object (it is fetched again then).
 */
const UNKNOWN = '';

/** Objects in the first LIST page: small, since nothing is known yet about their size. */
const FIRST_PAGE = 10;
/** Most objects in a LIST page. */
const MAX_PAGE = 100;
/** What a LIST page should weigh (characters of data), held at once as text and parsed. */
const PAGE_CHARS = 8 * 2 ** 20;

/** The next page's limit: as many objects as the last page's average size fits into PAGE_CHARS. */
export function nextPageLimit(items: readonly Pick<SourceData, 'data' | 'binaryData'>[]): number {
  if (items.length === 0) return MAX_PAGE;
  let chars = 0;
  for (const item of items)
    for (const map of [item.data, item.binaryData])
      for (const [k, v] of Object.entries(map)) chars += k.length + v.length;
  const average = Math.max(1, chars / items.length);
  return Math.max(1, Math.min(MAX_PAGE, Math.floor(PAGE_CHARS / average)));
}

/** Whether the entry holds a digest (or "missing") for this key. */
function holdsKey(entry: Entry, valuesKey: string): boolean {
  for (let i = 0; i < entry.keys.length; i += 2) if (entry.keys[i] === valuesKey) return true;
  return false;
}

/** The held digest of a key as bytes (a copy: the string stays the only thing kept); null when missing. */
function keyDigestOf(entry: Entry | null | undefined, valuesKey: string): Uint8Array | null {
  if (!entry) return null;
  for (let i = 0; i < entry.keys.length; i += 2) {
    if (entry.keys[i] !== valuesKey) continue;
    const digest = entry.keys[i + 1];
    return digest === null || digest === undefined ? null : Buffer.from(digest, 'latin1');
  }
  return null;
}

/** Cached data is current when it was fetched at (or after) the version the metadata cache shows. */
function isCurrent(entry: Entry, metaRv: string): boolean {
  return entry.rv === metaRv || entry.metaRv === metaRv;
}

function covers(entry: Entry, want: Want): boolean {
  if (entry.rv === '') return true;
  if (want.dataDigest && entry.dataDigest === undefined) return false;
  return want.keys.every((key) => holdsKey(entry, key));
}

/** A FetchObject over the REST client. */
export function fetchFromApi(client: KubeClient): FetchObject {
  return async (kind, namespace, name) => {
    const resource = kind === 'ConfigMap' ? ConfigMaps : Secrets;
    try {
      const raw = await client.get(objectPath(resource, namespace, name));
      if (!isObject(raw)) throw new Error(`GET ${kind} ${namespace}/${name}: answer is not an object`);
      const meta = isObject(raw.metadata) ? raw.metadata : {};
      return {
        resourceVersion: str(meta.resourceVersion) ?? '',
        data: stringMap(raw.data),
        binaryData: stringMap(raw.binaryData),
      };
    } catch (err) {
      if (isNotFound(err)) return null;
      throw err;
    }
  };
}

/** A ListObjects over the REST client. */
export function listFromApi(client: KubeClient): ListObjects {
  return async (kind, namespace, page) => {
    const raw = await client.request({
      path: collectionPath(kind === 'ConfigMap' ? ConfigMaps : Secrets, namespace),
      query: page,
      timeoutMs: 60_000,
    });
    if (!isObject(raw)) throw new Error(`LIST ${kind} in ${namespace}: answer is not an object`);
    const meta = isObject(raw.metadata) ? raw.metadata : {};
    const items = array(raw.items).flatMap((item) => {
      if (!isObject(item)) return [];
      const m = isObject(item.metadata) ? item.metadata : {};
      const name = str(m.name);
      if (!name) return [];
      return [
        {
          name,
          resourceVersion: str(m.resourceVersion) ?? '',
          data: stringMap(item.data),
          binaryData: stringMap(item.binaryData),
        },
      ];
    });
    const cont = str(meta.continue);
    return { items, ...(cont ? { continue: cont } : {}) };
  };
}

function abortable<T>(p: Promise<T>, signal?: AbortSignal): Promise<T> {
  if (!signal) return p;
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}

class Semaphore {
  private free: number;
  private readonly waiters: (() => void)[] = [];
  constructor(n: number) {
    this.free = n;
  }
  acquire(): Promise<void> {
    if (this.free > 0) {
      this.free--;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.waiters.push(resolve));
  }
  release(): void {
    const next = this.waiters.shift();
    if (next) next();
    else this.free++;
  }
}
