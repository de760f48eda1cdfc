// The operator's shared caches: one HelmRelease informer (full objects, parsed once), metadata-only
// ConfigMap and Secret informers that keep only resourceVersion and our link annotations, and the values
// store that fetches data on demand (warmed up once at sync: warmUp). The webhook, the trigger reconciler and
// the retry reconciler all read these; none opens a watch of its own.
import type { Logger } from 'pino';
import { type HelmRelease, parseHelmRelease } from '../flux/helmrelease.ts';
import { Annotations, CompatLinkAnnotations } from '../names.ts';
import { isObject, type JsonObject, stringMap } from '../util/narrow.ts';
import type { DigestKeys } from '../values/digest.ts';
import { fetchFromApi, listFromApi, ValuesStore } from '../values/store.ts';
import type { KubeClient } from './client.ts';
import { UnstampedCreations } from './created.ts';
import { type Cached, Informer, type InformerOptions } from './informer.ts';
import { informerFor, type SharedInformer } from './informers.ts';
import { RecentChanges } from './recent.ts';
import { ConfigMaps, HelmReleases, Secrets } from './resources.ts';
import type { LabelMatcher } from './selector.ts';
import { warmValues } from './warmup.ts';

/** What is kept of a ConfigMap or Secret: only the link annotations (resourceVersion is on Cached). */
export interface SourceMeta {
  /** Link annotations present on the object; a shared empty object for the (many) objects without. */
  links: Readonly<Record<string, string>>;
  /** Its labels match the selector helm-controller watches configs by (--flux-watches-configs). */
  fluxWatched?: true;
}

export interface OperatorCaches {
  /** Parsed releases; kubectl's last-applied-configuration annotation is not kept. */
  helmReleases: SharedInformer<HelmRelease>;
  configMaps: SharedInformer<SourceMeta>;
  secrets: SharedInformer<SourceMeta>;
  values: ValuesStore;
  /** Object events after sync, kept a minute (recent.ts): a new leader replays them before its pass. */
  recent: RecentChanges;
  /** Releases seen created unstamped while the operator runs (created.ts): triggered once, not backfilled. */
  createdUnstamped: Pick<UnstampedCreations, 'has' | 'handled' | 'size'>;
  start(): void;
  stop(): Promise<void>;
  waitForSync(): Promise<void>;
  hasSynced(): boolean;
  /**
   * After sync, loads the consumed values of the cached releases in scope with a few LISTs (warmup.ts).
   * Runs once: later calls share the first run (and its scope). Every replica calls it at sync, so a
   * follower that becomes leader starts its first pass warm; stop() ends it between LISTs.
   */
  warmUp(inScope?: (namespace: string) => boolean): Promise<void>;
}

export interface CachesOptions {
  client: KubeClient;
  logger: Logger;
  /** The digest keys the values store digests with; undefined until loaded (src/values/key-secret.ts). */
  digestKeys: () => DigestKeys | undefined;
  /** Watch these namespaces only, one informer each (src/scope.ts `watched`); empty or absent: all. */
  namespaces?: readonly string[];
  /** Cache only the HelmReleases this label selector matches (--watch-label-selector: a shard). */
  releaseLabelSelector?: string;
  /** Also keep helmrelease-trigger-operator's link annotations (--compat-trigger-operator). */
  compatLinks?: boolean;
  /** Which sources helm-controller watches itself, by their labels (fluxWatchMatcher); default none. */
  fluxWatches?: LabelMatcher;
  /** Informer tuning (tests shorten these). */
  staleAfterMs?: number;
  pageSize?: number;
}

const LAST_APPLIED = 'kubectl.kubernetes.io/last-applied-configuration';
const NO_LINKS: Readonly<Record<string, string>> = Object.freeze({});

/** The annotation keys a metadata transform keeps. */
export function linkAnnotationKeys(compat: boolean): readonly string[] {
  const ours = [Annotations.linkReleases, Annotations.linkNamespace];
  return compat ? [...ours, ...CompatLinkAnnotations.flatMap((c) => [c.releases, c.namespace])] : ours;
}

/**
 * Narrows PartialObjectMetadata to the link annotations and whether helm-controller watches the object
 * (everything else is dropped at the edge).
 */
export function sourceMetaTransform(
  keys: readonly string[],
  fluxWatches?: LabelMatcher,
): (raw: unknown) => SourceMeta {
  return (raw) => {
    const meta = isObject(raw) && isObject(raw.metadata) ? raw.metadata : undefined;
    const watched = fluxWatches?.(stringMap(meta?.labels)) ? ({ fluxWatched: true } as const) : {};
    const links = linksOf(meta, keys);
    return { links, ...watched };
  };
}

/** The link annotations among `keys`; a shared empty object when there are none. */
function linksOf(meta: JsonObject | undefined, keys: readonly string[]): Readonly<Record<string, string>> {
  const annotations = meta && isObject(meta.annotations) ? stringMap(meta.annotations) : undefined;
  if (!annotations) return NO_LINKS;
  const links: Record<string, string> = {};
  let found = false;
  for (const k of keys) {
    const v = annotations[k];
    if (v === undefined) continue;
    links[k] = v;
    found = true;
  }
  return found ? links : NO_LINKS;
}

