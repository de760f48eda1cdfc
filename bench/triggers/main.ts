// Benchmark of the trigger reconciler on its own control plane (npm run bench:triggers):
//  1. latency (latency.ts): ConfigMap patch -> HelmRelease requestedAt seen by a watch, with 100 and 1,000
//     releases (debounce 0), next to the API server's own floor (the same patch seen by a ConfigMap watch);
//  2. storms (storm.ts): 1,000 changes at once (debounce 0), and 1,000 changes on 100 ConfigMaps (debounce
//     1 s): time to settle and writes per affected release;
//  3. scale (scale.ts): start-up to synced and to idle, RSS, with 10,000 releases, 10,000 ConfigMaps and
//     10,000 Secrets (100 of them ~900 kB, like Helm's release Secrets), the operator in a child process.
// Prints numbers and writes bench/results/triggers-<date>.{json,md}; it asserts nothing.
import { mkdirSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { startControlPlane } from '../../hack/controlplane.ts';
import { KubeClient } from '../../src/kube/client.ts';
import { machine, type summary } from '../stats.ts';
import { latencyPhase } from './latency.ts';
import { fluxHandlesPending } from './observers.ts';
import { type ScaleOptions, scalePhase } from './scale.ts';
import { stormDebounced, stormOnce } from './storm.ts';

const USAGE = `Usage: npm run bench:triggers [-- --help]

Runs the latency, storm and scale scenarios against a control plane of its own (built by
npm run build:control-plane) and writes bench/results/triggers-<date>.{json,md}.

Environment:
  BENCH_PHASES=scale          run the scale scenario only (its numbers are printed, nothing is written)
  BENCH_SCALE                 releases in the scale scenario (default 10000)
  BENCH_BIG_SECRETS           Helm-release-sized Secrets in the scale scenario (default 100)
  BENCH_OPERATOR_NODE_FLAGS   node flag sets of the operator, separated by | (default
                              "|--max-semi-space-size=2 --max-old-space-size=256": Node's defaults, then ours)
`;

interface Options {
  scaleOnly: boolean;
  scale: ScaleOptions;
}

function options(env: NodeJS.ProcessEnv): Options {
  return {
    scaleOnly: env.BENCH_PHASES === 'scale',
    scale: {
      releases: Number(env.BENCH_SCALE ?? 10_000),
      bigSecrets: Number(env.BENCH_BIG_SECRETS ?? 100),
      operatorNodeFlags: (
        env.BENCH_OPERATOR_NODE_FLAGS ?? '|--max-semi-space-size=2 --max-old-space-size=256'
      ).split('|'),
    },
  };
}

function markdown(r: Record<string, unknown>): string {
  const j = (v: unknown) => `\`${JSON.stringify(v)}\``;
  const env = r.environment as Record<string, unknown>;
  const lines = [
    `# Trigger reconciler benchmark — ${env.date}`,
    '',
    `CPU: ${env.cpu} × ${env.cores}; RAM ${env.memoryGB} GB; Node ${env.node}; load average before/after: ${j(env.loadBefore)} / ${j(env.loadAfter)}.`,
    'Real etcd + kube-apiserver on loopback, shared with nothing else in this process; other jobs on the machine add noise.',
    '',
    '## Trigger latency (debounce 0): ConfigMap PATCH sent → new requestedAt seen by a watch',
    '',
    '| releases | samples | p50 ms | p90 ms | p99 ms | max ms | API watch floor p50/p99 ms | missed |',
    '|---|---|---|---|---|---|---|---|',
  ];
  for (const l of r.latency as {
    releases: number;
    triggerLatencyMs: ReturnType<typeof summary>;
    apiWatchFloorMs: ReturnType<typeof summary>;
    missed: number;
  }[]) {
    const t = l.triggerLatencyMs;
    lines.push(
      `| ${l.releases} | ${t.n} | ${t.p50} | ${t.p90} | ${t.p99} | ${t.max} | ${l.apiWatchFloorMs.p50} / ${l.apiWatchFloorMs.p99} | ${l.missed} |`,
    );
  }
  lines.push(
    '',
    '## Storms',
    '',
    '```json',
    JSON.stringify(r.storms, null, 2),
    '```',
    '',
    '## Scale',
    '',
    '```json',
    JSON.stringify(r.scale, null, 2),
    '```',
    '',
  );
  lines.push(
    'RSS: `rssOfCodeAloneMB` is the operator process after its imports, before any cache (Node, fastify, pino, prom-client, yaml, node-forge and our modules).',
    'Target (DESIGN.md): p99 ≤ 200 ms with 1,000 releases; one patch per affected release per change window; ≤ 200 MB RSS and ≤ 10 s start-up at 10,000 releases.',
    '',
  );
  return lines.join('\n');
}

async function main(o: Options) {
  const loadBefore = loadavg();
  const cp = await startControlPlane();
  const kc = new KubeConfig();
  kc.loadFromFile(cp.kubeconfigPath);
  const client = await KubeClient.create(kc);
  const out: Record<string, unknown> = {};
  try {
    if (o.scaleOnly) {
      out.scale = await scalePhase(cp, client, o.scale);
      process.stderr.write(`  ${JSON.stringify(out.scale)}\n`);
      return;
    }
    process.stderr.write('latency with 100 releases\n');
    const l100 = await latencyPhase(cp, client, 100, 100);
    await l100.releases.stop();
    await l100.op.stop();
    process.stderr.write(`  ${JSON.stringify(l100.result.triggerLatencyMs)}\nlatency with 1,000 releases\n`);
    const l1000 = await latencyPhase(cp, client, 1000, 300);
    process.stderr.write(
      `  ${JSON.stringify(l1000.result.triggerLatencyMs)}\nstorm: 1,000 changes at once\n`,
    );
    await fluxHandlesPending(client, l1000.ns);
    const storm = await stormOnce(client, l1000.releases, l1000.ns, 1000);
    await l1000.releases.stop();
    await l1000.op.stop();
    process.stderr.write(
      `  ${JSON.stringify(storm)}\nstorm: 1,000 changes on 100 ConfigMaps, debounce 1 s\n`,
    );
    await fluxHandlesPending(client, l1000.ns);
    const debounced = await stormDebounced(cp, client, l1000.ns);
    process.stderr.write(`  ${JSON.stringify(debounced)}\nscale: ${o.scale.releases} releases\n`);
    const scale = await scalePhase(cp, client, o.scale);
    process.stderr.write(`  ${JSON.stringify(scale)}\n`);
    out.latency = [l100.result, l1000.result];
    out.storms = { once: storm, debounced };
    out.scale = scale;
  } finally {
    client.close();
    await cp.stop();
  }
  const date = new Date().toISOString();
  out.environment = {
    date,
    ...machine(),
    loadBefore: loadBefore.map((x) => Math.round(x * 100) / 100),
    loadAfter: loadavg().map((x) => Math.round(x * 100) / 100),
  };
  const dir = join(import.meta.dirname, '..', 'results');
  mkdirSync(dir, { recursive: true });
  const stem = `triggers-${date.slice(0, 19).replace(/[:T]/g, '-')}`;
  writeFileSync(join(dir, `${stem}.json`), `${JSON.stringify(out, null, 2)}\n`);
  writeFileSync(join(dir, `${stem}.md`), markdown(out));
  process.stdout.write(`${markdown(out)}\nwritten: bench/results/${stem}.{json,md}\n`);
}

if (process.argv.includes('--help') || process.argv.includes('-h')) process.stdout.write(USAGE);
else await main(options(process.env));
