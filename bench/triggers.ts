// Benchmark of the trigger reconciler on its own control plane (npm run bench:triggers):
//  1. latency: ConfigMap patch -> HelmRelease requestedAt seen by a watch, with 100 and 1,000 releases
//     (debounce 0), next to the API server's own floor (the same patch seen by a ConfigMap watch);
//  2. storms: 1,000 changes at once (debounce 0), and 1,000 changes on 100 ConfigMaps (debounce 1 s):
//     time to settle and writes per affected release;
//  3. scale: start-up to synced and to idle, RSS, with 10,000 releases, 10,000 ConfigMaps and 10,000
//     Secrets (100 of them ~900 kB, like Helm's release Secrets), the operator in a child process.
// Prints numbers and writes bench/results/triggers-<date>.{json,md}; it asserts nothing.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { KubeConfig } from '@kubernetes/client-node';
import { type ControlPlane, startControlPlane } from '../hack/controlplane.ts';
import type { ValuesReference } from '../src/flux/helmrelease.ts';
import { KubeClient } from '../src/kube/client.ts';
import { Informer } from '../src/kube/informer.ts';
import {
  ConfigMaps,
  collectionPath,
  HelmReleases,
  Namespaces,
  objectPath,
  Secrets,
} from '../src/kube/resources.ts';
import { createLogger } from '../src/log.ts';
import { Annotations, Flux, Labels } from '../src/names.ts';
import { isObject, stringMap } from '../src/util/narrow.ts';
import { sleep } from '../src/util/sleep.ts';
import { valuesDigest } from '../src/values/digest.ts';
import { machine, summary } from './stats.ts';

const HERE = dirname(fileURLToPath(import.meta.url));
const SCALE = Number(process.env.BENCH_SCALE ?? 10_000);
const BIG_SECRETS = Number(process.env.BENCH_BIG_SECRETS ?? 100);
const BIG_SECRET_BYTES = 900 * 1024;
const logger = createLogger('warn', 'bench');

// ---------- small helpers ----------

async function parallel<T>(items: readonly T[], n: number, fn: (item: T, i: number) => Promise<void>) {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        await fn(items[i] as T, i);
      }
    }),
  );
}

const ref = (kind: 'ConfigMap' | 'Secret', name: string): ValuesReference => ({
  kind,
  name,
  valuesKey: 'values.yaml',
  targetPath: '',
  optional: false,
});

const valuesText = (i: number, gen: number) =>
  `replicaCount: ${gen}\nimage:\n  repository: example/app-${i}\n  tag: "1.${gen}.0"\nresources:\n  limits: {cpu: 500m, memory: 256Mi}\n`;

// ---------- objects ----------

interface SetOptions {
  namespace: string;
  count: number;
  /** Also give each release a Secret it consumes (up to count - bigSecrets). */
  secrets?: boolean;
  bigSecrets?: number;
}

