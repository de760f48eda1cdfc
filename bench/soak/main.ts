// Reliability soak (issue #15): npm run soak -- [--duration 30m] [--releases 500] [--seed N] [--rate N].
// The real control plane (watch cache off), two operator processes with leader election and a short Lease,
// the shipped webhook registration on loopback; a change generator (generator.ts) at a steady rate and a
// fault injector (faults.ts) at random intervals; an oracle (oracle.ts) that decides, offline at the end,
// lost and spurious triggers from every change and every trigger. Writes bench/results/soak-<date>.{json,md}
// and exits non-zero when anything was lost, spurious, or unsettled.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { sleep } from '../../src/util/sleep.ts';
import { commit, machine, round, summary, uptime } from '../stats.ts';
import { startSoakCluster } from './cluster.ts';
import { FaultInjector } from './faults.ts';
import { Generator, rng } from './generator.ts';
import { createBaseSet, NAMESPACES } from './objects.ts';
import { Oracle } from './oracle.ts';
import { detail, markdown, type SoakResult } from './report.ts';
import { ReleaseWatch } from './watch.ts';

const USAGE = `Usage: npm run soak -- [--duration 30m] [--releases 500] [--seed N] [--rate 4]

  --duration D   the whole run after the control plane is up (s, m: 90s, 3m, 30m; default 30m): the set,
                 the operators' start, changes and faults, then a settle wait of a sixth of it (30 s to 150 s)
  --releases N   releases in ${NAMESPACES} namespaces (default 500)
  --seed N       seed of the change and fault draws (default: the time)
  --rate N       changes per second (default 4)
Writes bench/results/soak-<date>.{json,md}; exits 1 when lost > 0, spurious > 0 or anything is unsettled.
`;

interface Options {
  durationMs: number;
  releases: number;
  seed: number;
  rate: number;
}

function parseDuration(raw: string): number {
  const m = /^(\d+(?:\.\d+)?)(s|m|h)?$/.exec(raw);
  if (!m) throw new Error(`--duration: not a duration: ${raw}`);
  return Number(m[1]) * { s: 1000, m: 60_000, h: 3_600_000 }[(m[2] ?? 's') as 's' | 'm' | 'h'];
}

