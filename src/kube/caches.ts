// The operator's shared caches: one HelmRelease informer (full objects, parsed once), metadata-only
// ConfigMap and Secret informers that keep only resourceVersion and our link annotations, and the values
// store that fetches data on demand. The webhook, the trigger reconciler and the retry reconciler all read
// these; none opens a watch of its own.
import type { Logger } from 'pino';
import { type HelmRelease, parseHelmRelease } from '../flux/helmrelease.ts';
import { Annotations, CompatLinkAnnotations } from '../names.ts';
import { isObject, type JsonObject, stringMap } from '../util/narrow.ts';
import { fetchFromApi, listFromApi, ValuesStore } from '../values/store.ts';
import type { KubeClient } from './client.ts';
import { Informer } from './informer.ts';
import { ConfigMaps, HelmReleases, Secrets } from './resources.ts';
import type { LabelMatcher } from './selector.ts';

/** What is kept of a ConfigMap or Secret: only the link annotations (resourceVersion is on Cached). */
export interface SourceMeta {
  /** Link annotations present on the object; a shared empty object for the (many) objects without. */
  links: Readonly<Record<string, string>>;
  /** Its labels match the selector helm-controller watches configs by (--flux-watches-configs). */
  fluxWatched?: true;
}

export interface OperatorCaches {
  /** Parsed releases; kubectl's last-applied-configuration annotation is not kept. */
  helmReleases: Informer<HelmRelease>;
  configMaps: Informer<SourceMeta>;
  secrets: Informer<SourceMeta>;
  values: ValuesStore;
  start(): void;
  stop(): Promise<void>;
  waitForSync(): Promise<void>;
  hasSynced(): boolean;
}

export interface CachesOptions {
  client: KubeClient;
  logger: Logger;
  /** Watch one namespace only (tests, namespace-scoped installs); default all. */
  namespace?: string;
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
    ...(o.namespace ? { namespace: o.namespace } : {}),
    ...(o.staleAfterMs ? { staleAfterMs: o.staleAfterMs } : {}),
    ...(o.pageSize ? { pageSize: o.pageSize } : {}),
  };
  const helmReleases = new Informer<HelmRelease>({
    ...common,
    resource: HelmReleases,
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
  const configMaps = new Informer<SourceMeta>({
    ...common,
    resource: ConfigMaps,
    metadataOnly: true,
    transform,
  });
  const secrets = new Informer<SourceMeta>({ ...common, resource: Secrets, metadataOnly: true, transform });
  const values = new ValuesStore({
    sources: { ConfigMap: configMaps, Secret: secrets },
    fetch: fetchFromApi(o.client),
    list: listFromApi(o.client),
  });
  for (const [kind, informer] of [
    ['ConfigMap', configMaps],
    ['Secret', secrets],
  ] as const) {
    informer.on({
      update: (_old, obj) => values.invalidate(kind, obj.namespace, obj.name, obj.resourceVersion),
      delete: (obj) => values.invalidate(kind, obj.namespace, obj.name),
    });
  }
  const all = [helmReleases, configMaps, secrets];
  return {
    helmReleases,
    configMaps,
    secrets,
    values,
    start: () => {
      for (const i of all) i.start();
    },
    stop: async () => {
      await Promise.all(all.map((i) => i.stop()));
    },
    waitForSync: async () => {
      await Promise.all(all.map((i) => i.waitForSync()));
    },
    hasSynced: () => all.every((i) => i.hasSynced()),
  };
}
