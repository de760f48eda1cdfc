// Memory of the values store with large consumed keys (npm run bench:values-memory): 1,000 releases each
// consuming one ~1 MB key (half ConfigMaps, half Secrets), the real operator process
// (cmd/helmrelease-autopilot/main.ts, reconcilers only) started with the shipped V8 flags. Its RSS is read
// from /proc after the caches synced and after the first pass over every release; the API server's own
// request counters say what that pass cost. Two ways the releases can start:
//   BENCH_STAMP=none  no stamp: the first pass backfills every release (each key read once)
//   BENCH_STAMP=v1    stamped with today's (v1, unkeyed sha256) digests, as the webhook of an older version
//                     left them: the first pass is the upgrade's migration
// Writes bench/results/values-memory-<date>.{json,md}; it asserts nothing.
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { freePort, startControlPlane } from '../../hack/controlplane.ts';
import type { ValuesReference } from '../../src/flux/helmrelease.ts';
import { KubeClient } from '../../src/kube/client.ts';
import { ConfigMaps, collectionPath, HelmReleases, Namespaces, Secrets } from '../../src/kube/resources.ts';
import { Annotations, Labels } from '../../src/names.ts';
import { sleep } from '../../src/util/sleep.ts';
import { legacyValuesDigest } from '../../src/values/digest.ts';
import { machine, round } from '../stats.ts';
import { parallel } from '../triggers/objects.ts';

const USAGE = `Usage: npm run bench:values-memory [-- --help]

Starts a control plane of its own, creates BENCH_OBJECTS ConfigMaps/Secrets (half each) with one key of
BENCH_KEY_BYTES bytes and as many HelmReleases consuming one each, runs the operator process
(reconcilers only) and reports its RSS after sync and after the first pass.

Environment:
  BENCH_OBJECTS        consumed objects and releases (default 1000)
  BENCH_KEY_BYTES      bytes of each consumed key (default 1000000; a ConfigMap or Secret holds at most 1 MiB)
  BENCH_STAMP          none | v1 | both (default both: one operator run per starting state)
  BENCH_NODE_FLAGS     V8 flag sets of the operator, separated by | (default: the shipped
                       "--max-semi-space-size=2 --max-old-space-size=256"; an empty set is Node's defaults)
  BENCH_LABEL          free text recorded with the results (e.g. the code measured)
  BENCH_COMMIT         the commit measured, when run from a tree without .git (default: git rev-parse HEAD)
`;

const NS = 'values-memory';
const OPERATOR_NS = 'helmrelease-autopilot';
const MAIN = join(import.meta.dirname, '..', '..', 'cmd', 'helmrelease-autopilot', 'main.ts');
const SHIPPED_FLAGS = '--max-semi-space-size=2 --max-old-space-size=256';

type Stamp = 'none' | 'v1';

interface Options {
  objects: number;
  keyBytes: number;
  stamps: Stamp[];
  nodeFlags: string[];
  label: string;
}

function options(env: NodeJS.ProcessEnv): Options {
  const stamp = env.BENCH_STAMP ?? 'both';
  return {
    objects: Number(env.BENCH_OBJECTS ?? 1000),
    keyBytes: Number(env.BENCH_KEY_BYTES ?? 1_000_000),
    stamps: stamp === 'both' ? ['none', 'v1'] : [stamp as Stamp],
    nodeFlags: (env.BENCH_NODE_FLAGS ?? SHIPPED_FLAGS).split('|').map((f) => f.trim()),
    label: env.BENCH_LABEL ?? '',
  };
}

const kindOf = (i: number): 'ConfigMap' | 'Secret' => (i % 2 === 0 ? 'ConfigMap' : 'Secret');
const objectName = (i: number) => `src-${i}`;
const ref = (i: number): ValuesReference => ({
  kind: kindOf(i),
  name: objectName(i),
  valuesKey: 'values.yaml',
  targetPath: '',
  optional: false,
});

/** The consumed key of object i: distinct per object, `bytes` long, YAML-ish text. */
function keyText(i: number, bytes: number): string {
  const head = `# object ${i}\nfiller: "`;
  return `${head}${'abcdefghij'.repeat(Math.ceil(bytes / 10)).slice(0, Math.max(0, bytes - head.length - 2))}"\n`;
}

