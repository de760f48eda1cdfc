// The retry reconciler: watches HelmReleases through the shared cache, and for each one that failed on a
// transient error asks Flux to try again — after a backoff, up to a cap, with its state on the release.
// Reconcile by key: every event only enqueues the release; the handler re-reads it from the cache,
// classifies it, decides (src/retry, pure) and performs at most one conditional write.
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { Config } from '../../src/config.ts';
import { type HelmRelease, releaseKey } from '../../src/flux/helmrelease.ts';
import type { OperatorCaches } from '../../src/kube/caches.ts';
import { isConflict, isNotFound, type KubeClient } from '../../src/kube/client.ts';
import { createEventRecorder, type EventRecorder, releaseTarget } from '../../src/kube/events.ts';
import type { MergePatch } from '../../src/kube/patch.ts';
import { HelmReleases, objectPath } from '../../src/kube/resources.ts';
import { type Action, decideRetry, retryInput } from '../../src/retry/decide.ts';
import { type Clock, systemClock } from '../../src/util/clock.ts';
import { errorMessage } from '../../src/util/errors.ts';
import { TokenBucket, WorkQueue } from '../queue.ts';
import { RetryEvents } from './events.ts';
import { createRetryMetrics, type RetryMetrics } from './metrics.ts';

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
  writeLimiter?: { take(): Promise<void> };
}

export interface RetryController {
  /** Resolves when no release is being processed or due now (tests). */
  whenIdle(): Promise<void>;
  stop(): Promise<void>;
}

/** How long to wait before re-examining a release after a 409 (the watch usually delivers it first). */
const CONFLICT_REQUEUE_MS = 1000;

export function startRetryController(o: RetryControllerOptions): RetryController {
  const clock = o.clock ?? systemClock;
  const log = o.logger.child({ component: 'retries' });
  const metrics = o.metrics ?? createRetryMetrics(o.registry);
  const r = new RetryReconciler({
    ...o,
    clock,
    log,
    events: o.events ?? createEventRecorder({ client: o.client, logger: log, clock }),
    writeLimiter: o.writeLimiter ?? new TokenBucket(o.config['write-qps'], o.config['write-burst'], clock),
    metrics,
  });
  const queue = new WorkQueue((key) => r.reconcile(key), {
    concurrency: o.config.concurrency,
    debounceMs: 0,
    clock,
    onError: (key, err, retryInMs) =>
      log.warn({ key, err: errorMessage(err), retryInMs }, 'retry reconcile failed'),
  });
  const enqueue = (obj: { namespace: string; name: string }) =>
    queue.add(releaseKey(obj.namespace, obj.name));
  let off = () => {};
  if (o.config.retries) {
    off = o.caches.helmReleases.on({ add: enqueue, update: (_old, obj) => enqueue(obj), delete: enqueue });
    for (const obj of o.caches.helmReleases.list()) enqueue(obj);
    queue.start();
  }
  return {
    whenIdle: () => queue.whenIdle(),
    async stop() {
      off();
      await queue.stop();
      metrics.reset();
    },
  };
}

interface Deps {
  client: KubeClient;
  caches: Pick<OperatorCaches, 'helmReleases'>;
  config: RetryConfig;
  clock: Clock;
  log: Logger;
  events: EventRecorder;
  writeLimiter: { take(): Promise<void> };
  metrics: RetryMetrics;
}

class RetryReconciler {
  private readonly d: Deps;
  /** Last (episode/attempt) announced per release, so "retry scheduled" is said once, not per event. */
  private readonly announced = new Map<string, string>();

  constructor(d: Deps) {
    this.d = d;
  }

