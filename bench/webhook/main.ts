// Benchmark of the admission webhook (npm run bench:webhook):
//  1. handler (handler.ts): the handler in-process (parse, plan, lookup, decide, serialise): p50/p99 over
//     several rounds;
//  2. tls (tls.ts): over TLS on loopback, the real server and a bare fastify TLS endpoint side by side, each
//     in its own child process: p50/p99 at fixed request rates (open loop), and the highest sustained rate
//     (closed loop);
//  3. apiserver (apiserver.ts): the real call path: HelmReleases created through a local control plane, and
//     the API server's own apiserver_admission_webhook_admission_duration_seconds for this webhook.
// Prints numbers and writes bench/results/webhook-<date>.{json,md}; it asserts nothing.
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCA, issueCertificate } from '../../src/tls/certs.ts';
import { machine, round } from '../stats.ts';
import { type ApiserverResult, apiserverBench } from './apiserver.ts';
import { type HandlerResult, handlerBench } from './handler.ts';
import { type TlsOptions, type TlsResult, tlsBench } from './tls.ts';

const USAGE = `Usage: npm run bench:webhook [-- --help]

Runs the handler, tls and apiserver scenarios (the last one on a control plane of its own, built by
npm run build:control-plane) and writes bench/results/webhook-<date>.{json,md}.

Environment:
  BENCH_HANDLER_ITERATIONS   measured requests per handler round (default 20000)
  BENCH_DURATION_MS          length of each TLS step and round (default 5000)
  BENCH_RATES                TLS request rates per second, comma-separated (default 250,500,1000)
  BENCH_CONCURRENCY          workers of the closed-loop TLS rounds (default 32)
  BENCH_API_RELEASES         HelmReleases created through the API server, with and without the webhook (default 500)
`;

interface Options {
  handlerIterations: number;
  tls: TlsOptions;
  apiReleases: number;
}

function options(env: NodeJS.ProcessEnv): Options {
  return {
    handlerIterations: Number(env.BENCH_HANDLER_ITERATIONS ?? 20_000),
    tls: {
      durationMs: Number(env.BENCH_DURATION_MS ?? 5_000),
      rates: (env.BENCH_RATES ?? '250,500,1000').split(',').map(Number),
      concurrency: Number(env.BENCH_CONCURRENCY ?? 32),
    },
    apiReleases: Number(env.BENCH_API_RELEASES ?? 500),
  };
}

interface Result {
  date: string;
  machine: ReturnType<typeof machine>;
  loadBefore: number[];
  loadAfter: number[];
  handler: HandlerResult[];
  tls: TlsResult;
  apiserver: ApiserverResult;
}