async function createObjects(client: KubeClient, o: Options): Promise<void> {
  for (const name of [NS, OPERATOR_NS])
    await client.create(collectionPath(Namespaces), { metadata: { name } });
  const idx = Array.from({ length: o.objects }, (_, i) => i);
  await parallel(idx, 4, async (i) => {
    const text = keyText(i, o.keyBytes);
    if (kindOf(i) === 'ConfigMap')
      await client.create(collectionPath(ConfigMaps, NS), {
        metadata: { name: objectName(i) },
        data: { 'values.yaml': text },
      });
    else
      await client.create(collectionPath(Secrets, NS), {
        metadata: { name: objectName(i) },
        data: { 'values.yaml': Buffer.from(text).toString('base64') },
      });
  });
}

/** (Re)creates the releases app-i, unstamped or stamped with the v1 digest of what they consume. */
async function createReleases(client: KubeClient, o: Options, stamp: Stamp): Promise<void> {
  const idx = Array.from({ length: o.objects }, (_, i) => i);
  await parallel(idx, 16, async (i) => {
    try {
      await client.delete(`${collectionPath(HelmReleases, NS)}/app-${i}`);
    } catch {
      // not there yet
    }
  });
  await parallel(idx, 16, async (i) => {
    const digest =
      stamp === 'v1' ? legacyValuesDigest([ref(i)], () => Buffer.from(keyText(i, o.keyBytes))) : undefined;
    await client.create(collectionPath(HelmReleases, NS), {
      apiVersion: 'helm.toolkit.fluxcd.io/v2',
      kind: 'HelmRelease',
      metadata: {
        name: `app-${i}`,
        ...(digest
          ? { labels: { [Labels.managed]: 'true' }, annotations: { [Annotations.valuesDigest]: digest } }
          : {}),
      },
      spec: {
        interval: '5m',
        chart: { spec: { chart: 'app', sourceRef: { kind: 'HelmRepository', name: 'repo' } } },
        valuesFrom: [{ kind: kindOf(i), name: objectName(i) }],
      },
    });
  });
}

/** VmRSS and VmHWM (peak) of a process, in MB. */
function procMemory(pid: number): { rssMB: number; peakMB: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? 0);
  return { rssMB: round(kb('VmRSS') / 1024, 1), peakMB: round(kb('VmHWM') / 1024, 1) };
}

/** Prometheus text -> sum of every sample of `name` whose labels contain all of `labels`. */
function metricSum(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name) || (line[name.length] !== '{' && line[name.length] !== ' ')) continue;
    if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
    sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

/** The API server's request counters for the resources the operator reads and writes, by "verb resource". */
async function apiRequests(client: KubeClient): Promise<Record<string, number>> {
  const text = await client.getText('/metrics');
  const out: Record<string, number> = {};
  for (const resource of ['configmaps', 'secrets', 'helmreleases'])
    for (const verb of ['GET', 'LIST', 'WATCH', 'PATCH', 'CREATE'])
      out[`${verb} ${resource}`] = metricSum(text, 'apiserver_request_total', { verb, resource });
  return out;
}

const diff = (a: Record<string, number>, b: Record<string, number>) =>
  Object.fromEntries(
    Object.entries(b)
      .map(([k, v]) => [k, v - (a[k] ?? 0)])
      .filter(([, v]) => v !== 0),
  );

async function get(url: string): Promise<{ status: number; text: string }> {
  try {
    const res = await fetch(url);
    return { status: res.status, text: await res.text() };
  } catch {
    return { status: 0, text: '' };
  }
}

interface Sample {
  ms: number;
  rssMB: number;
  peakMB: number;
}

interface RunResult {
  stamp: Stamp;
  nodeFlags: string;
  synced?: Sample;
  firstPass?: Sample;
  settled5s?: Sample;
  /** Set when the process died (e.g. V8 out of heap): when, and the last memory seen. */
  died?: { ms: number; exitCode: number | null; lastSeen: Sample };
  heapUsedMB?: number;
  externalMB?: number;
  outcomes?: Record<string, number>;
  apiRequests: Record<string, number>;
}

