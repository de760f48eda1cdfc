// Benchmark of the trigger reconciler at scale (npm run bench:triggers -- --releases 10000), the real
// operator process (cmd/helmrelease-autopilot/main.ts) at its default flags, on a control plane of its own:
//  1. bare process (bare.ts): RSS and heap before any object exists;
//  2. the set (objects.ts): N releases, each consuming its own ConfigMap and Secret, + 100 Helm-release-sized
//     Secrets;
//  3. start-up (startup.ts): spawn → synced, → end of the first pass, a change made 1 s after spawn → its
//     trigger, writes to unchanged releases, RSS;
//  4. failover (failover.ts): follower synced, leader SIGKILLed with a change at the kill → Lease acquired,
//     → trigger, → the new leader's first pass, writes;
//  5. storms (storm.ts) on the new leader: 1,000 changes at once, 1,000 changes on 100 ConfigMaps;
//  6. steady state (latency.ts), a fresh process with --debounce=0: restart writes, trigger latency p50/p99
//     beside the API server's watch floor measured in the same run.
// Prints numbers and writes bench/results/triggers-<date>.{json,md}; it asserts nothing.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { startControlPlane } from '../../hack/controlplane.ts';
import { KubeClient } from '../../src/kube/client.ts';
import { collectionPath, Namespaces, Secrets } from '../../src/kube/resources.ts';
import { DIGEST_KEY_SECRET } from '../../src/values/key-secret.ts';
import { commit, machine, uptime } from '../stats.ts';
import { bareProcess } from './bare.ts';
import type { BenchContext } from './context.ts';
import { failoverPhase } from './failover.ts';
import { steadyStatePhase } from './latency.ts';
import { bareMarkdown, markdown } from './markdown.ts';
import { BENCH_DIGEST_KEYS, createScaleSet, ReleasePool } from './objects.ts';
import { ReleaseWatch } from './observers.ts';
import { launchDescription, OPERATOR_NAMESPACE, servingCertDir, warmUp } from './operator-process.ts';
import { startupPhase } from './startup.ts';
import { stormPhase } from './storm.ts';

const USAGE = `Usage: npm run bench:triggers -- [--releases N] [--big-secrets N] [--samples N] [--interval-ms N]
       npm run bench:triggers -- --bare

Runs the bare-process, start-up, failover, storm and steady-state scenarios against a control plane of its
own (built by npm run build:control-plane), the operator at its default flags (node flags from package.json's
start script), and writes bench/results/triggers-<date>.{json,md}.

  --releases N      releases, each with its own ConfigMap and Secret (default 10000; env BENCH_RELEASES)
  --big-secrets N   Helm-release-sized Secrets, ~900 kB each (default 100; env BENCH_BIG_SECRETS)
  --samples N       changes timed in the steady-state scenario (default 300; env BENCH_SAMPLES)
  --interval-ms N   one steady-state change every N ms (default 100; env BENCH_INTERVAL_MS)
  --bare            the bare-process scenario only (RSS, heap and modules with no object), written to
                    bench/results/triggers-bare-<date>.{json,md}
Environment: BENCH_NOTE   a note for the results (e.g. which code ran)
`;

export interface Options {
  bareOnly: boolean;
  releases: number;
  bigSecrets: number;
  samples: number;
  intervalMs: number;
}

function options(argv: string[], env: NodeJS.ProcessEnv): Options {
  const arg = (name: string, envName: string, def: number) => {
    const i = argv.indexOf(`--${name}`);
    const raw =
      i >= 0 ? argv[i + 1] : (argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? env[envName]);
    const n = raw === undefined ? def : Number(raw);
    if (!Number.isInteger(n) || n < 0) throw new Error(`--${name}: not a count: ${raw}`);
    return n;
  };
  const o = {
    bareOnly: argv.includes('--bare'),
    releases: arg('releases', 'BENCH_RELEASES', 10_000),
    bigSecrets: arg('big-secrets', 'BENCH_BIG_SECRETS', 100),
    samples: arg('samples', 'BENCH_SAMPLES', 300),
    intervalMs: arg('interval-ms', 'BENCH_INTERVAL_MS', 100),
  };
  const needed = 2 + 1001 + 100 + o.samples;
  if (!o.bareOnly && o.releases < needed)
    throw new Error(`--releases must be at least ${needed} (the scenarios use that many)`);
  return o;
}

