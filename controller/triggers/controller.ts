// The trigger controller: informer events only enqueue release keys (debounced, coalesced); the reconciler
// decides from the caches. After the caches sync, every release is examined once: the digests on the
// releases are the state, so a restart with no change writes nothing and a change made while the operator
// was down is triggered once.
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { Config } from '../../src/config.ts';
import { fluxActivity } from '../../src/flux/activity.ts';
import {
  type HelmRelease,
  parseReleaseKey,
  releaseKey,
  type ValuesSourceKind,
} from '../../src/flux/helmrelease.ts';
import type { OperatorCaches, SourceMeta } from '../../src/kube/caches.ts';
import type { KubeClient } from '../../src/kube/client.ts';
import { createEventRecorder, type EventRecorder } from '../../src/kube/events.ts';
import type { Cached, Informer } from '../../src/kube/informer.ts';
import { skipBeforeLookup } from '../../src/triggers/decide.ts';
import { linkTargets, sourceId } from '../../src/triggers/links.ts';
import { tokenSource } from '../../src/triggers/token.ts';
import { HELM_SECRET_PREFIX, planWarmup, type WarmupGroup } from '../../src/triggers/warmup.ts';
import { type Clock, systemClock } from '../../src/util/clock.ts';
import { errorMessage } from '../../src/util/errors.ts';
import { DEFAULT_BACKOFF, TokenBucket, WorkQueue } from '../queue.ts';
import type { RolloutBudget } from '../rollout.ts';
import { TriggerIndex } from './index.ts';
import { createTriggerMetrics, type TriggerMetrics } from './metrics.ts';
import { ObservedChanges, type ReconcilerDeps, TriggerError, TriggerReconciler } from './reconciler.ts';

export type TriggerConfig = Pick<
  Config,
  | 'debounce'
  | 'concurrency'
  | 'write-qps'
  | 'write-burst'
  | 'force'
  | 'notify-only'
  | 'compat-trigger-operator'
>;

export interface TriggerControllerOptions {
  client: KubeClient;
  caches: OperatorCaches;
  config: TriggerConfig;
  logger: Logger;
  registry: Registry;
  clock?: Clock;
  events?: EventRecorder;
  /** Only releases in namespaces this accepts are examined (tests; namespace-scoped installs). */
  inScope?: (namespace: string) => boolean;
  /** Shared write rate limit (all reconcilers together); default: one of its own from --write-qps/--write-burst. */
  writeLimiter?: { take(): Promise<void> };
  /** Work queue backoff after a failure (default 100 ms doubling to 60 s). */
  backoff?: { baseMs: number; maxMs: number };
  /** --max-upgrades-in-flight, shared with the retries (default: no limit). */
  rolloutBudget?: RolloutBudget;
}

export interface TriggerController {
  /** True once the caches synced and every release was enqueued. */
  hasSynced(): boolean;
  /** Resolves when no release is waiting or being processed. */
  whenIdle(): Promise<void>;
  stop(): Promise<void>;
}

/** The reportingController of our events. */
const EVENTS_CONTROLLER = 'helmrelease-autopilot.dev/triggers';
/** LISTs the warm-up runs at once. */
const WARMUP_LISTS_AT_ONCE = 2;

/** What the event handlers, the seeding and the start-up share. */
interface Wiring {
  caches: OperatorCaches;
  index: TriggerIndex;
  queue: WorkQueue;
  observed: ObservedChanges;
  clock: Clock;
  log: Logger;
  inScope: (namespace: string) => boolean;
  /** --compat-trigger-operator: helmrelease-trigger-operator's link annotations count too. */
  compat: boolean;
  stopped: () => boolean;
}

export function startTriggerController(o: TriggerControllerOptions): TriggerController {
  const clock = o.clock ?? systemClock;
  const log = o.logger.child({ controller: 'triggers' });
  const lifecycle = new AbortController();
  const stopped = () => lifecycle.signal.aborted;
  const index = new TriggerIndex();
  const observed = new ObservedChanges();
  // The gauge reads the queue's depth only when scraped, after the queue below exists.
  const metrics = createTriggerMetrics(o.registry, () => queue.depth);
  const reconciler = newReconciler(o, {
    clock,
    logger: log,
    index,
    observed,
    metrics,
    stopped,
    wake: (key) => queue.addAfter(key, 0),
  });
  const queue = new WorkQueue((key) => reconciler.reconcile(key), {
    concurrency: o.config.concurrency,
    debounceMs: o.config.debounce,
    backoff: o.backoff ?? DEFAULT_BACKOFF,
    clock,
    onError: reportFailure(metrics, log),
  });
  const w: Wiring = {
    caches: o.caches,
    index,
    queue,
    observed,
    clock,
    log,
    inScope: o.inScope ?? (() => true),
    compat: o.config['compat-trigger-operator'],
    stopped,
  };
  const handlers = [watchReleases(w), ...watchSources(w)];
  seedIndex(w);
  let synced = false;
  const started = startAfterSync(w, lifecycle.signal, () => {
    synced = true;
  });

  return {
    hasSynced: () => synced,
    whenIdle: async () => {
      await started;
      await queue.whenIdle();
    },
    stop: async () => {
      lifecycle.abort();
      for (const off of handlers.splice(0)) off();
      await started;
      await queue.stop();
    },
  };
}