/** One operator process over the releases as they are; RSS after sync and after the first pass. */
async function operatorRun(
  kubeconfig: string,
  client: KubeClient,
  o: Options,
  stamp: Stamp,
  nodeFlags: string,
): Promise<RunResult> {
  const port = await freePort();
  const before = await apiRequests(client);
  const t0 = performance.now();
  const ms = () => Math.round(performance.now() - t0);
  const child = spawn(
    process.execPath,
    [
      ...nodeFlags.split(' ').filter(Boolean),
      MAIN,
      '--webhook=false',
      '--leader-elect=false',
      `--namespace=${OPERATOR_NS}`,
      `--watch-namespace=${NS}`,
      `--health-port=${port}`,
      `--metrics-port=${port}`,
      '--bind-address=127.0.0.1',
      '--log-level=warn',
    ],
    { env: { PATH: process.env.PATH, KUBECONFIG: kubeconfig }, stdio: ['ignore', 'inherit', 'inherit'] },
  );
  const pid = child.pid as number;
  const sample = (): Sample => ({ ms: ms(), ...procMemory(pid) });
  let last: Sample = { ms: 0, rssMB: 0, peakMB: 0 };
  let died: RunResult['died'];
  const exited = new Promise<void>((resolve) =>
    child.on('exit', (exitCode) => {
      died = { ms: ms(), exitCode, lastSeen: last };
      resolve();
    }),
  );
  // /proc/<pid> is gone once the process died: keep the last reading.
  const sampler = setInterval(() => {
    try {
      const s = sample();
      // A process that has exited but not been reaped reports no VmRSS.
      if (s.rssMB > 0) last = s;
    } catch {
      // exited
    }
  }, 100);
  const result: RunResult = { stamp, nodeFlags, apiRequests: {} };
  const base = `http://127.0.0.1:${port}`;
  try {
    while ((await get(`${base}/readyz`)).status !== 200) {
      if (died) return result;
      await sleep(50);
    }
    result.synced = sample();
    process.stderr.write(`  synced: ${JSON.stringify(result.synced)}\n`);
    // The first pass is over when every release was examined (a backfill's own write brings it back once
    // more, as a skip), the queue is empty and nothing was examined for a second.
    let metrics = '';
    let examined = -1;
    let quietSince = 0;
    for (;;) {
      if (died) return result;
      metrics = (await get(`${base}/metrics`)).text;
      const now =
        metricSum(metrics, 'helmrelease_autopilot_triggers_total') +
        metricSum(metrics, 'helmrelease_autopilot_trigger_backfills_total') +
        metricSum(metrics, 'helmrelease_autopilot_trigger_skips_total');
      if (now !== examined) {
        examined = now;
        quietSince = ms();
      }
      const idle = metricSum(metrics, 'helmrelease_autopilot_trigger_queue_depth') === 0;
      if (examined >= o.objects && idle && ms() - quietSince >= 1000) break;
      await sleep(100);
    }
    result.firstPass = { ...sample(), ms: quietSince };
    process.stderr.write(`  first pass: ${JSON.stringify(result.firstPass)}\n`);
    await sleep(5000);
    if (died) return result;
    result.settled5s = sample();
    metrics = (await get(`${base}/metrics`)).text;
    const mb = (name: string) => round(metricSum(metrics, name) / 2 ** 20, 1);
    result.heapUsedMB = mb('nodejs_heap_size_used_bytes');
    result.externalMB = mb('nodejs_external_memory_bytes');
    result.outcomes = {
      triggers: metricSum(metrics, 'helmrelease_autopilot_triggers_total'),
      backfills: metricSum(metrics, 'helmrelease_autopilot_trigger_backfills_total'),
      skips: metricSum(metrics, 'helmrelease_autopilot_trigger_skips_total'),
      errors: metricSum(metrics, 'helmrelease_autopilot_trigger_errors_total'),
    };
    return result;
  } finally {
    clearInterval(sampler);
    if (died) process.stderr.write(`  operator died: ${JSON.stringify(died)}\n`);
    result.died = died;
    child.kill('SIGTERM');
    await Promise.race([exited, sleep(15_000).then(() => child.kill('SIGKILL'))]);
    result.apiRequests = diff(before, await apiRequests(client));
  }
}

/** The commit measured: BENCH_COMMIT (a tree exported with git archive has no .git), else HEAD. */
function gitCommit(): string {
  if (process.env.BENCH_COMMIT) return process.env.BENCH_COMMIT;
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8', stdio: 'pipe' }).trim();
  } catch {
    return 'unknown';
  }
}

