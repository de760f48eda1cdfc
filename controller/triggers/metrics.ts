// The trigger reconciler's Prometheus metrics, registered on the Registry the process passes in.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

export interface TriggerMetrics {
  /** Triggers written (or, in notify-only mode, announced) by reason: values-changed, link-changed. */
  triggers: Counter<'reason'>;
  /** Backfills (stamp or link digests recorded without a reconcile) by reason. */
  backfills: Counter<'reason'>;
  /** Releases looked at and left alone, by reason. */
  skips: Counter<'reason'>;
  /** Failures by type: lookup, conflict, patch. */
  errors: Counter<'type'>;
  /** Cross-namespace links refused because the release does not allow the source's namespace. */
  refusedLinks: Counter;
  /** Seconds from the first observed change of a source to the patch that triggered its release. */
  latency: Histogram;
}

export function createTriggerMetrics(registry: Registry, queueDepth: () => number): TriggerMetrics {
  const registers = [registry];
  new Gauge({
    name: 'helmrelease_autopilot_trigger_queue_depth',
    help: 'Releases waiting in the trigger work queue.',
    registers,
    collect() {
      this.set(queueDepth());
    },
  });
  return {
    triggers: new Counter({
      name: 'helmrelease_autopilot_triggers_total',
      help: 'HelmReleases triggered (requestedAt written; announced only in notify-only mode), by reason.',
      labelNames: ['reason'],
      registers,
    }),
    backfills: new Counter({
      name: 'helmrelease_autopilot_trigger_backfills_total',
      help: 'Stamps and link digests recorded on HelmReleases without a reconcile, by reason.',
      labelNames: ['reason'],
      registers,
    }),
    skips: new Counter({
      name: 'helmrelease_autopilot_trigger_skips_total',
      help: 'HelmReleases examined and left alone, by reason.',
      labelNames: ['reason'],
      registers,
    }),
    errors: new Counter({
      name: 'helmrelease_autopilot_trigger_errors_total',
      help: 'Trigger reconcile failures by type (lookup, conflict, patch); each is retried with backoff.',
      labelNames: ['type'],
      registers,
    }),
    refusedLinks: new Counter({
      name: 'helmrelease_autopilot_trigger_refused_links_total',
      help: 'Cross-namespace links refused because the release does not allow the source namespace.',
      registers,
    }),
    latency: new Histogram({
      name: 'helmrelease_autopilot_trigger_latency_seconds',
      help: 'Time from an observed change of consumed data to the HelmRelease patch (includes the debounce).',
      buckets: [0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    }),
  };
}
