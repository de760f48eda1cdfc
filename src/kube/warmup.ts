// The values warm-up: after the caches sync, the consumed keys of every cached release are loaded with a few
// paged LISTs (the plan is pure: src/triggers/warmup.ts) instead of a GET per object at the first look.
// It runs once per process, at sync time, on every replica: the webhook reads the same store, and a follower
// that becomes leader starts its first pass warm. Best effort: what a LIST does not load, a lookup GETs.
import type { Logger } from 'pino';
import type { HelmRelease, ValuesSourceKind } from '../flux/helmrelease.ts';
import { skipBeforeLookup } from '../triggers/decide.ts';
import { HELM_SECRET_PREFIX, planWarmup, type WarmupGroup } from '../triggers/warmup.ts';
import { errorMessage } from '../util/errors.ts';
import type { ValuesStore } from '../values/store.ts';
import type { Informer } from './informer.ts';

/** LISTs the warm-up runs at once. */
const LISTS_AT_ONCE = 2;

export interface WarmupSources {
  helmReleases: Pick<Informer<HelmRelease>, 'list'>;
  configMaps: Pick<Informer<unknown>, 'list'>;
  secrets: Pick<Informer<unknown>, 'list'>;
  values: Pick<ValuesStore, 'prefetch'>;
}

export interface WarmupOptions {
  log: Logger;
  /** Only releases in namespaces this accepts are warmed (default: every cached release). */
  inScope?: (namespace: string) => boolean;
  /** Stops between LISTs once aborted. */
  signal?: AbortSignal;
}

export interface WarmupResult {
  lists: number;
  objects: number;
  ms: number;
}

/** Plans and runs the warm-up LISTs over what the caches hold now. */
export async function warmValues(c: WarmupSources, o: WarmupOptions): Promise<WarmupResult> {
  const t0 = performance.now();
  const inScope = o.inScope ?? (() => true);
  const listed = listedCounts(c);
  const releases = [...c.helmReleases.list()]
    .filter((r) => inScope(r.namespace) && !skipBeforeLookup(r.value))
    .map((r) => r.value);
  const groups = planWarmup(releases, (kind, ns) => listed.get(`${kind}/${ns}`) ?? 0);
  const objects = await prefetchAll(c, groups, o);
  const result = { lists: groups.length, objects, ms: Math.round(performance.now() - t0) };
  if (groups.length > 0) o.log.info(result, 'values warmed up');
  return result;
}

/** How many objects a LIST of each kind/namespace would return, Helm's release Secrets left out. */
function listedCounts(c: WarmupSources): Map<string, number> {
  const listed = new Map<string, number>();
  for (const [kind, informer] of [
    ['ConfigMap', c.configMaps],
    ['Secret', c.secrets],
  ] as const) {
    for (const obj of informer.list()) {
      if (kind === 'Secret' && obj.name.startsWith(HELM_SECRET_PREFIX)) continue;
      const k = `${kind satisfies ValuesSourceKind}/${obj.namespace}`;
      listed.set(k, (listed.get(k) ?? 0) + 1);
    }
  }
  return listed;
}

/** Runs the planned LISTs, a few at a time, until done or aborted; returns how many objects were kept. */
async function prefetchAll(
  c: WarmupSources,
  groups: readonly WarmupGroup[],
  o: WarmupOptions,
): Promise<number> {
  let kept = 0;
  let next = 0;
  const worker = async () => {
    while (!o.signal?.aborted) {
      const g = groups[next++];
      if (!g) return;
      try {
        kept += await c.values.prefetch(g.kind, g.namespace, g.wanted, g.labelSelector);
      } catch (err) {
        o.log.warn(
          { kind: g.kind, namespace: g.namespace, err: errorMessage(err) },
          'warm-up LIST failed: GETs instead',
        );
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(LISTS_AT_ONCE, groups.length) }, worker));
  return kept;
}