export function createCaches(o: CachesOptions): OperatorCaches {
  const log = o.logger.child({ component: 'caches' });
  const common = {
    client: o.client,
    logger: log,
    ...(o.staleAfterMs ? { staleAfterMs: o.staleAfterMs } : {}),
    ...(o.pageSize ? { pageSize: o.pageSize } : {}),
  };
  const namespaces = o.namespaces ?? [];
  const informer = <T>(options: Omit<InformerOptions<T>, 'client' | 'logger' | 'namespace'>) =>
    informerFor(namespaces, (namespace) => new Informer<T>({ ...common, ...options, namespace }));
  const helmReleases = informer<HelmRelease>({
    resource: HelmReleases,
    // A shard sees only its releases; sources are not labelled, so their informers see every one.
    ...(o.releaseLabelSelector ? { labelSelector: o.releaseLabelSelector } : {}),
    transform: (raw) => {
      const parsed = parseHelmRelease(raw);
      if (parsed.ok) {
        // kubectl's copy of the whole applied object: often the largest thing on a release, read by no one here.
        delete parsed.value.metadata.annotations[LAST_APPLIED];
        return parsed.value;
      }
      const meta = isObject(raw) && isObject(raw.metadata) ? raw.metadata : {};
      log.warn({ namespace: meta.namespace, name: meta.name, err: parsed.error }, 'HelmRelease not cached');
      return undefined;
    },
  });
  const transform = sourceMetaTransform(linkAnnotationKeys(o.compatLinks ?? false), o.fluxWatches);
  const configMaps = informer<SourceMeta>({ resource: ConfigMaps, metadataOnly: true, transform });
  const secrets = informer<SourceMeta>({ resource: Secrets, metadataOnly: true, transform });
  const values = new ValuesStore({
    sources: { ConfigMap: configMaps, Secret: secrets },
    keys: o.digestKeys,
    fetch: fetchFromApi(o.client),
    list: listFromApi(o.client),
  });
  for (const [kind, informer] of [
    ['ConfigMap', configMaps],
    ['Secret', secrets],
  ] as const) {
    informer.on({
      // An add too: an entry fetched before the metadata cache knew the object is for an older version.
      add: (obj) => values.invalidate(kind, obj.namespace, obj.name, obj.resourceVersion),
      update: (_old, obj) => values.invalidate(kind, obj.namespace, obj.name, obj.resourceVersion),
      delete: (obj) => values.invalidate(kind, obj.namespace, obj.name),
    });
  }
  const recent = new RecentChanges();
  // The first list is the state, not a change; a release's status (Flux reporting) is not either.
  const noteRelease = (c: Cached<HelmRelease>) => {
    if (helmReleases.hasSynced()) recent.note('HelmRelease', c.namespace, c.name);
  };
  helmReleases.on({
    add: noteRelease,
    update: (old, c) => {
      if (!statusOnly(old.value, c.value)) noteRelease(c);
    },
    delete: noteRelease,
  });
  // An add after the first list is a release created while the operator runs (or during a watch gap, seen by
  // a relist); one of the first list may be older than the webhook. A new uid under the same name is a
  // release deleted and created again while no watch was open.
  const createdUnstamped = new UnstampedCreations(undefined, () => o.digestKeys()?.since);
  helmReleases.on({
    add: (c) => {
      if (helmReleases.hasSynced()) createdUnstamped.created(c.value);
    },
    update: (old, c) => {
      if (old.value.metadata.uid === c.value.metadata.uid) return createdUnstamped.updated(c.value);
      createdUnstamped.deleted(old.value);
      createdUnstamped.created(c.value);
    },
    delete: (c) => createdUnstamped.deleted(c.value),
  });
  for (const [kind, informer] of [
    ['ConfigMap', configMaps],
    ['Secret', secrets],
  ] as const) {
    const note = (c: Cached<SourceMeta>) => {
      if (informer.hasSynced()) recent.note(kind, c.namespace, c.name);
    };
    informer.on({ add: note, update: (_old, c) => note(c), delete: note });
  }
  const all = [helmReleases, configMaps, secrets];
  const stopping = new AbortController();
  const waitForSync = async () => {
    await Promise.all(all.map((i) => i.waitForSync()));
  };
  let warm: Promise<void> | undefined;
  return {
    helmReleases,
    configMaps,
    secrets,
    values,
    recent,
    createdUnstamped,
    start: () => {
      for (const i of all) i.start();
    },
    stop: async () => {
      stopping.abort();
      await Promise.all(all.map((i) => i.stop()));
    },
    waitForSync,
    hasSynced: () => all.every((i) => i.hasSynced()),
    warmUp: (inScope) => {
      warm ??= (async () => {
        await Promise.race([waitForSync(), aborted(stopping.signal)]);
        if (stopping.signal.aborted) return;
        const caches = { helmReleases, configMaps, secrets, values };
        await warmValues(caches, { log, signal: stopping.signal, ...(inScope ? { inScope } : {}) });
      })();
      return warm;
    },
  };
}

/** Same generation, labels and annotations: only the status moved. */
function statusOnly(a: HelmRelease, b: HelmRelease): boolean {
  return (
    a.metadata.generation === b.metadata.generation &&
    JSON.stringify(a.metadata.labels) === JSON.stringify(b.metadata.labels) &&
    JSON.stringify(a.metadata.annotations) === JSON.stringify(b.metadata.annotations)
  );
}

function aborted(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener('abort', () => resolve(), { once: true });
  });
}
