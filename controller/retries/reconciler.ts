// The retry reconciler: for a HelmRelease that failed on a transient error, ask Flux to try again — after
// a backoff, up to a cap, with its state on the release. Reconcile by key, in three steps: gather the
// release from the cache into one RetryInput, decide (src/retry, pure), act (at most one conditional
// write, plus events and metrics). Only a write waits for a write token; after the wait the release is
// gathered and decided again. What to do next is the queue's: the result asks for a requeue after
// the backoff; a thrown error (a 409 included) is retried with the queue's backoff.
import type { Logger } from 'pino';
import type { Config } from '../../src/config.ts';
import { parseReleaseKey } from '../../src/flux/helmrelease.ts';
import type { OperatorCaches } from '../../src/kube/caches.ts';
import { isConflict, isNotFound, type KubeClient } from '../../src/kube/client.ts';
import { type EventRecorder, releaseTarget } from '../../src/kube/events.ts';
import type { MergePatch } from '../../src/kube/patch.ts';
import { HelmReleases, objectPath } from '../../src/kube/resources.ts';
import { type Action, decideRetry, type RetryInput, retryInput } from '../../src/retry/decide.ts';
import { episodeFingerprint } from '../../src/retry/state.ts';
import type { Clock } from '../../src/util/clock.ts';
import type { Priority, ReconcileResult, WriteTokens } from '../queue.ts';
import { budgetedWrite, type RolloutBudget, UNLIMITED } from '../rollout.ts';
import { RetryEvents } from './events.ts';
import type { RetryGaugeState, RetryMetrics } from './metrics.ts';

export interface RetryReconcilerDeps {
  client: Pick<KubeClient, 'mergePatch'>;
  caches: { helmReleases: Pick<OperatorCaches['helmReleases'], 'get'> };
  config: Pick<Config, 'retry' | 'notify-only'>;
  clock: Clock;
  log: Logger;
  events: EventRecorder;
  /** Taken only before a write, never for a look that writes nothing. */
  writeLimiter: WriteTokens;
  metrics: RetryMetrics;
  /** True once the controller is stopping: a reconcile that waited for a write token writes nothing then. */
  stopped: () => boolean;
  /** --max-upgrades-in-flight (default: no limit), and how a release waiting for a slot is woken. */
  budget?: RolloutBudget;
  wake?: (key: string) => void;
}

/** Our conditional write met a newer release (409): nothing was counted; the queue retries with backoff. */
export class RetryConflict extends Error {
  constructor(key: string, options?: ErrorOptions) {
    super(`${key} changed since it was read`, options);
    this.name = 'RetryConflict';
  }
}

/** One reconcile's input and context. */
interface Gathered extends RetryInput {
  key: string;
  log: Logger;
}

type ActionOf<K extends Action['kind']> = Extract<Action, { kind: K }>;

export class RetryReconciler {
  private readonly d: RetryReconcilerDeps;
  /** Last (episode/attempt) announced per release, so "retry scheduled" is said once, not per event. */
  private readonly announced = new Map<string, string>();
  /** Releases told that a lockdown flag ignores some of their annotations (told once per release). */
  private readonly toldIgnored = new Set<string>();

  constructor(d: RetryReconcilerDeps) {
    this.d = d;
  }

  async reconcile(key: string, priority: Priority = 'high'): Promise<ReconcileResult> {
    // Decide without a write token (most looks write nothing); a write takes one, then reads the release and
    // decides again, so its resourceVersion precondition is fresh and a change made during the wait counts.
    let d = this.evaluate(key);
    // A write that asks Flux to reconcile reserves its slot of --max-upgrades-in-flight before it waits for a
    // write token, so a release waiting in line for a slot holds no token.
    let reserved = false;
    if (d && writes(d.action, this.d.config['notify-only'])) {
      reserved = requestsReconcile(d.action);
      if (reserved && !this.reserve(d.input)) {
        await this.report(d);
        return undefined;
      }
      try {
        await this.d.writeLimiter.take(priority);
        if (this.d.stopped()) {
          if (reserved) this.budget.release(key);
          return undefined;
        }
        d = this.evaluate(key);
      } catch (err) {
        if (reserved) this.budget.release(key);
        throw err;
      }
    }
    if (!d) {
      if (reserved) this.budget.release(key);
      this.d.metrics.forget(key);
      this.announced.delete(key);
      this.toldIgnored.delete(key);
      return undefined;
    }
    await this.report(d);
    return this.act(d.input, d.action, reserved);
  }

  /** Settings ignored or malformed, the gauge, and Flux retrying by itself: told whatever is done. */
  private async report(d: { input: Gathered; action: Action }): Promise<void> {
    await this.reportIgnored(d.input);
    await this.reportProblems(d.input);
    this.d.metrics.track(d.input.key, gaugeState(d.input, d.action));
    await this.tellFluxRetrying(d.input);
  }

