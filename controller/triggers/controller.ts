// The trigger controller: informer events only enqueue release keys (debounced, coalesced); the reconciler
// decides from the caches. After the caches sync, every release is examined once: the digests on the
// releases are the state, so a restart with no change writes nothing and a change made while the operator
// was down is triggered once.
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { Config } from '../../src/config.ts';
import { type HelmRelease, releaseKey, type ValuesSourceKind } from '../../src/flux/helmrelease.ts';
import type { OperatorCaches, SourceMeta } from '../../src/kube/caches.ts';
import type { KubeClient } from '../../src/kube/client.ts';
import { createEventRecorder, type EventRecorder } from '../../src/kube/events.ts';
import type { Cached } from '../../src/kube/informer.ts';
import { skipBeforeLookup } from '../../src/triggers/decide.ts';
import { linkTargets, sourceId } from '../../src/triggers/links.ts';
import { tokenSource } from '../../src/triggers/token.ts';
import { HELM_SECRET_PREFIX, planWarmup, type WarmupGroup } from '../../src/triggers/warmup.ts';
import { type Clock, systemClock } from '../../src/util/clock.ts';
import { errorMessage } from '../../src/util/errors.ts';
import { TokenBucket, WorkQueue } from '../queue.ts';
import { TriggerIndex } from './index.ts';
import { createTriggerMetrics } from './metrics.ts';
import { ObservedChanges, TriggerError, TriggerReconciler } from './reconciler.ts';

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
}

export interface TriggerController {
  /** True once the caches synced and every release was enqueued. */
  hasSynced(): boolean;
  /** Resolves when no release is waiting or being processed. */
  whenIdle(): Promise<void>;
  stop(): Promise<void>;
}

