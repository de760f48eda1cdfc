// The retry reconciler's Prometheus metrics, registered on the Registry the process passes in.
import { Counter, Gauge, type Registry } from 'prom-client';

export type RetryOutcome =
  /** requestedAt + resetAt written. */
  | 'triggered'
  /** The release changed between read and write (409): nothing counted; re-examined after the queue's backoff. */
  | 'conflict'
  /** The write failed (requeued with backoff). */
  | 'error'
  /** The budget of an episode was spent. */
  | 'exhausted'
  /** --notify-only: a retry was due, nothing was written. */
  | 'notified'
  /** A retry-reset-at token restarted the budget. */
  | 'restarted';

/** Which gauge a release is counted in. */
export type RetryGaugeState = 'backing-off' | 'exhausted' | 'flux-retrying' | 'other';

export interface RetryMetrics {
  outcome(o: RetryOutcome): void;
  /** Records what the latest decision for key was, for the gauges. */
  track(key: string, state: RetryGaugeState): void;
  forget(key: string): void;
  /** Forgets every release (the controller stopped: this replica no longer reports on them). */
  reset(): void;
}

/**
 * Registers the metrics on registry: call it once per registry (prom-client refuses a name twice).
 * startRetryController does, and it runs once per process: losing the Lease ends the process (ADR 0003).
 */
export function createRetryMetrics(registry: Registry): RetryMetrics {
  const backingOff = new Set<string>();
  const exhausted = new Set<string>();
  const fluxRetrying = new Set<string>();
  const all = [backingOff, exhausted, fluxRetrying];
  const registers = [registry];
  const retries = new Counter({
    name: 'helmrelease_autopilot_retries_total',
    help: 'Retries of HelmReleases that failed on transient errors, by outcome.',
    labelNames: ['outcome'],
    registers,
  });
  new Gauge({
    name: 'helmrelease_autopilot_retry_backing_off',
    help: 'HelmReleases waiting for their next retry.',
    registers,
    collect() {
      this.set(backingOff.size);
    },
  });
  new Gauge({
    name: 'helmrelease_autopilot_retry_exhausted',
    help: 'HelmReleases whose retry budget for the current failure is spent.',
    registers,
    collect() {
      this.set(exhausted.size);
    },
  });
  new Gauge({
    name: 'helmrelease_autopilot_retry_flux_retrying',
    help: 'HelmReleases with a failed install or upgrade that Flux retries by itself without a limit (RetryOnFailure): never retried by us.',
    registers,
    collect() {
      this.set(fluxRetrying.size);
    },
  });
  const byState: Partial<Record<RetryGaugeState, Set<string>>> = {
    'backing-off': backingOff,
    exhausted,
    'flux-retrying': fluxRetrying,
  };
  return {
    outcome: (o) => retries.inc({ outcome: o }),
    track(key, state) {
      for (const s of all) if (s !== byState[state]) s.delete(key);
      byState[state]?.add(key);
    },
    forget(key) {
      for (const s of all) s.delete(key);
    },
    reset() {
      for (const s of all) s.clear();
    },
  };
}