  /** The release's input and the one action for it now; undefined when it is gone. */
  private evaluate(key: string): { input: Gathered; action: Action } | undefined {
    const input = this.gather(key);
    if (!input) return undefined;
    return { input, action: decideRetry(input, this.d.config.retry.limits, this.d.clock.now()) };
  }

  /** The release as the cache holds it now, classified, with its stored retry state; undefined when gone. */
  private gather(key: string): Gathered | undefined {
    const { namespace, name } = parseReleaseKey(key);
    const cached = this.d.caches.helmReleases.get(namespace, name);
    if (!cached) return undefined;
    const hr = cached.value;
    const log = this.d.log.child({ namespace, name, resourceVersion: hr.metadata.resourceVersion });
    return { ...retryInput(hr, this.d.config.retry), key, log };
  }

  /** Once per release (again after the annotations were removed and put back). */
  private async reportIgnored({ key, release, ignored, log }: Gathered): Promise<void> {
    if (ignored.length === 0) {
      this.toldIgnored.delete(key);
      return;
    }
    if (this.toldIgnored.has(key)) return;
    this.toldIgnored.add(key);
    log.info({ ignored }, 'per-release retry settings ignored (lockdown flag)');
    await this.d.events.emit(releaseTarget(release), RetryEvents.settingsIgnored(ignored));
  }

  private async reportProblems({ release, problems, log }: Gathered): Promise<void> {
    if (problems.length === 0) return;
    log.warn({ problems }, 'malformed retry settings on the release: using defaults');
    await this.d.events.emit(releaseTarget(release), RetryEvents.invalidSettings(problems));
  }

  /** Says once per episode that Flux retries the release itself, so we do not (RetryOnFailure). */
  private async tellFluxRetrying(g: Gathered): Promise<void> {
    if (g.classification.verdict !== 'flux-retrying') return;
    if (!this.once(g.key, `${episodeFingerprint(g.release)}/flux-retrying`)) return;
    g.log.info({ why: g.classification.reason }, 'Flux retries the release itself: no retries from us');
    await this.d.events.emit(releaseTarget(g.release), RetryEvents.fluxRetrying(g.classification.reason));
  }

  private async act(g: Gathered, a: Action, reserved: boolean): Promise<ReconcileResult> {
    if (!requestsReconcile(a) || this.d.config['notify-only']) {
      // Only a write that asks Flux to reconcile takes a slot: one reserved for a decision that changed is freed.
      if (reserved) this.budget.release(g.key);
      this.budget.leave(g.key, 'retries');
    }
    switch (a.kind) {
      case 'restart':
        return this.restart(g, a, reserved);
      case 'none':
        g.log.debug({ why: a.why }, 'no retry');
        return undefined;
      case 'exhausted':
        g.log.debug({ attempts: a.attempts, episode: a.episode }, 'retry budget spent');
        return undefined;
      case 'wait':
        return this.announceWait(g, a);
      case 'clear':
        return this.clear(g, a);
      case 'retry':
        return this.retry(g, a, reserved);
      case 'exhaust':
        return this.exhaust(g, a);
    }
  }

  /** Says once per attempt that a retry is scheduled, and asks the queue to come back when it is due. */
  private async announceWait(g: Gathered, a: ActionOf<'wait'>): Promise<ReconcileResult> {
    if (this.once(g.key, `${a.episode}/${a.attempt}/scheduled`)) {
      const why = g.classification.reason;
      g.log.info({ attempt: a.attempt, delayMs: a.delayMs, why }, 'retry scheduled');
      const event = RetryEvents.scheduled(why, a.attempt, this.maxAttempts, a.delayMs);
      await this.d.events.emit(releaseTarget(g.release), event);
    }
    return { requeueAfterMs: a.delayMs };
  }

  private async clear(g: Gathered, a: ActionOf<'clear'>): Promise<ReconcileResult> {
    if (this.d.config['notify-only']) return undefined;
    g.log.info('release is Ready: retry state cleared');
    await this.write(g, a.patch);
    return undefined;
  }

  /** requestedAt = resetAt = one fresh token; with --notify-only, an event once instead. */
  private async retry(g: Gathered, a: ActionOf<'retry'>, reserved: boolean): Promise<ReconcileResult> {
    const why = g.classification.reason;
    const target = releaseTarget(g.release);
    if (this.d.config['notify-only']) {
      if (this.once(g.key, `${a.episode}/${a.attempt}/due`)) {
        this.d.metrics.outcome('notified');
        await this.d.events.emit(target, RetryEvents.due(why, a.attempt, this.maxAttempts));
      }
      return undefined;
    }
    if (!(await this.budgeted(g, a.patch, true, reserved))) return undefined;
    this.d.metrics.outcome('triggered');
    g.log.info({ attempt: a.attempt, token: a.token, why }, 'retry requested');
    await this.d.events.emit(target, RetryEvents.triggered(why, a.attempt, this.maxAttempts, a.token));
    return undefined;
  }

