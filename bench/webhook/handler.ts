// Scenario "handler": the admission handler in-process (JSON.parse → admit → JSON.stringify), p50/p99
// over three rounds, for a CREATE that needs a lookup and an UPDATE that carries the digest over.
import { performance } from 'node:perf_hooks';
import pino from 'pino';
import { Registry } from 'prom-client';
import { memoryLookup } from '../../test/support/webhook.ts';
import { admit } from '../../webhook/admit.ts';
import { createWebhookMetrics } from '../../webhook/metrics.ts';
import { summary } from '../stats.ts';
import { createReviewBody, updateReviewBody } from './reviews.ts';

/** Warm-up requests per round, not measured. */
const WARMUP = 2_000;

export async function handlerBench(level: 'warn' | 'info', iterations: number) {
  const lookup = memoryLookup({
    'ConfigMap/bench/values': { data: { 'values.yaml': 'replicas: 3\n'.repeat(50) } },
  });
  // At info every stamp is logged, as in production; written to /dev/null so the terminal costs nothing.
  const logger = pino({ level }, pino.destination({ dest: '/dev/null', sync: false }));
  const deps = { lookup, lookupTimeoutMs: 500, metrics: createWebhookMetrics(new Registry()), logger };
  const out: Record<string, ReturnType<typeof summary>[]> = {};
  for (const [name, body] of [
    ['create (lookup)', createReviewBody('bench')],
    ['update (carried over)', updateReviewBody('bench')],
  ] as const) {
    const text = JSON.stringify(body);
    out[name] = [];
    for (let r = 0; r < 3; r++) {
      const samples: number[] = [];
      for (let i = 0; i < iterations + WARMUP; i++) {
        const t0 = performance.now();
        const result = await admit(JSON.parse(text), deps);
        JSON.stringify(result.body);
        if (i >= WARMUP) samples.push(performance.now() - t0);
      }
      out[name].push(summary(samples));
    }
  }
  return { logLevel: level, bodyBytes: JSON.stringify(createReviewBody('bench')).length, rounds: out };
}

export type HandlerResult = Awaited<ReturnType<typeof handlerBench>>;
