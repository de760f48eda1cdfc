// The retry controller: watches HelmReleases through the shared cache and enqueues every one that changes;
// the reconciler (reconciler.ts) re-reads it and acts. The queue alone decides when a release is looked at
// again (controller/queue.ts): after the backoff Flux is owed, or with backoff after a failure or a 409.
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { Config } from '../../src/config.ts';
import { releaseKey } from '../../src/flux/helmrelease.ts';
import type { OperatorCaches } from '../../src/kube/caches.ts';
import type { KubeClient } from '../../src/kube/client.ts';
import { createEventRecorder, type EventRecorder } from '../../src/kube/events.ts';
import { type Clock, systemClock } from '../../src/util/clock.ts';
import { errorMessage } from '../../src/util/errors.ts';
import { TokenBucket, WorkQueue, type WriteTokens } from '../queue.ts';
import type { RolloutBudget } from '../rollout.ts';
import { createRetryMetrics, type RetryMetrics } from './metrics.ts';
import { RetryConflict, RetryReconciler } from './reconciler.ts';

/** `retry` holds the patterns and limits parseConfig resolved from the --retry-* flags. */
export type RetryConfig = Pick<
  Config,
  'retries' | 'retry' | 'notify-only' | 'concurrency' | 'write-qps' | 'write-burst'
>;

export interface RetryControllerOptions {
  client: KubeClient;
  caches: Pick<OperatorCaches, 'helmReleases'>;
  config: RetryConfig;
  logger: Logger;
  /** The metrics are registered here, unless `metrics` is given. */
  registry: Registry;
  /** Metrics made by the caller, to start the controller again on one registry (tests). */
  metrics?: RetryMetrics;
  clock?: Clock;
  /** Default: a recorder of its own. */
  events?: EventRecorder;
  /** Shared write rate limit (all reconcilers together); default: one of its own from --write-qps/--write-burst. */
  writeLimiter?: WriteTokens;
  /** Only releases in namespaces this accepts are retried (src/scope.ts); default all. */
  inScope?: (namespace: string) => boolean;
  /** --max-upgrades-in-flight, shared with the triggers (default: no limit). */
  rolloutBudget?: RolloutBudget;
}

export interface RetryController {
  /** Resolves when no release is being processed or due now (tests). */
  whenIdle(): Promise<void>;
  stop(): Promise<void>;
}

export function startRetryController(o: RetryControllerOptions): RetryController {
  const clock = o.clock ?? systemClock;
  const log = o.logger.child({ component: 'retries' });
  const metrics = o.metrics ?? createRetryMetrics(o.registry);
  let stopping = false;
  const reconciler = new RetryReconciler({
    ...o,
    clock,
    log,
    events: o.events ?? createEventRecorder({ client: o.client, logger: log, clock }),
    writeLimiter: o.writeLimiter ?? new TokenBucket(o.config['write-qps'], o.config['write-burst'], clock),
    metrics,
    stopped: () => stopping,
    ...(o.rolloutBudget ? { budget: o.rolloutBudget } : {}),
    wake: (key) => queue.addAfter(key, 0),
  });
  const queue = new WorkQueue((key, priority) => reconciler.reconcile(key, priority), {
    concurrency: o.config.concurrency,
    debounceMs: 0,
    clock,
    onError: (key, err, retryInMs) => {
      const fields = { key, retryInMs, err: errorMessage(err) };
      if (err instanceof RetryConflict) log.debug(fields, 'release changed since it was read: re-examining');
      else log.warn(fields, 'retry reconcile failed');
    },
  });
  const inScope = o.inScope ?? (() => true);
  // A change seen now goes first; the objects of the cache's first list are the start-up pass (low).
  const enqueue = (obj: { namespace: string; name: string }) => {
    if (!inScope(obj.namespace)) return;
    const key = releaseKey(obj.namespace, obj.name);
    if (o.caches.helmReleases.hasSynced()) queue.add(key);
    else queue.addAfter(key, 0, 'low');
  };
  let off = () => {};
  if (o.config.retries) {
    off = o.caches.helmReleases.on({ add: enqueue, update: (_old, obj) => enqueue(obj), delete: enqueue });
    // The start-up pass: behind any change seen from now on (controller/queue.ts priorities).
    for (const obj of o.caches.helmReleases.list())
      queue.addAfter(releaseKey(obj.namespace, obj.name), 0, 'low');
    queue.start();
  }
  return {
    whenIdle: () => queue.whenIdle(),
    async stop() {
      stopping = true;
      off();
      await queue.stop();
      metrics.reset();
    },
  };
}