function markdown(r: Result): string {
  const m = r.machine;
  const h = r.handler;
  const t = r.tls;
  const a = r.apiserver;
  const lines = [
    `# Admission webhook benchmark — ${r.date}`,
    '',
    `CPU: ${m.cpu} × ${m.cores}; RAM ${m.memoryGB} GB; Node ${m.node}; load average before/after: \`${JSON.stringify(r.loadBefore)}\` / \`${JSON.stringify(r.loadAfter)}\`.`,
    "Other engineers' jobs share this 2-core machine: the rounds below show the noise.",
    `Command: \`npm run bench:webhook\`. Targets (DESIGN.md): handler p99 ≤ 1 ms; TLS p99 ≤ 5 ms at 1,000 req/s; ≥ 50% of bare fastify throughput.`,
    '',
    '## 1. Handler in-process (JSON.parse → admit → JSON.stringify), ms',
    '',
    '| log level | request | round | p50 | p90 | p99 | max |',
    '|---|---|---|---|---|---|---|',
  ];
  for (const run of h) {
    for (const [name, rounds] of Object.entries(run.rounds)) {
      for (const [i, s] of rounds.entries()) {
        lines.push(`| ${run.logLevel} | ${name} | ${i + 1} | ${s.p50} | ${s.p90} | ${s.p99} | ${s.max} |`);
      }
    }
  }
  lines.push(
    '',
    `## 2. Over TLS on loopback (body ${t.bodyBytes} bytes, ${t.durationMs} ms per step, server in a child process)`,
    '',
  );
  lines.push(
    '| server | rate/s | achieved/s | errors | p50 ms | p90 ms | p99 ms | max ms | p99 from schedule ms | new TLS connections | server loop delay p99 / max ms | client loop delay p99 ms |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|',
  );
  for (const x of t.rates) {
    lines.push(
      `| ${x.server} | ${x.rate} | ${x.achievedRate} | ${x.errors} | ${x.latencyMs.p50} | ${x.latencyMs.p90} | ${x.latencyMs.p99} | ${x.latencyMs.max} | ${x.latencyFromScheduleMs.p99} | ${x.newConnections} | ${x.serverStats.loopDelayP99Ms} / ${x.serverStats.loopDelayMaxMs} | ${x.clientLoopDelayP99Ms} |`,
    );
  }
  lines.push(
    '',
    `Highest sustained rate (closed loop, ${t.max.bare.concurrency} concurrent, median of 3 interleaved rounds of ${t.durationMs} ms): bare fastify ${t.max.bare.requestsPerSecond}/s (p99 ${t.max.bare.latencyMs.p99} ms), webhook ${t.max.webhook.requestsPerSecond}/s (p99 ${t.max.webhook.latencyMs.p99} ms): **${Math.round(t.webhookShareOfBare * 100)}% of bare**. Rounds: bare ${t.maxRounds.bare.join(', ')}; webhook ${t.maxRounds.webhook.join(', ')} req/s.`,
  );
  lines.push(
    '',
    `## 3. Through the API server (${a.withWebhook.releases} HelmRelease creates, 4 in parallel)`,
    '',
  );
  lines.push(
    '| namespace | stamped | create p50 ms | p90 ms | p99 ms | max ms |',
    '|---|---|---|---|---|---|',
  );
  lines.push(
    `| webhook on | ${a.withWebhook.stamped} | ${a.withWebhook.createLatencyMs.p50} | ${a.withWebhook.createLatencyMs.p90} | ${a.withWebhook.createLatencyMs.p99} | ${a.withWebhook.createLatencyMs.max} |`,
  );
  lines.push(
    `| webhook off | ${a.withoutWebhook.stamped} | ${a.withoutWebhook.createLatencyMs.p50} | ${a.withoutWebhook.createLatencyMs.p90} | ${a.withoutWebhook.createLatencyMs.p99} | ${a.withoutWebhook.createLatencyMs.max} |`,
  );
  const d = a.apiserverWebhookDuration;
  lines.push(
    '',
    `API server's \`apiserver_admission_webhook_admission_duration_seconds\` for this webhook: ${d.count} calls, mean ${d.meanMs} ms, p50 ≤ ${d.p50UpperBoundMs} ms, p99 ≤ ${d.p99UpperBoundMs} ms (bucket bounds). Fail-open: ${a.failOpen.length === 0 ? 'none' : a.failOpen.join('; ')}.`,
  );
  lines.push('', `Buckets (cumulative): ${d.buckets.map((b) => `≤${b.leMs} ms: ${b.count}`).join(', ')}`, '');
  return lines.join('\n');
}

async function main(o: Options) {
  const date = new Date();
  const loadBefore = loadavg().map((x) => round(x, 2));
  const ca = createCA('bench-webhook-ca');
  const serving = issueCertificate(ca, { commonName: 'webhook', hosts: ['127.0.0.1'], usage: 'server' });
  const certDir = mkdtempSync(join(tmpdir(), 'bench-webhook-'));
  writeFileSync(join(certDir, 'tls.crt'), serving.cert);
  writeFileSync(join(certDir, 'tls.key'), serving.key);

  console.log('1. handler in-process');
  const handler = [
    await handlerBench('warn', o.handlerIterations),
    await handlerBench('info', o.handlerIterations),
  ];
  for (const run of handler)
    for (const [name, rounds] of Object.entries(run.rounds))
      console.log(`  ${run.logLevel} ${name}: p99 ${rounds.map((r) => r.p99).join(' / ')} ms`);
  console.log('2. TLS on loopback');
  const tls = await tlsBench(certDir, ca.cert, o.tls);
  console.log('3. through the API server');
  const apiserver = await apiserverBench(certDir, ca.cert, o.apiReleases);
  console.log(
    `  API server webhook duration: mean ${apiserver.apiserverWebhookDuration.meanMs} ms, p99 ≤ ${apiserver.apiserverWebhookDuration.p99UpperBoundMs} ms`,
  );

  const result: Result = {
    date: date.toISOString(),
    machine: machine(),
    loadBefore,
    loadAfter: loadavg().map((x) => round(x, 2)),
    handler,
    tls,
    apiserver,
  };
  const dir = join(import.meta.dirname, '..', 'results');
  mkdirSync(dir, { recursive: true });
  const stem = `webhook-${date.toISOString().slice(0, 19).replace(/[T:]/g, '-')}`;
  writeFileSync(join(dir, `${stem}.json`), `${JSON.stringify(result, null, 2)}\n`);
  writeFileSync(join(dir, `${stem}.md`), markdown(result));
  console.log(`written: bench/results/${stem}.{json,md}`);
}

if (process.argv.includes('--help') || process.argv.includes('-h')) process.stdout.write(USAGE);
else {
  // A failure rejects here: Node prints it with its stack and exits 1.
  await main(options(process.env));
  // The child processes' pipes and the agents' sockets may hold the event loop open.
  process.exit(0);
}
