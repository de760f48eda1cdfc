// The trigger controller: informer events only enqueue release keys (debounced, coalesced); the reconciler
// decides from the caches. After the caches sync, every release is examined once (the start-up pass, at low
// priority: changes seen meanwhile go first, and those the caches saw lately are replayed first): the
// digests on the releases are the state, so a restart with no change writes nothing and a change made while
// the operator was down is triggered once.
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
import type { Cached } from '../../src/kube/informer.ts';
import type { SharedInformer } from '../../src/kube/informers.ts';
import { linkTargets, parseSourceId, sourceId } from '../../src/triggers/links.ts';
import { tokenSource } from '../../src/triggers/token.ts';
import { type Clock, systemClock } from '../../src/util/clock.ts';
import { errorMessage } from '../../src/util/errors.ts';
import { DEFAULT_BACKOFF, TokenBucket, WorkQueue, type WriteTokens } from '../queue.ts';
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
> &
  Partial<Pick<Config, 'no-cross-namespace-links' | 'no-release-force'>>;

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
  writeLimiter?: WriteTokens;
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
  /** Resolves when the start-up pass has examined every release (or the controller stopped). */
  whenPassDone(): Promise<void>;
  stop(): Promise<void>;
}

/** The reportingController of our events. */
const EVENTS_CONTROLLER = 'helmrelease-autopilot.dev/triggers';

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
  const queue = new WorkQueue((key, priority) => reconciler.reconcile(key, priority), {
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
    whenPassDone: async () => {
      await (await started).passDone;
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
    noCrossNamespaceLinks: o.config['no-cross-namespace-links'] === true,
    noReleaseForce: o.config['no-release-force'] === true,
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
      // The first list is the start-up state, examined by the start-up pass; a release added later goes first.
      if (w.inScope(c.namespace) && w.caches.helmReleases.hasSynced())
        w.queue.add(releaseKey(c.namespace, c.name));
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
function sourceInformers(caches: OperatorCaches): [ValuesSourceKind, SharedInformer<SourceMeta>][] {
  return [
    ['ConfigMap', caches.configMaps],
    ['Secret', caches.secrets],
  ];
}

/** Source events: see onSourceEvent. */
function watchSources(w: Wiring): (() => void)[] {
  return sourceInformers(w.caches).map(([kind, informer]) =>
    informer.on({
      add: (c) => onSourceEvent(w, kind, informer, c, false),
      update: (_old, c) => onSourceEvent(w, kind, informer, c, false),
      delete: (c) => onSourceEvent(w, kind, informer, c, true),
    }),
  );
}

/**
 * A source changed: its links are re-indexed, and every release it concerns, now or before, is enqueued. The
 * objects of the informer's first list are the start-up state, not changes: the start-up pass examines them.
 */
function onSourceEvent(
  w: Wiring,
  kind: ValuesSourceKind,
  informer: SharedInformer<SourceMeta>,
  c: Cached<SourceMeta>,
  deleted: boolean,
): void {
  if (w.stopped()) return;
  const targets = deleted ? [] : linkTargets(c.namespace, c.value.links, w.compat);
  const before = w.index.setLinks(kind, c.namespace, c.name, targets);
  if (!informer.hasSynced()) return;
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

/** Releases of the start-up pass served before the values warm-up: at most this many GETs per source kind. */
const BEFORE_WARMUP = 100;

/**
 * After the caches sync: seed the index and start serving changes; once the values are warm (on a follower
 * that took over, warmed at sync, before leadership), enqueue every release in scope once, at low priority
 * (a change seen from now on goes first). Resolves when the pass is enqueued; `passDone` when it is over.
 */
async function startAfterSync(
  w: Wiring,
  stopping: AbortSignal,
  onSynced: () => void,
): Promise<{ passDone: Promise<void> }> {
  const never = { passDone: aborted(stopping) };
  await Promise.race([w.caches.waitForSync(), aborted(stopping)]);
  if (w.stopped()) return never;
  seedIndex(w);
  const replayed = replayRecent(w);
  w.queue.start();
  const t0 = w.clock.now();
  // The releases with the newest sources go first, before the warm-up's LISTs (a GET each): a change made
  // just before or during the start is acted on within moments of the sync, not after the warm-up.
  const pass = passOrder(w);
  for (const key of pass.slice(0, BEFORE_WARMUP)) w.queue.addAfter(key, 0, 'low');
  await Promise.race([w.caches.warmUp(w.inScope), aborted(stopping)]);
  if (w.stopped()) return never;
  for (const key of pass.slice(BEFORE_WARMUP)) w.queue.addAfter(key, 0, 'low');
  const n = pass.length;
  onSynced();
  w.log.info(
    { enqueued: n, replayed, ...w.index.stats },
    'trigger controller started: every release enqueued once',
  );
  const passDone = w.queue.whenLowDone().then(() => {
    if (!w.stopped()) w.log.info({ releases: n, ms: w.clock.now() - t0 }, 'start-up pass done');
  });
  return { passDone: Promise.race([passDone, aborted(stopping)]) };
}

/**
 * The releases in scope, in the order the start-up pass serves them: newest source first, by the highest
 * resourceVersion among the ConfigMaps and Secrets each consumes or is linked from. A change made just before
 * or during the start (the likeliest to be unseen) is then reached in the pass's first moments, not at a
 * random point of a pass over thousands. Ordering only: nothing else reads a resourceVersion as a number, and
 * one that is not an integer sorts last.
 */
export function passOrder(w: Pick<Wiring, 'caches' | 'index' | 'inScope'>): string[] {
  const rvOf = (kind: ValuesSourceKind, namespace: string, name: string) => {
    const c = (kind === 'ConfigMap' ? w.caches.configMaps : w.caches.secrets).get(namespace, name);
    const n = c ? Number(c.resourceVersion) : Number.NaN;
    return Number.isSafeInteger(n) ? n : -1;
  };
  const releases: { key: string; newest: number }[] = [];
  for (const c of w.caches.helmReleases.list()) {
    if (!w.inScope(c.namespace)) continue;
    let newest = -1;
    for (const ref of c.value.valuesFrom) newest = Math.max(newest, rvOf(ref.kind, c.namespace, ref.name));
    for (const id of w.index.linkedSources(c.namespace, c.name)) {
      const s = parseSourceId(id);
      newest = Math.max(newest, rvOf(s.kind, s.namespace, s.name));
    }
    releases.push({ key: releaseKey(c.namespace, c.name), newest });
  }
  return releases.sort((a, b) => b.newest - a.newest).map((r) => r.key);
}

/**
 * The changes the caches saw lately (on every replica, src/kube/recent.ts) go first, each debounced from when
 * it was seen: on a follower that took over, a change made while no one led is acted on before the pass
 * reaches it. Returns how many releases were enqueued.
 */
function replayRecent(w: Wiring): number {
  const debounce = w.queue.debounceMs;
  let n = 0;
  for (const ch of w.caches.recent.list()) {
    const keys =
      ch.kind === 'HelmRelease'
        ? w.caches.helmReleases.get(ch.namespace, ch.name)
          ? [releaseKey(ch.namespace, ch.name)]
          : []
        : w.index.releasesOf(ch.kind, ch.namespace, ch.name);
    for (const key of keys) {
      if (!w.inScope(parseReleaseKey(key).namespace)) continue;
      if (ch.kind !== 'HelmRelease') w.observed.note(key, ch.at, sourceId(ch.kind, ch.namespace, ch.name));
      w.queue.addAfter(key, ch.at + debounce - w.clock.now());
      n++;
    }
  }
  return n;
}

function aborted(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener('abort', () => resolve(), { once: true });
  });
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