/** Creates ConfigMaps cm-i, (Secrets sec-i), and releases app-i consuming them, stamped as the webhook would. */
async function createSet(client: KubeClient, o: SetOptions): Promise<void> {
  await client.create(collectionPath(Namespaces), { metadata: { name: o.namespace } });
  const idx = Array.from({ length: o.count }, (_, i) => i);
  const big = o.bigSecrets ?? 0;
  const withSecret = (i: number) => o.secrets === true && i < o.count - big;
  await parallel(idx, 24, async (i) => {
    await client.create(collectionPath(ConfigMaps, o.namespace), {
      metadata: { name: `cm-${i}` },
      data: { 'values.yaml': valuesText(i, 0), 'unused.txt': 'x'.repeat(200) },
    });
    if (withSecret(i)) {
      await client.create(collectionPath(Secrets, o.namespace), {
        metadata: { name: `sec-${i}` },
        data: { 'values.yaml': Buffer.from(`password: p${i}\n`).toString('base64') },
      });
    }
  });
  // Helm release Secrets: large, unconsumed; the operator must never fetch them.
  const blob = Buffer.alloc(BIG_SECRET_BYTES, 0x5a).toString('base64');
  await parallel(
    Array.from({ length: big }, (_, i) => i),
    4,
    async (i) => {
      await client.create(collectionPath(Secrets, o.namespace), {
        metadata: { name: `sh.helm.release.v1.app-${i}.v1`, labels: { owner: 'helm' } },
        type: 'helm.sh/release.v1',
        data: { release: blob },
      });
    },
  );
  await parallel(idx, 24, async (i) => {
    const refs = [ref('ConfigMap', `cm-${i}`), ...(withSecret(i) ? [ref('Secret', `sec-${i}`)] : [])];
    const digest = valuesDigest(refs, (r) =>
      Buffer.from(r.kind === 'ConfigMap' ? valuesText(i, 0) : `password: p${i}\n`),
    );
    await client.create(collectionPath(HelmReleases, o.namespace), {
      apiVersion: 'helm.toolkit.fluxcd.io/v2',
      kind: 'HelmRelease',
      metadata: {
        name: `app-${i}`,
        labels: { [Labels.managed]: 'true' },
        annotations: { [Annotations.valuesDigest]: digest },
      },
      spec: {
        interval: '5m',
        chart: { spec: { chart: 'app', sourceRef: { kind: 'HelmRepository', name: 'repo' } } },
        valuesFrom: refs.map((r) => ({ kind: r.kind, name: r.name })),
      },
    });
  });
}

// ---------- observers ----------

/** Watches releases: every write, and every new requestedAt with the time it was seen. */
class ReleaseWatch {
  readonly writes = new Map<string, number>();
  readonly triggers = new Map<string, number>();
  private readonly waiters = new Map<string, (t: number) => void>();
  private readonly informer: Informer<string>;

  constructor(client: KubeClient, namespace?: string) {
    this.informer = new Informer<string>({
      client,
      resource: HelmReleases,
      ...(namespace ? { namespace } : {}),
      logger,
      pageSize: 1000,
      transform: (raw) =>
        isObject(raw) && isObject(raw.metadata)
          ? (stringMap(raw.metadata.annotations)[Flux.requestedAt] ?? '')
          : undefined,
    });
    this.informer.on({
      update: (old, c) => {
        const key = `${c.namespace}/${c.name}`;
        this.writes.set(key, (this.writes.get(key) ?? 0) + 1);
        if (c.value !== old.value) {
          this.triggers.set(key, (this.triggers.get(key) ?? 0) + 1);
          this.waiters.get(key)?.(performance.now());
        }
      },
    });
  }

  async start(): Promise<this> {
    this.informer.start();
    await this.informer.waitForSync();
    return this;
  }

  reset(): void {
    this.writes.clear();
    this.triggers.clear();
  }

  /** Resolves with the time the next new requestedAt of key is seen (or NaN after timeoutMs). */
  nextTrigger(key: string, timeoutMs: number): Promise<number> {
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.waiters.delete(key);
        resolve(Number.NaN);
      }, timeoutMs);
      this.waiters.set(key, (at) => {
        clearTimeout(t);
        this.waiters.delete(key);
        resolve(at);
      });
    });
  }

  get totalWrites(): number {
    let n = 0;
    for (const v of this.writes.values()) n += v;
    return n;
  }

  stop(): Promise<void> {
    return this.informer.stop();
  }
}

/** ConfigMap changes as the API server delivers them to any watcher: the floor under trigger latency. */
class ConfigMapWatch {
  private readonly waiters = new Map<string, (t: number) => void>();
  private readonly informer: Informer<true>;
  constructor(client: KubeClient, namespace: string) {
    this.informer = new Informer<true>({
      client,
      resource: ConfigMaps,
      namespace,
      metadataOnly: true,
      logger,
      transform: () => true,
    });
    this.informer.on({ update: (_o, c) => this.waiters.get(c.name)?.(performance.now()) });
  }
  async start(): Promise<this> {
    this.informer.start();
    await this.informer.waitForSync();
    return this;
  }
  next(name: string): Promise<number> {
    return new Promise((resolve) => this.waiters.set(name, resolve));
  }
  stop(): Promise<void> {
    return this.informer.stop();
  }
}