export function startTriggerController(o: TriggerControllerOptions): TriggerController {
  const clock = o.clock ?? systemClock;
  const log = o.logger.child({ controller: 'triggers' });
  const inScope = o.inScope ?? (() => true);
  const compat = o.config['compat-trigger-operator'];
  const index = new TriggerIndex();
  const observed = new ObservedChanges();
  let stopped = false;
  let synced = false;

  // The queue's handler is bound below, once the reconciler (which needs the metrics) exists.
  let handle: (key: string) => Promise<undefined> = async () => undefined;
  const queue = new WorkQueue((key) => handle(key), {
    concurrency: o.config.concurrency,
    debounceMs: o.config.debounce,
    backoff: o.backoff ?? { baseMs: 100, maxMs: 60_000 },
    clock,
    onError: (key, err, retryInMs) => {
      const type = err instanceof TriggerError ? err.type : 'patch';
      metrics.errors.inc({ type });
      const fields = { key, retryInMs, err: errorMessage(err) };
      if (type === 'conflict') log.debug(fields, 'release changed while being reconciled: retrying');
      else log.warn(fields, 'trigger reconcile failed: retrying');
    },
  });
  const metrics = createTriggerMetrics(o.registry, () => queue.depth);
  const reconciler = new TriggerReconciler({
    client: o.client,
    caches: o.caches,
    index,
    events:
      o.events ??
      createEventRecorder({
        client: o.client,
        logger: log,
        controller: 'helmrelease-autopilot.dev/triggers',
      }),
    metrics,
    logger: log,
    clock,
    writes: o.writeLimiter ?? new TokenBucket(o.config['write-qps'], o.config['write-burst'], clock),
    stopped: () => stopped,
    nextToken: tokenSource(clock),
    observed,
    force: o.config.force,
    notifyOnly: o.config['notify-only'],
  });
  handle = (key) => reconciler.reconcile(key);

  const enqueue = (key: string, source?: string) => {
    if (stopped) return;
    const ns = key.slice(0, key.indexOf('/'));
    if (!inScope(ns)) return;
    observed.note(key, clock.now(), source);
    queue.add(key);
  };

  const indexRelease = (c: Cached<HelmRelease>) => index.setRelease(c.namespace, c.name, c.value.valuesFrom);
  const handlers: (() => void)[] = [];
  handlers.push(
    o.caches.helmReleases.on({
      add: (c) => {
        if (stopped) return;
        indexRelease(c);
        if (inScope(c.namespace)) queue.add(releaseKey(c.namespace, c.name));
      },
      update: (old, c) => {
        if (stopped) return;
        indexRelease(c);
        // Status-only updates (Flux reports progress) cannot change the decision.
        if (inScope(c.namespace) && decisionInputsDiffer(old.value, c.value))
          queue.add(releaseKey(c.namespace, c.name));
      },
      delete: (c) => {
        if (stopped) return;
        index.deleteRelease(c.namespace, c.name);
        observed.take(releaseKey(c.namespace, c.name));
      },
    }),
  );

  const onSource = (kind: ValuesSourceKind, c: Cached<SourceMeta>, deleted: boolean) => {
    if (stopped) return;
    const before = index.setLinks(
      kind,
      c.namespace,
      c.name,
      deleted ? [] : linkTargets(c.namespace, c.value.links, compat),
    );
    const id = sourceId(kind, c.namespace, c.name);
    for (const key of index.releasesOf(kind, c.namespace, c.name)) enqueue(key, id);
    for (const key of before) enqueue(key, id);
  };
  for (const [kind, informer] of [
    ['ConfigMap', o.caches.configMaps],
    ['Secret', o.caches.secrets],
  ] as const) {
    handlers.push(
      informer.on({
        add: (c) => onSource(kind, c, false),
        update: (_old, c) => onSource(kind, c, false),
        delete: (c) => onSource(kind, c, true),
      }),
    );
  }

  const seed = () => {
    for (const c of o.caches.helmReleases.list()) indexRelease(c);
    for (const [kind, informer] of [
      ['ConfigMap', o.caches.configMaps],
      ['Secret', o.caches.secrets],
    ] as const) {
      for (const c of informer.list()) {
        if (Object.keys(c.value.links).length === 0) continue;
        index.setLinks(kind, c.namespace, c.name, linkTargets(c.namespace, c.value.links, compat));
      }
    }
  };
  seed();

  /** Best effort: whatever a LIST does not load, the reconciles GET. */
  const warmUp = async () => {
    const t0 = clock.now();
    const listed = new Map<string, number>();
    for (const [kind, informer] of [
      ['ConfigMap', o.caches.configMaps],
      ['Secret', o.caches.secrets],
    ] as const) {
      for (const c of informer.list()) {
        if (kind === 'Secret' && c.name.startsWith(HELM_SECRET_PREFIX)) continue;
        const k = `${kind}/${c.namespace}`;
        listed.set(k, (listed.get(k) ?? 0) + 1);
      }
    }
    const releases = [...o.caches.helmReleases.list()]
      .filter((c) => inScope(c.namespace) && !skipBeforeLookup(c.value))
      .map((c) => c.value);
    const groups = planWarmup(releases, (kind, ns) => listed.get(`${kind}/${ns}`) ?? 0);
    let kept = 0;
    let next = 0;
    await Promise.all(
      Array.from({ length: Math.min(2, groups.length) }, async () => {
        while (next < groups.length && !stopped) {
          const g = groups[next++] as WarmupGroup;
          try {
            kept += await o.caches.values.prefetch(g.kind, g.namespace, g.wanted, g.labelSelector);
          } catch (err) {
            log.warn(
              { kind: g.kind, namespace: g.namespace, err: errorMessage(err) },
              'warm-up LIST failed: GETs instead',
            );
          }
        }
      }),
    );
    if (groups.length > 0)
      log.info({ lists: groups.length, objects: kept, ms: clock.now() - t0 }, 'values warmed up');
  };

  let onStop: () => void = () => {};
  const stopping = new Promise<void>((resolve) => {
    onStop = resolve;
  });
  const started = (async () => {
    await Promise.race([o.caches.waitForSync(), stopping]);
    if (stopped) return;
    seed();
    await warmUp();
    if (stopped) return;
    let n = 0;
    for (const c of o.caches.helmReleases.list()) {
      if (!inScope(c.namespace)) continue;
      queue.addAfter(releaseKey(c.namespace, c.name), 0);
      n++;
    }
    synced = true;
    queue.start();
    log.info({ enqueued: n, ...index.stats }, 'trigger controller started: every release enqueued once');
  })();

  return {
    hasSynced: () => synced,
    whenIdle: async () => {
      await started;
      await queue.whenIdle();
    },
    stop: async () => {
      stopped = true;
      for (const off of handlers.splice(0)) off();
      onStop();
      await started;
      await queue.stop();
    },
  };
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
