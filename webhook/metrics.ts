// The webhook's Prometheus metrics, registered on the Registry the process passes in (never the global one).
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

export interface WebhookMetrics {
  /** Seconds from request body parsed to answer built, by operation and outcome (patched, unchanged, skipped). */
  duration: Histogram<'operation' | 'outcome'>;
  /** Decisions by reason (stamped:lookup, stamped:carried, skipped:subresource, ...). */
  decisions: Counter<'reason'>;
  /** Errors by type: lookup_failed, lookup_timeout, bad_request, internal. */
  errors: Counter<'type'>;
  /** notAfter of the serving certificate in use, as a Unix time. */
  certificateExpiry: Gauge;
  /** Certificate pairs read from disk by result: loaded (swapped in) or invalid (kept the old pair). */
  certificateLoads: Counter<'result'>;
  /** TLS handshakes that failed: no or an untrusted client certificate (--webhook-client-ca), old TLS, scans. */
  tlsHandshakeErrors: Counter;
}

export function createWebhookMetrics(registry: Registry): WebhookMetrics {
  const registers = [registry];
  return {
    duration: new Histogram({
      name: 'helmrelease_autopilot_webhook_admission_duration_seconds',
      help: 'Time to answer an AdmissionReview, by operation and outcome.',
      labelNames: ['operation', 'outcome'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
      registers,
    }),
    decisions: new Counter({
      name: 'helmrelease_autopilot_webhook_decisions_total',
      help: 'Admission decisions by reason.',
      labelNames: ['reason'],
      registers,
    }),
    errors: new Counter({
      name: 'helmrelease_autopilot_webhook_errors_total',
      help: 'Webhook errors by type (the request was still admitted, except bad_request which got HTTP 400).',
      labelNames: ['type'],
      registers,
    }),
    certificateExpiry: new Gauge({
      name: 'helmrelease_autopilot_webhook_certificate_expiry_timestamp_seconds',
      help: 'notAfter of the serving certificate in use (Unix time).',
      registers,
    }),
    certificateLoads: new Counter({
      name: 'helmrelease_autopilot_webhook_certificate_loads_total',
      help: 'Serving certificate loads by result (loaded, invalid).',
      labelNames: ['result'],
      registers,
    }),
    tlsHandshakeErrors: new Counter({
      name: 'helmrelease_autopilot_webhook_tls_handshake_errors_total',
      help: 'TLS handshakes that failed (a client without a trusted certificate, an old TLS version, a scan).',
      registers,
    }),
  };
}