function markdown(r: Record<string, unknown>): string {
  const env = r.environment as Record<string, unknown>;
  const runs = r.runs as RunResult[];
  const lines = [
    `# Values store memory — ${env.date}`,
    '',
    `Code: ${r.commit}${r.label ? ` (${r.label})` : ''}. CPU: ${env.cpu} × ${env.cores}; RAM ${env.memoryGB} GB; Node ${env.node}; load average before/after: \`${JSON.stringify(env.loadBefore)}\` / \`${JSON.stringify(env.loadAfter)}\`.`,
    `${r.objects} releases, each consuming one key of ${r.keyBytes} bytes (half ConfigMaps, half Secrets); the operator process (reconcilers only, default flags otherwise) against a real etcd + kube-apiserver on loopback. RSS from /proc/<pid>/status (VmRSS, VmHWM).`,
    '',
    '| start state | V8 flags | synced: ms / RSS MB | first pass: ms / RSS MB | RSS 5 s later | peak RSS (VmHWM) | heap used / external MB | triggers / backfills / skips / errors | API requests during the run |',
    '|---|---|---|---|---|---|---|---|---|',
  ];
  const at = (x?: Sample) => (x ? `${x.ms} / ${x.rssMB}` : '—');
  for (const x of runs) {
    const oc = x.outcomes;
    const peak = x.settled5s?.peakMB ?? x.died?.lastSeen.peakMB;
    lines.push(
      [
        x.stamp === 'none' ? 'unstamped (backfill pass)' : 'v1 digests (upgrade pass)',
        x.nodeFlags ? `\`${x.nodeFlags}\`` : "Node's defaults",
        at(x.synced),
        x.died && !x.firstPass
          ? `**died** after ${x.died.ms} ms (exit ${x.died.exitCode}), last RSS ${x.died.lastSeen.rssMB}`
          : at(x.firstPass),
        x.settled5s?.rssMB ?? '—',
        peak ?? '—',
        x.heapUsedMB !== undefined ? `${x.heapUsedMB} / ${x.externalMB}` : '—',
        oc ? `${oc.triggers} / ${oc.backfills} / ${oc.skips} / ${oc.errors}` : '—',
        Object.entries(x.apiRequests)
          .map(([k, v]) => `${k}: ${v}`)
          .join(', '),
      ]
        .join(' | ')
        .replace(/^/, '| ')
        .concat(' |'),
    );
  }
  lines.push('', 'Command: `npm run bench:values-memory` (environment in `--help`).', '');
  return lines.join('\n');
}

async function main(o: Options) {
  const loadBefore = loadavg();
  const cp = await startControlPlane();
  const kc = new KubeConfig();
  kc.loadFromFile(cp.kubeconfigPath);
  const client = await KubeClient.create(kc);
  const runs = [];
  try {
    const t0 = performance.now();
    await createObjects(client, o);
    process.stderr.write(
      `created ${o.objects} objects of ${o.keyBytes} bytes in ${Math.round(performance.now() - t0)} ms\n`,
    );
    for (const stamp of o.stamps) {
      for (const flags of o.nodeFlags) {
        // Fresh releases for every run: the previous run stamped them.
        await createReleases(client, o, stamp);
        process.stderr.write(
          `operator run: releases ${stamp === 'none' ? 'unstamped' : 'with v1 digests'}, V8 flags ${flags || "Node's defaults"}\n`,
        );
        runs.push(await operatorRun(cp.kubeconfigPath, client, o, stamp, flags));
      }
    }
  } finally {
    client.close();
    await cp.stop();
  }
  const date = new Date().toISOString();
  const out = {
    commit: gitCommit(),
    label: o.label,
    objects: o.objects,
    keyBytes: o.keyBytes,
    runs,
    environment: {
      date,
      ...machine(),
      loadBefore: loadBefore.map((x) => round(x, 2)),
      loadAfter: loadavg().map((x) => round(x, 2)),
    },
  };
  const dir = join(import.meta.dirname, '..', 'results');
  mkdirSync(dir, { recursive: true });
  const stem = `values-memory-${date.slice(0, 19).replace(/[:T]/g, '-')}`;
  writeFileSync(join(dir, `${stem}.json`), `${JSON.stringify(out, null, 2)}\n`);
  writeFileSync(join(dir, `${stem}.md`), markdown(out));
  process.stdout.write(`${markdown(out)}\nwritten: bench/results/${stem}.{json,md}\n`);
}

if (process.argv.includes('--help') || process.argv.includes('-h')) process.stdout.write(USAGE);
else await main(options(process.env));