  /** A retry-reset-at token: our state cleared (and, when a retry is due, one requested at once). */
  private async restart(g: Gathered, a: ActionOf<'restart'>, reserved: boolean): Promise<ReconcileResult> {
    if (this.d.config['notify-only']) {
      if (this.once(g.key, `restart/${a.handled}`))
        await this.d.events.emit(releaseTarget(g.release), RetryEvents.restarted(a.handled, a.token, true));
      return undefined;
    }
    if (!(await this.budgeted(g, a.patch, a.token !== undefined, reserved))) return undefined;
    this.d.metrics.outcome('restarted');
    g.log.info({ handled: a.handled, token: a.token }, 'retry budget restarted by hand');
    await this.d.events.emit(releaseTarget(g.release), RetryEvents.restarted(a.handled, a.token, false));
    return undefined;
  }

  /** Records that the budget is spent (with --notify-only: says so once) and tells the user. */
  private async exhaust(g: Gathered, a: ActionOf<'exhaust'>): Promise<ReconcileResult> {
    const announce = this.d.config['notify-only']
      ? this.once(g.key, `${a.episode}/exhausted`)
      : await this.write(g, a.patch);
    if (!announce) return undefined;
    const why = g.classification.reason;
    this.d.metrics.outcome('exhausted');
    g.log.warn({ attempts: a.attempts, failed: a.failed, episode: a.episode, why }, 'retries exhausted');
    await this.d.events.emit(releaseTarget(g.release), RetryEvents.exhausted(why, a.attempts, a.failed));
    return undefined;
  }

  private get budget(): RolloutBudget {
    return this.d.budget ?? UNLIMITED;
  }

  /**
   * The write, holding a slot of the rollout budget when it asks Flux to reconcile. False when the release is
   * gone or must wait for a slot (it is woken when its turn comes). `reserved`: the slot was reserved
   * before the wait for the write token.
   */
  private async budgeted(
    g: Gathered,
    patch: MergePatch,
    reconciles: boolean,
    reserved: boolean,
  ): Promise<boolean> {
    if (!reconciles) return this.write(g, patch);
    if (!reserved && !this.reserve(g)) return false;
    return budgetedWrite(this.budget, g.key, patch, () => this.write(g, patch));
  }

  /** Reserves a rollout slot for a write that asks Flux to reconcile; false when the release waits in line. */
  private reserve(g: Gathered): boolean {
    if (this.budget.acquire(g.key, 'retries', () => this.d.wake?.(g.key))) return true;
    g.log.debug({ max: this.budget.max }, 'retry waits for a slot of --max-upgrades-in-flight');
    return false;
  }

  /** True the first time `what` is seen for key (since the last different one). */
  private once(key: string, what: string): boolean {
    if (this.announced.get(key) === what) return false;
    this.announced.set(key, what);
    return true;
  }

  private get maxAttempts(): number {
    return this.d.config.retry.limits.maxAttempts;
  }

  /**
   * One conditional merge patch (the patch carries the resourceVersion read). True when written; false
   * when the release is gone. A 409 (someone wrote first) counts nothing and throws RetryConflict.
   */
  private async write(g: Gathered, patch: MergePatch): Promise<boolean> {
    const { namespace, name } = g.release.metadata;
    try {
      await this.d.client.mergePatch(objectPath(HelmReleases, namespace, name), patch);
      return true;
    } catch (err) {
      if (isNotFound(err)) return false;
      if (isConflict(err)) {
        this.d.metrics.outcome('conflict');
        throw new RetryConflict(g.key, { cause: err });
      }
      this.d.metrics.outcome('error');
      throw err;
    }
  }
}

/** Whether acting on `a` writes to the release (with --notify-only nothing does). */
function writes(a: Action, notifyOnly: boolean): boolean {
  return (
    !notifyOnly && (a.kind === 'clear' || a.kind === 'retry' || a.kind === 'exhaust' || a.kind === 'restart')
  );
}

/** Whether an action's write asks Flux to reconcile (and so needs a slot of the rollout budget). */
function requestsReconcile(a: Action): boolean {
  return a.kind === 'retry' || (a.kind === 'restart' && a.token !== undefined);
}

/** Which gauge a decision puts the release in. */
function gaugeState(g: RetryInput, a: Action): RetryGaugeState {
  if (g.classification.verdict === 'flux-retrying') return 'flux-retrying';
  if (a.kind === 'wait') return 'backing-off';
  return a.kind === 'exhaust' || a.kind === 'exhausted' ? 'exhausted' : 'other';
}
