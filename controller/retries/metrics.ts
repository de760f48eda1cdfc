// The retry reconciler's Prometheus metrics, registered on the Registry the process passes in.
import { Counter, Gauge, type Registry } from 'prom-client';

export type RetryOutcome =
  /** requestedAt + resetAt written. */
  | 'triggered'
  /** The release changed between read and write (409): re-examined, nothing counted. */
  | 'conflict'
  /** The write failed (requeued with backoff). */
  | 'error'
  /** The budget of an episode was spent. */
  | 'exhausted'
  /** --notify-only: a retry was due, nothing was written. */
  | 'notified';

export interface RetryMetrics {
  outcome(o: RetryOutcome): void;
  /** Records what the latest decision for key was, for the gauges. */
  track(key: string, state: 'backing-off' | 'exhausted' | 'other'): void;
  forget(key: string): void;
  /** Forgets every release (the controller stopped: this replica no longer reports on them). */
  reset(): void;
}

// One set of metrics per Registry: the controller is started again each time this replica becomes the
// leader, and prom-client refuses to register a name twice.
const perRegistry = new WeakMap<Registry, RetryMetrics>();

export function createRetryMetrics(registry: Registry): RetryMetrics {
  const existing = perRegistry.get(registry);
  if (existing) return existing;
  const backingOff = new Set<string>();
  const exhausted = new Set<string>();
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
  const metrics: RetryMetrics = {
    outcome: (o) => retries.inc({ outcome: o }),
    track(key, state) {
      if (state === 'backing-off') backingOff.add(key);
      else backingOff.delete(key);
      if (state === 'exhausted') exhausted.add(key);
      else exhausted.delete(key);
    },
    forget(key) {
      backingOff.delete(key);
      exhausted.delete(key);
    },
    reset() {
      backingOff.clear();
      exhausted.clear();
    },
  };
  perRegistry.set(registry, metrics);
  return metrics;
}
