// Scenario "tls": the real webhook server and a bare fastify TLS endpoint side by side over TLS on loopback,
// each in its own child process: p50/p99 at fixed request rates (open loop), and the highest sustained
// rate (closed loop, median of three interleaved rounds).
import https from 'node:https';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { sleep } from '../../src/util/sleep.ts';
import { round, summary } from '../stats.ts';
import { createReviewBody } from './reviews.ts';
import { post, ServerProcess } from './server-process.ts';

export interface TlsOptions {
  /** Length of each fixed-rate step and of each closed-loop round. */
  durationMs: number;
  /** Request rates of the fixed-rate steps, per second. */
  rates: readonly number[];
  /** Workers of the closed loop. */
  concurrency: number;
}

/** Sends at a fixed rate regardless of answers (open loop); latency from send, and from the scheduled time. */
async function fixedRate(server: ServerProcess, ca: string, body: Buffer, rate: number, durationMs: number) {
  const port = await server.port;
  await server.stats();
  const fresh = { n: 0 };
  const agent = new https.Agent({ keepAlive: true, maxSockets: 64, ca });
  const fromSend: number[] = [];
  const fromSchedule: number[] = [];
  let errors = 0;
  const inflight: Promise<void>[] = [];
  const start = performance.now();
  const total = Math.round((rate * durationMs) / 1000);
  let sent = 0;
  // The generator's own event-loop delay: when it is high, the client (or the machine), not the server, was slow.
  const loop = monitorEventLoopDelay({ resolution: 1 });
  loop.enable();
  while (sent < total) {
    const now = performance.now();
    const due = Math.min(total, Math.floor(((now - start) * rate) / 1000) + 1);
    for (; sent < due; sent++) {
      const scheduled = start + (sent * 1000) / rate;
      const t0 = performance.now();
      inflight.push(
        post(agent, port, body, fresh).then(
          (status) => {
            const t1 = performance.now();
            if (status !== 200) errors++;
            fromSend.push(t1 - t0);
            fromSchedule.push(t1 - scheduled);
          },
          () => {
            errors++;
          },
        ),
      );
    }
    await sleep(1);
  }
  await Promise.all(inflight);
  loop.disable();
  const elapsed = performance.now() - start;
  agent.destroy();
  return {
    newConnections: fresh.n,
    serverStats: await server.stats(),
    clientLoopDelayP99Ms: round(loop.percentile(99) / 1e6),
    rate,
    sent,
    errors,
    achievedRate: round((fromSend.length / elapsed) * 1000, 0),
    latencyMs: summary(fromSend),
    latencyFromScheduleMs: summary(fromSchedule),
  };
}

export type FixedRateResult = Awaited<ReturnType<typeof fixedRate>>;

/** `concurrency` workers sending back to back (closed loop): the highest rate the server sustains. */
async function maxRate(port: number, ca: string, body: Buffer, concurrency: number, durationMs: number) {
  const agent = new https.Agent({ keepAlive: true, maxSockets: concurrency, ca });
  let done = 0;
  let errors = 0;
  const samples: number[] = [];
  const start = performance.now();
  const deadline = start + durationMs;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < deadline) {
        const t0 = performance.now();
        try {
          if ((await post(agent, port, body)) === 200) done++;
          else errors++;
        } catch {
          errors++;
        }
        samples.push(performance.now() - t0);
      }
    }),
  );
  agent.destroy();
  return {
    concurrency,
    requestsPerSecond: round((done / (performance.now() - start)) * 1000, 0),
    errors,
    latencyMs: summary(samples),
  };
}

type MaxRateResult = Awaited<ReturnType<typeof maxRate>>;

export async function tlsBench(certDir: string, ca: string, o: TlsOptions) {
  const body = Buffer.from(JSON.stringify(createReviewBody('bench')));
  const servers = {
    webhook: new ServerProcess('webhook', { BENCH_CERT_DIR: certDir }),
    bare: new ServerProcess('bare', { BENCH_CERT_DIR: certDir }),
  };
  try {
    const ports = { webhook: await servers.webhook.port, bare: await servers.bare.port };
    // Warm up both (JIT, TLS session setup).
    for (const server of Object.values(servers)) await fixedRate(server, ca, body, 200, o.durationMs);
    const rates: (FixedRateResult & { server: string })[] = [];
    for (const rate of o.rates) {
      for (const name of ['bare', 'webhook'] as const) {
        const r = await fixedRate(servers[name], ca, body, rate, o.durationMs);
        rates.push({ server: name, ...r });
        console.log(
          `TLS ${name} @${rate}/s: p50 ${r.latencyMs.p50} ms, p99 ${r.latencyMs.p99} ms, errors ${r.errors}`,
        );
      }
    }
    // Three rounds each, interleaved (b w w b b w), so a burst of noise from other jobs hits both alike;
    // the share is the ratio of medians.
    const rounds: Record<'bare' | 'webhook', MaxRateResult[]> = { bare: [], webhook: [] };
    for (const name of ['bare', 'webhook', 'webhook', 'bare', 'bare', 'webhook'] as const) {
      rounds[name].push(await maxRate(ports[name], ca, body, o.concurrency, o.durationMs));
    }
    const median = (rs: MaxRateResult[]) =>
      [...rs].sort((a, b) => a.requestsPerSecond - b.requestsPerSecond)[1] as MaxRateResult;
    const max = { bare: median(rounds.bare), webhook: median(rounds.webhook) };
    const perRound = (name: 'bare' | 'webhook') => rounds[name].map((r) => r.requestsPerSecond);
    console.log(
      `max rate (median of 3): bare ${max.bare.requestsPerSecond}/s ${JSON.stringify(perRound('bare'))}, webhook ${max.webhook.requestsPerSecond}/s ${JSON.stringify(perRound('webhook'))}`,
    );
    return {
      bodyBytes: body.length,
      durationMs: o.durationMs,
      rates,
      max,
      maxRounds: { bare: perRound('bare'), webhook: perRound('webhook') },
      webhookShareOfBare: round(max.webhook.requestsPerSecond / max.bare.requestsPerSecond, 2),
    };
  } finally {
    await Promise.all([servers.webhook.stop(), servers.bare.stop()]);
  }
}

export type TlsResult = Awaited<ReturnType<typeof tlsBench>>;