// ---------- the operator in a child process ----------

interface OperatorEvent {
  event: string;
  ms: number;
  rssMB: number;
  [k: string]: unknown;
}

class OperatorProcess {
  private readonly child: ChildProcess;
  private readonly seen: OperatorEvent[] = [];
  private readonly waiters: { event: string; resolve: (e: OperatorEvent) => void }[] = [];
  private readonly exited: Promise<void>;

  constructor(kubeconfig: string, env: Record<string, string>, nodeFlags = '') {
    const flags = nodeFlags.split(' ').filter(Boolean);
    this.child = spawn(process.execPath, ['--expose-gc', ...flags, join(HERE, 'triggers-operator.ts')], {
      env: { ...process.env, BENCH_KUBECONFIG: kubeconfig, ...env },
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    this.exited = new Promise((resolve) => this.child.on('exit', () => resolve()));
    createInterface({ input: this.child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
      let e: OperatorEvent;
      try {
        e = JSON.parse(line) as OperatorEvent;
      } catch {
        return;
      }
      this.seen.push(e);
      for (const w of this.waiters.filter((x) => x.event === e.event)) {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        w.resolve(e);
      }
    });
  }

  /** The first `event` line not yet consumed (waiting for it if needed). */
  waitFor(event: string, timeoutMs = 300_000): Promise<OperatorEvent> {
    const i = this.seen.findIndex((e) => e.event === event);
    if (i >= 0) return Promise.resolve(this.seen.splice(i, 1)[0] as OperatorEvent);
    return new Promise((resolve, reject) => {
      const t = setTimeout(
        () => reject(new Error(`operator did not report ${event} in ${timeoutMs} ms`)),
        timeoutMs,
      );
      this.waiters.push({
        event,
        resolve: (e) => {
          clearTimeout(t);
          this.seen.splice(this.seen.indexOf(e), 1);
          resolve(e);
        },
      });
    });
  }

  async stats(): Promise<OperatorEvent> {
    this.child.stdin?.write('stats\n');
    return this.waitFor('stats');
  }

  async stop(): Promise<void> {
    this.child.stdin?.end();
    await Promise.race([this.exited, sleep(10_000).then(() => this.child.kill('SIGKILL'))]);
  }
}

// ---------- phases ----------

async function latencyPhase(cp: ControlPlane, client: KubeClient, count: number, samples: number) {
  const ns = `bench-lat-${count}`;
  const t0 = performance.now();
  await createSet(client, { namespace: ns, count });
  const createdMs = Math.round(performance.now() - t0);
  const op = new OperatorProcess(cp.kubeconfigPath, {
    BENCH_NAMESPACE: ns,
    BENCH_DEBOUNCE_MS: '0',
    BENCH_WRITE_QPS: '1000',
    BENCH_WRITE_BURST: '1000',
  });
  const synced = await op.waitFor('synced');
  const idle = await op.waitFor('idle');
  const releases = await new ReleaseWatch(client, ns).start();
  const cms = await new ConfigMapWatch(client, ns).start();
  const trigger: number[] = [];
  const floor: number[] = [];
  let missed = 0;
  const picks = Array.from({ length: count }, (_, i) => i)
    .sort(() => Math.random() - 0.5)
    .slice(0, samples);
  for (const i of picks) {
    const seenCm = cms.next(`cm-${i}`);
    const seenTrigger = releases.nextTrigger(`${ns}/app-${i}`, 5000);
    const start = performance.now();
    await client.mergePatch(objectPath(ConfigMaps, ns, `cm-${i}`), {
      data: { 'values.yaml': valuesText(i, 1) },
    });
    const [cmAt, trAt] = await Promise.all([seenCm, seenTrigger]);
    floor.push(cmAt - start);
    if (Number.isNaN(trAt)) missed++;
    else trigger.push(trAt - start);
    await sleep(20);
  }
  await cms.stop();
  const result = {
    releases: count,
    createMs: createdMs,
    operatorSyncedMs: synced.ms,
    operatorIdleMs: idle.ms,
    startupWrites: releases.totalWrites - trigger.length,
    triggerLatencyMs: summary(trigger, 1),
    apiWatchFloorMs: summary(floor, 1),
    missed,
  };
  return { result, op, releases, ns };
}

/** Every ConfigMap of the set changed once, all at once: one patch per release expected. */
async function stormOnce(client: KubeClient, releases: ReleaseWatch, ns: string, count: number) {
  releases.reset();
  const t0 = performance.now();
  const done = Promise.all(
    Array.from({ length: count }, (_, i) => releases.nextTrigger(`${ns}/app-${i}`, 120_000)),
  );
  await parallel(
    Array.from({ length: count }, (_, i) => i),
    16,
    async (i) => {
      await client.mergePatch(objectPath(ConfigMaps, ns, `cm-${i}`), {
        data: { 'values.yaml': valuesText(i, 2) },
      });
    },
  );
  const changesMs = Math.round(performance.now() - t0);
  const seen = await done;
  const settleMs = Math.round(Math.max(...seen.filter((x) => !Number.isNaN(x))) - t0);
  await sleep(2000); // extra writes would show up here
  return {
    changes: count,
    changesIssuedMs: changesMs,
    settleMs,
    missed: seen.filter(Number.isNaN).length,
    ...writesPer(releases, count),
  };
}

/** 1,000 changes on 100 ConfigMaps (10 each, back to back) with a 1 s debounce window. */
async function stormDebounced(cp: ControlPlane, client: KubeClient, ns: string) {
  const op = new OperatorProcess(cp.kubeconfigPath, {
    BENCH_NAMESPACE: ns,
    BENCH_DEBOUNCE_MS: '1000',
    BENCH_WRITE_QPS: '1000',
    BENCH_WRITE_BURST: '1000',
  });
  await op.waitFor('idle');
  const releases = await new ReleaseWatch(client, ns).start();
  const affected = 100;
  const t0 = performance.now();
  const done = Promise.all(
    Array.from({ length: affected }, (_, i) => releases.nextTrigger(`${ns}/app-${i}`, 120_000)),
  );
  await parallel(
    Array.from({ length: affected }, (_, i) => i),
    16,
    async (i) => {
      for (let gen = 10; gen < 20; gen++) {
        await client.mergePatch(objectPath(ConfigMaps, ns, `cm-${i}`), {
          data: { 'values.yaml': valuesText(i, gen) },
        });
      }
    },
  );
  const changesMs = Math.round(performance.now() - t0);
  const seen = await done;
  const settleMs = Math.round(Math.max(...seen.filter((x) => !Number.isNaN(x))) - t0);
  await sleep(2500);
  const result = {
    changes: affected * 10,
    configMaps: affected,
    debounceMs: 1000,
    changesIssuedMs: changesMs,
    settleMs,
    ...writesPer(releases, affected),
  };
  await releases.stop();
  await op.stop();
  return result;
}

function writesPer(releases: ReleaseWatch, affected: number) {
  const per = [...releases.writes.values()];
  const triggers = [...releases.triggers.values()];
  return {
    releasesWritten: per.length,
    totalWrites: per.reduce((a, b) => a + b, 0),
    maxWritesPerRelease: Math.max(0, ...per),
    releasesWithOneTrigger: triggers.filter((n) => n === 1).length,
    releasesWithMoreTriggers: triggers.filter((n) => n > 1).length,
    affected,
  };
}

async function scalePhase(cp: ControlPlane, client: KubeClient) {
  const perNs = 1000;
  const namespaces = Math.ceil(SCALE / perNs);
  const t0 = performance.now();
  for (let n = 0; n < namespaces; n++) {
    const count = Math.min(perNs, SCALE - n * perNs);
    const big = n === 0 ? BIG_SECRETS : 0;
    await createSet(client, { namespace: `bench-scale-${n}`, count, secrets: true, bigSecrets: big });
    process.stderr.write(
      `  created ${Math.min(SCALE, (n + 1) * perNs)}/${SCALE} releases (${Math.round((performance.now() - t0) / 1000)} s)\n`,
    );
  }
  const createMs = Math.round(performance.now() - t0);
  const runs = [];
  for (const flags of OPERATOR_FLAG_SETS) runs.push(await scaleRun(cp, client, flags));
  return {
    releases: SCALE,
    configMaps: runs[0]?.configMaps,
    secrets: runs[0]?.secrets,
    bigSecrets: BIG_SECRETS,
    bigSecretBytes: BIG_SECRET_BYTES,
    createMs,
    runs,
  };
}

/** The same start-up with different V8 flags: RSS depends on them more than on the caches. */
const OPERATOR_FLAG_SETS = (
  process.env.BENCH_OPERATOR_NODE_FLAGS ?? '|--max-semi-space-size=2 --max-old-space-size=256'
).split('|');

/** One operator start against the scale set, default configuration (debounce 2 s, 20 writes/s). */
async function scaleRun(cp: ControlPlane, client: KubeClient, flags: string) {
  const baseline = new OperatorProcess(cp.kubeconfigPath, { BENCH_BASELINE: '1' }, flags);
  const bare = await baseline.waitFor('baseline');
  await baseline.stop();
  const releases = await new ReleaseWatch(client).start();
  const op = new OperatorProcess(cp.kubeconfigPath, {}, flags);
  const synced = await op.waitFor('synced');
  const idle = await op.waitFor('idle');
  await sleep(3000); // a debounced second look would write here if anything were wrong
  const stats = await op.stats();
  await op.stop();
  await releases.stop();
  return {
    operatorNodeFlags: flags,
    configMaps: synced.configMaps,
    secrets: synced.secrets,
    rssOfCodeAloneMB: bare.rssMB,
    syncedMs: synced.ms,
    rssAtSyncedMB: synced.rssMB,
    idleMs: idle.ms,
    rssAtIdleMB: idle.rssMB,
    peakRssMB: stats.peakMB,
    rssAfterGcMB: stats.rssMB,
    heapUsedAfterGcMB: stats.heapUsedMB,
    heapTotalAfterGcMB: stats.heapTotalMB,
    externalAfterGcMB: stats.externalMB,
    valueFetches: idle.fetches,
    objectsHeld: idle.valuesHeld,
    writesToReleases: releases.totalWrites,
  };
}

// ---------- main ----------

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

async function main() {
  const loadBefore = loadavg();
  const cp = await startControlPlane();
  const kc = new KubeConfig();
  kc.loadFromFile(cp.kubeconfigPath);
  const client = await KubeClient.create(kc);
  const out: Record<string, unknown> = {};
  try {
    if (process.env.BENCH_PHASES === 'scale') {
      out.scale = await scalePhase(cp, client);
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
    const storm = await stormOnce(client, l1000.releases, l1000.ns, 1000);
    await l1000.releases.stop();
    await l1000.op.stop();
    process.stderr.write(
      `  ${JSON.stringify(storm)}\nstorm: 1,000 changes on 100 ConfigMaps, debounce 1 s\n`,
    );
    const debounced = await stormDebounced(cp, client, l1000.ns);
    process.stderr.write(`  ${JSON.stringify(debounced)}\nscale: ${SCALE} releases\n`);
    const scale = await scalePhase(cp, client);
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
  const dir = join(HERE, 'results');
  mkdirSync(dir, { recursive: true });
  const stem = `triggers-${date.slice(0, 19).replace(/[:T]/g, '-')}`;
  writeFileSync(join(dir, `${stem}.json`), `${JSON.stringify(out, null, 2)}\n`);
  writeFileSync(join(dir, `${stem}.md`), markdown(out));
  process.stdout.write(`${markdown(out)}\nwritten: bench/results/${stem}.{json,md}\n`);
}

await main();