function options(argv: string[]): Options {
  const arg = (name: string) => {
    const i = argv.indexOf(`--${name}`);
    return i >= 0 ? argv[i + 1] : argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1];
  };
  const num = (name: string, def: number) => {
    const raw = arg(name);
    const n = raw === undefined ? def : Number(raw);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name}: not a positive number: ${raw}`);
    return n;
  };
  return {
    durationMs: parseDuration(arg('duration') ?? '30m'),
    releases: Math.round(num('releases', 500)),
    seed: Math.round(num('seed', Date.now() % 1_000_000_007)),
    rate: num('rate', 4),
  };
}

async function main(o: Options): Promise<boolean> {
  const environment: Record<string, unknown> = {
    date: new Date().toISOString(),
    ...machine(),
    commit: commit(),
    command: `npm run soak -- --duration ${Math.round(o.durationMs / 1000)}s --releases ${o.releases} --seed ${o.seed} --rate ${o.rate}`,
    uptimeBefore: uptime(),
  };
  const log = (s: string) => process.stderr.write(`[soak ${new Date().toISOString().slice(11, 19)}] ${s}\n`);
  log(`starting the control plane (seed ${o.seed})`);
  const cluster = await startSoakCluster();
  const t0 = Date.now();
  const end = t0 + o.durationMs;
  // Long enough for a frozen connection injected late in a long run to be noticed (faults.ts).
  const settleMs = Math.min(150_000, Math.max(30_000, o.durationMs / 6));
  const oracle = new Oracle();
  const watch = new ReleaseWatch(cluster.client, oracle);
  const random = rng(o.seed);
  const faults = new FaultInjector(cluster, random);
  let result: SoakResult;
  try {
    environment.kubeApiserver = (
      (await cluster.client.get('/version')) as { gitVersion?: string }
    ).gitVersion;
    log(`creating ${o.releases} releases`);
    const specs = await createBaseSet(cluster.client, oracle, o.releases);
    await watch.start();
    log('starting two operators');
    for (const r of cluster.replicas) await r.start();
    const startWrites = watch.stats.operatorWrites;
    await sleep(3000);
    log(`operators up (writes at start: ${watch.stats.operatorWrites - startWrites}); changes and faults`);
    const generator = new Generator(cluster.client, oracle, specs, random);
    const changesEnd = end - settleMs;
    const generating = Date.now();
    // Faults stop early enough for the cluster to be whole while the last changes are made.
    const faultSpan = changesEnd - 15_000 - Date.now();
    await Promise.all([
      generator.run(o.rate, changesEnd),
      faults.run(changesEnd - 15_000, end, Math.min(10_000, faultSpan / 20), Math.min(40_000, faultSpan / 9)),
    ]);
    const changesMs = Date.now() - generating;
    log(`changes done (${JSON.stringify(generator.counts)}); settling`);
    cluster.webhook.down = false;
    for (const r of cluster.replicas) if (!r.alive()) await r.start();
    const settleEnd = Math.max(end, Date.now() + 20_000);
    while (Date.now() < settleEnd && (oracle.uncovered() > 0 || watch.pending().length > 0))
      await sleep(2000);
    await sleep(6000); // a late spurious trigger would show up here (the default debounce is 2 s)
    const v = oracle.verdict();
    const consumed = v.consumed.length;
    const unsettled = watch.pending().length;
    environment.uptimeAfter = uptime();
    environment.runMs = Date.now() - t0;
    result = {
      environment,
      load: {
        releases: o.releases,
        namespaces: NAMESPACES,
        rate: o.rate,
        seed: o.seed,
        durationMs: changesMs,
      },
      changes: {
        byKind: generator.counts,
        consumed,
        failedWrites: generator.failed,
        readBack: generator.readBacks,
      },
      faults: {
        byKind: faults.counts(),
        log: faults.injected.map((f) => ({
          kind: f.kind,
          atS: Math.round((f.at - t0) / 1000),
          ms: f.ms,
          detail: f.detail,
        })),
      },
      verdict: {
        lost: v.lost.length,
        spurious: v.spurious.length,
        raced: v.raced.length,
        unstampedCreationTriggers: v.unstampedCreation.length,
        unsettled,
        triggers: oracle.triggers.length,
        operatorWrites: watch.stats.operatorWrites,
        writesPerChange: round(watch.stats.operatorWrites / Math.max(1, consumed), 3),
        triggersPerChange: round(oracle.triggers.length / Math.max(1, consumed), 3),
        coveredByResume: v.coveredByResume,
        reverted: v.reverted,
        droppedByDelete: v.droppedByDelete,
        suspendedChanges: v.suspendedChanges,
        suspendedTriggeredAfterResume: v.suspendedTriggeredAfterResume,
        latencyMs: summary(v.latenciesMs, 0),
        ...detail(v),
      },
      watch: { ...watch.stats },
      replicas: cluster.replicas.map((r) => ({
        name: r.name,
        starts: r.starts,
        unexpectedExits: r.unexpectedExits,
      })),
      passed: v.lost.length === 0 && v.spurious.length === 0 && unsettled === 0,
    };
  } finally {
    await watch.stop();
    log(`operator logs: ${cluster.logDir}`);
    await cluster.stop();
  }
  const dir = join(import.meta.dirname, '..', 'results');
  mkdirSync(dir, { recursive: true });
  const stem = `soak-${(environment.date as string).slice(0, 19).replace(/[:T]/g, '-')}`;
  writeFileSync(join(dir, `${stem}.json`), `${JSON.stringify(result, null, 2)}\n`);
  const md = markdown(result);
  writeFileSync(join(dir, `${stem}.md`), md);
  process.stdout.write(`${md}\nwritten: bench/results/${stem}.{json,md}\n`);
  return result.passed;
}

const argv = process.argv.slice(2);
if (argv.includes('--help') || argv.includes('-h')) process.stdout.write(USAGE);
else {
  const passed = await main(options(argv));
  process.exit(passed ? 0 : 1);
}