/** The scenarios over the set: creation, start-up, failover, storms, steady state. */
async function atScale(ctx: BenchContext, o: Options, out: Record<string, unknown>) {
  process.stderr.write(`creating ${o.releases} releases\n`);
  const c0 = performance.now();
  const set = await createScaleSet(ctx.client, o.releases, o.bigSecrets);
  out.set = {
    releases: o.releases,
    configMaps: o.releases,
    secrets: o.releases,
    helmReleaseSecrets: o.bigSecrets,
    namespaces: set.namespaces.length,
    createMs: Math.round(performance.now() - c0),
  };
  process.stderr.write('start-up (process A)\n');
  const a = await startupPhase(ctx);
  out.startup = a.result;
  process.stderr.write(`  ${JSON.stringify(a.result)}\nfailover (process B follows, A is SIGKILLed)\n`);
  const b = await failoverPhase(ctx, a.op);
  out.failover = b.result;
  process.stderr.write(`  ${JSON.stringify(b.result)}\nstorms (on B, default flags)\n`);
  out.storms = await stormPhase(ctx, b.op);
  out.stormLeaderMemory = b.op.memory();
  await b.op.stop();
  process.stderr.write('steady state (process C, --debounce=0)\n');
  out.steadyState = await steadyStatePhase(ctx, o.samples, o.intervalMs);
  process.stderr.write(`  ${JSON.stringify(out.steadyState)}\n`);
}

async function main(o: Options) {
  const t0 = performance.now();
  const out: Record<string, unknown> = {};
  const environment: Record<string, unknown> = {
    date: new Date().toISOString(),
    ...machine(),
    operatorLaunch: launchDescription(),
    commit: commit(),
    command: o.bareOnly
      ? 'npm run bench:triggers -- --bare'
      : `npm run bench:triggers -- --releases ${o.releases} --big-secrets ${o.bigSecrets} --samples ${o.samples} --interval-ms ${o.intervalMs}`,
    ...(process.env.BENCH_NOTE ? { note: process.env.BENCH_NOTE } : {}),
    uptimeBefore: uptime(),
  };
  out.environment = environment;
  process.stderr.write(`${environment.uptimeBefore}\nstarting the control plane\n`);
  warmUp();
  const cp = await startControlPlane();
  const kc = new KubeConfig();
  kc.loadFromFile(cp.kubeconfigPath);
  const client = await KubeClient.create(kc);
  const certDir = servingCertDir();
  // Started before the set exists: creations are adds, never counted as writes.
  const releases = await new ReleaseWatch(client).start();
  const ctx: BenchContext = {
    cp,
    client,
    certDir,
    releases,
    pool: new ReleasePool(o.releases),
    slowMs: Math.max(600_000, o.releases * 90),
    started: [],
  };
  try {
    environment.kubeApiserver = ((await client.get('/version')) as { gitVersion?: string }).gitVersion;
    await client.create(collectionPath(Namespaces), { metadata: { name: OPERATOR_NAMESPACE } });
    // The cluster's digest key, known to the benchmark, so it can create releases already stamped.
    await client.create(collectionPath(Secrets, OPERATOR_NAMESPACE), {
      metadata: { name: DIGEST_KEY_SECRET },
      data: { current: Buffer.from(BENCH_DIGEST_KEYS.current.secret).toString('base64') },
    });
    process.stderr.write('bare process (no objects yet)\n');
    out.bareProcess = await bareProcess(ctx);
    process.stderr.write(`  ${JSON.stringify(out.bareProcess)}\n`);
    if (!o.bareOnly) await atScale(ctx, o, out);
  } catch (err) {
    process.stderr.write(`benchmark failed; what it measured so far:\n${JSON.stringify(out, null, 2)}\n`);
    throw err;
  } finally {
    for (const op of ctx.started) if (op.alive()) await op.kill();
    await releases.stop();
    client.close();
    await cp.stop();
    rmSync(certDir, { recursive: true, force: true });
  }
  environment.uptimeAfter = uptime();
  environment.runMs = Math.round(performance.now() - t0);
  const dir = join(import.meta.dirname, '..', 'results');
  mkdirSync(dir, { recursive: true });
  const stem = `triggers-${o.bareOnly ? 'bare-' : ''}${(environment.date as string).slice(0, 19).replace(/[:T]/g, '-')}`;
  writeFileSync(join(dir, `${stem}.json`), `${JSON.stringify(out, null, 2)}\n`);
  const md = o.bareOnly ? bareMarkdown(out) : markdown(out);
  writeFileSync(join(dir, `${stem}.md`), md);
  process.stdout.write(`${md}\nwritten: bench/results/${stem}.{json,md}\n`);
}

const argv = process.argv.slice(2);
if (argv.includes('--help') || argv.includes('-h')) process.stdout.write(USAGE);
else await main(options(argv, process.env));