/** The reconciler, with the options' recorder, write limiter and flags (or defaults). */
function newReconciler(
  o: TriggerControllerOptions,
  shared: Pick<ReconcilerDeps, 'clock' | 'logger' | 'index' | 'observed' | 'metrics' | 'stopped' | 'wake'>,
): TriggerReconciler {
  const { clock, logger } = shared;
  return new TriggerReconciler({
    ...shared,
    client: o.client,
    caches: o.caches,
    events: o.events ?? createEventRecorder({ client: o.client, logger, controller: EVENTS_CONTROLLER }),
    writes: o.writeLimiter ?? new TokenBucket(o.config['write-qps'], o.config['write-burst'], clock),
    nextToken: tokenSource(clock),
    force: o.config.force,
    notifyOnly: o.config['notify-only'],
    ...(o.rolloutBudget ? { budget: o.rolloutBudget } : {}),
  });
}

/** The queue's error callback: count by type; a conflict is routine (debug), anything else a warning. */
function reportFailure(
  metrics: TriggerMetrics,
  log: Logger,
): (key: string, err: unknown, retryInMs: number) => void {
  return (key, err, retryInMs) => {
    const type = err instanceof TriggerError ? err.type : 'patch';
    metrics.errors.inc({ type });
    const fields = { key, retryInMs, err: errorMessage(err) };
    if (type === 'conflict') log.debug(fields, 'release changed while being reconciled: retrying');
    else log.warn(fields, 'trigger reconcile failed: retrying');
  };
}

/** Release events keep the index current and enqueue the release when what it is decided from changed. */
function watchReleases(w: Wiring): () => void {
  const indexRelease = (c: Cached<HelmRelease>) =>
    w.index.setRelease(c.namespace, c.name, c.value.valuesFrom);
  return w.caches.helmReleases.on({
    add: (c) => {
      if (w.stopped()) return;
      indexRelease(c);
      if (w.inScope(c.namespace)) w.queue.add(releaseKey(c.namespace, c.name));
    },
    update: (old, c) => {
      if (w.stopped()) return;
      indexRelease(c);
      // Status-only updates (Flux reports progress) cannot change the decision, except the one that says
      // Flux stopped working on it: a trigger held meanwhile is sent now.
      if (!w.inScope(c.namespace)) return;
      const key = releaseKey(c.namespace, c.name);
      if (decisionInputsDiffer(old.value, c.value)) w.queue.add(key);
      else if (fluxStopped(old.value, c.value, w.clock.now())) w.queue.addAfter(key, 0);
    },
    delete: (c) => {
      if (w.stopped()) return;
      w.index.deleteRelease(c.namespace, c.name);
      w.observed.take(releaseKey(c.namespace, c.name));
    },
  });
}

/** The ConfigMap and Secret informers, by kind. */
function sourceInformers(caches: OperatorCaches): [ValuesSourceKind, Informer<SourceMeta>][] {
  return [
    ['ConfigMap', caches.configMaps],
    ['Secret', caches.secrets],
  ];
}

/** Source events: see onSourceEvent. */
function watchSources(w: Wiring): (() => void)[] {
  return sourceInformers(w.caches).map(([kind, informer]) =>
    informer.on({
      add: (c) => onSourceEvent(w, kind, c, false),
      update: (_old, c) => onSourceEvent(w, kind, c, false),
      delete: (c) => onSourceEvent(w, kind, c, true),
    }),
  );
}

/** A source changed: its links are re-indexed, and every release it concerns, now or before, is enqueued. */
function onSourceEvent(w: Wiring, kind: ValuesSourceKind, c: Cached<SourceMeta>, deleted: boolean): void {
  if (w.stopped()) return;
  const targets = deleted ? [] : linkTargets(c.namespace, c.value.links, w.compat);
  const before = w.index.setLinks(kind, c.namespace, c.name, targets);
  const id = sourceId(kind, c.namespace, c.name);
  for (const key of [...w.index.releasesOf(kind, c.namespace, c.name), ...before]) {
    if (!w.inScope(parseReleaseKey(key).namespace)) continue;
    w.observed.note(key, w.clock.now(), id);
    w.queue.add(key);
  }
}