  async reconcile(key: string): Promise<undefined | { requeueAfterMs: number }> {
    const slash = key.indexOf('/');
    const cached = this.d.caches.helmReleases.get(key.slice(0, slash), key.slice(slash + 1));
    if (!cached) {
      this.d.metrics.forget(key);
      this.announced.delete(key);
      return undefined;
    }
    const hr = cached.value;
    const log = this.d.log.child({
      namespace: hr.metadata.namespace,
      name: hr.metadata.name,
      resourceVersion: hr.metadata.resourceVersion,
    });
    const input = retryInput(hr, this.d.config.retry);
    const { classification: c, problems } = input;
    if (problems.length > 0) {
      log.warn({ problems }, 'malformed retry settings on the release: using defaults');
      await this.d.events.emit(releaseTarget(hr), RetryEvents.invalidSettings(problems));
    }
    const action = decideRetry(input, this.d.config.retry.limits, this.d.clock.now());
    this.d.metrics.track(
      key,
      action.kind === 'wait' ? 'backing-off' : action.kind.startsWith('exhaust') ? 'exhausted' : 'other',
    );
    return this.act(key, hr, action, c.reason, log);
  }

  private async act(
    key: string,
    hr: HelmRelease,
    a: Action,
    why: string,
    log: Logger,
  ): Promise<undefined | { requeueAfterMs: number }> {
    const max = this.d.config.retry.limits.maxAttempts;
    const notifyOnly = this.d.config['notify-only'];
    switch (a.kind) {
      case 'none':
        log.debug({ why: a.why }, 'no retry');
        return undefined;
      case 'exhausted':
        log.debug({ attempts: a.attempts, episode: a.episode }, 'retry budget spent');
        return undefined;
      case 'wait':
        if (this.once(key, `${a.episode}/${a.attempt}/scheduled`)) {
          log.info({ attempt: a.attempt, delayMs: a.delayMs, why }, 'retry scheduled');
          await this.d.events.emit(releaseTarget(hr), RetryEvents.scheduled(why, a.attempt, max, a.delayMs));
        }
        return { requeueAfterMs: a.delayMs };
      case 'clear':
        if (notifyOnly) return undefined;
        log.info('release is Ready: retry state cleared');
        return this.write(hr, a.patch, log);
      case 'retry':
        if (notifyOnly) {
          if (this.once(key, `${a.episode}/${a.attempt}/due`)) {
            this.d.metrics.outcome('notified');
            await this.d.events.emit(releaseTarget(hr), RetryEvents.due(why, a.attempt, max));
          }
          return undefined;
        }
        return this.write(hr, a.patch, log, async () => {
          this.d.metrics.outcome('triggered');
          log.info({ attempt: a.attempt, token: a.token, why }, 'retry requested');
          await this.d.events.emit(releaseTarget(hr), RetryEvents.triggered(why, a.attempt, max, a.token));
        });
      case 'exhaust': {
        const announce = async () => {
          this.d.metrics.outcome('exhausted');
          log.warn({ attempts: a.attempts, episode: a.episode, why }, 'retries exhausted');
          await this.d.events.emit(releaseTarget(hr), RetryEvents.exhausted(why, a.attempts));
        };
        if (!notifyOnly) return this.write(hr, a.patch, log, announce);
        if (this.once(key, `${a.episode}/exhausted`)) await announce();
        return undefined;
      }
    }
  }

  /** True the first time `what` is seen for key (since the last different one). */
  private once(key: string, what: string): boolean {
    if (this.announced.get(key) === what) return false;
    this.announced.set(key, what);
    return true;
  }

  /** One conditional merge patch; a 409 means someone wrote first: re-examine, count nothing. */
  private async write(
    hr: HelmRelease,
    patch: MergePatch,
    log: Logger,
    onWritten?: () => Promise<void>,
  ): Promise<undefined | { requeueAfterMs: number }> {
    await this.d.writeLimiter.take();
    try {
      await this.d.client.mergePatch(
        objectPath(HelmReleases, hr.metadata.namespace, hr.metadata.name),
        patch,
      );
    } catch (err) {
      if (isNotFound(err)) return undefined;
      if (isConflict(err)) {
        this.d.metrics.outcome('conflict');
        log.debug('release changed since it was read: re-examining');
        return { requeueAfterMs: CONFLICT_REQUEUE_MS };
      }
      this.d.metrics.outcome('error');
      throw err;
    }
    await onWritten?.();
    return undefined;
  }
}