/** Indexes every cached release and every source with link annotations (again after the caches sync). */
function seedIndex(w: Wiring): void {
  for (const c of w.caches.helmReleases.list()) w.index.setRelease(c.namespace, c.name, c.value.valuesFrom);
  for (const [kind, informer] of sourceInformers(w.caches)) {
    for (const c of informer.list()) {
      if (Object.keys(c.value.links).length === 0) continue;
      w.index.setLinks(kind, c.namespace, c.name, linkTargets(c.namespace, c.value.links, w.compat));
    }
  }
}

/** After the caches sync: seed the index, warm the values up, and enqueue every release in scope once. */
async function startAfterSync(w: Wiring, stopping: AbortSignal, onSynced: () => void): Promise<void> {
  await Promise.race([w.caches.waitForSync(), aborted(stopping)]);
  if (w.stopped()) return;
  seedIndex(w);
  await warmUp(w);
  if (w.stopped()) return;
  let n = 0;
  for (const c of w.caches.helmReleases.list()) {
    if (!w.inScope(c.namespace)) continue;
    w.queue.addAfter(releaseKey(c.namespace, c.name), 0);
    n++;
  }
  onSynced();
  w.queue.start();
  w.log.info({ enqueued: n, ...w.index.stats }, 'trigger controller started: every release enqueued once');
}

function aborted(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener('abort', () => resolve(), { once: true });
  });
}

/** Best effort: whatever a LIST does not load, the reconciles GET. The plan is pure (planWarmup). */
async function warmUp(w: Wiring): Promise<void> {
  const t0 = w.clock.now();
  const listed = listedCounts(w.caches);
  const releases = [...w.caches.helmReleases.list()]
    .filter((c) => w.inScope(c.namespace) && !skipBeforeLookup(c.value))
    .map((c) => c.value);
  const groups = planWarmup(releases, (kind, ns) => listed.get(`${kind}/${ns}`) ?? 0);
  const kept = await prefetchAll(w, groups);
  if (groups.length > 0)
    w.log.info({ lists: groups.length, objects: kept, ms: w.clock.now() - t0 }, 'values warmed up');
}

/** How many objects a LIST of each kind/namespace would return, Helm's release Secrets left out. */
function listedCounts(caches: OperatorCaches): Map<string, number> {
  const listed = new Map<string, number>();
  for (const [kind, informer] of sourceInformers(caches)) {
    for (const c of informer.list()) {
      if (kind === 'Secret' && c.name.startsWith(HELM_SECRET_PREFIX)) continue;
      const k = `${kind}/${c.namespace}`;
      listed.set(k, (listed.get(k) ?? 0) + 1);
    }
  }
  return listed;
}

/** Runs the planned LISTs, a few at a time, until done or stopped; returns how many objects were kept. */
async function prefetchAll(w: Wiring, groups: readonly WarmupGroup[]): Promise<number> {
  let kept = 0;
  let next = 0;
  const worker = async () => {
    while (!w.stopped()) {
      const g = groups[next++];
      if (!g) return;
      try {
        kept += await w.caches.values.prefetch(g.kind, g.namespace, g.wanted, g.labelSelector);
      } catch (err) {
        w.log.warn(
          { kind: g.kind, namespace: g.namespace, err: errorMessage(err) },
          'warm-up LIST failed: GETs instead',
        );
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(WARMUP_LISTS_AT_ONCE, groups.length) }, worker));
  return kept;
}

/** Flux was working on the release and no longer is (a held trigger is due). */
function fluxStopped(a: HelmRelease, b: HelmRelease, nowMs: number): boolean {
  return fluxActivity(a, nowMs).busy && !fluxActivity(b, nowMs).busy;
}

/** Whether an update of a release can change what decideTrigger answers. */
function decisionInputsDiffer(a: HelmRelease, b: HelmRelease): boolean {
  return (
    a.suspend !== b.suspend ||
    a.metadata.deletionTimestamp !== b.metadata.deletionTimestamp ||
    JSON.stringify(a.valuesFrom) !== JSON.stringify(b.valuesFrom) ||
    JSON.stringify(a.metadata.annotations) !== JSON.stringify(b.metadata.annotations) ||
    JSON.stringify(a.metadata.labels) !== JSON.stringify(b.metadata.labels)
  );
}
