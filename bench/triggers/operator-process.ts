// The real operator (cmd/helmrelease-autopilot/main.ts) as a child process of the trigger benchmark, run as
// `npm start` runs it: the node flags of package.json's start script, the default flags of the process, and
// only what a local run needs on top (kubeconfig, loopback ports, a serving certificate for the webhook).
// The benchmark reads its JSON log lines, polls /readyz, scrapes /metrics and reads its RSS from /proc.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { freePort } from '../../hack/controlplane.ts';
import { createCA, issueCertificate } from '../../src/tls/certs.ts';
import { sleep } from '../../src/util/sleep.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const MAIN = join(ROOT, 'cmd', 'helmrelease-autopilot', 'main.ts');
/** The operator's own namespace (its Lease); main.ts creates it. */
export const OPERATOR_NAMESPACE = 'helmrelease-autopilot';

/** How `npm start` runs the process (package.json): its environment assignments and its node flags. */
export function shippedLaunch(): { env: Record<string, string>; nodeFlags: string[] } {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: { start: string } };
  const words = pkg.scripts.start.split(/\s+/);
  const node = words.indexOf('node');
  const script = words.findIndex((w) => w.endsWith('.ts'));
  const env = Object.fromEntries(
    words.slice(0, node).map((w) => [w.slice(0, w.indexOf('=')), w.slice(w.indexOf('=') + 1)]),
  );
  return { env, nodeFlags: words.slice(node + 1, script).filter((w) => w.startsWith('--')) };
}

/** A description of the launch for the results: "NODE_COMPILE_CACHE=... node --flags". */
export function launchDescription(): string {
  const { env, nodeFlags } = shippedLaunch();
  return [...Object.entries(env).map(([k, v]) => `${k}=${v}`), 'node', ...nodeFlags].join(' ');
}

/**
 * Runs the process once with --help, as the image build does: with a compile cache in the start script,
 * every module is then read from the cache (stripped of its types and compiled) from the first real start.
 */
export function warmUp(): void {
  const { env, nodeFlags } = shippedLaunch();
  execFileSync(process.execPath, [...nodeFlags, MAIN, '--help'], {
    cwd: ROOT,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
    stdio: 'ignore',
  });
}

/** A serving certificate in a directory laid out as a mounted Secret (--tls-mode=files, the default). */
export function servingCertDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'bench-triggers-certs-'));
  const pair = issueCertificate(createCA('bench-webhook-ca'), {
    commonName: 'localhost',
    hosts: ['127.0.0.1', 'localhost'],
    usage: 'server',
  });
  writeFileSync(join(dir, 'tls.crt'), pair.cert);
  writeFileSync(join(dir, 'tls.key'), pair.key, { mode: 0o600 });
  return dir;
}

export interface LogLine {
  /** performance.now() of the benchmark when the line arrived. */
  at: number;
  msg: string;
  level: number;
  fields: Record<string, unknown>;
}

export interface Memory {
  rssMB: number;
  /** VmHWM: the highest RSS of the process so far. */
  peakRssMB: number;
  /** Of the RSS now: anonymous memory (heaps, code compiled at run time) and file pages (node's binary, mapped). */
  anonRssMB: number;
  fileRssMB: number;
}

const mb = (bytes: number) => Math.round((bytes / 2 ** 20) * 10) / 10;

export class OperatorProcess {
  readonly name: string;
  /** performance.now() at spawn. */
  readonly startedAt: number;
  readonly lines: LogLine[] = [];
  private readonly child: ChildProcess;
  private readonly healthPort: number;
  private readonly metricsPort: number;
  private readonly exited: Promise<void>;
  private readonly waiters: { test: (l: LogLine) => boolean; resolve: (l?: LogLine) => void }[] = [];

  private constructor(name: string, child: ChildProcess, healthPort: number, metricsPort: number) {
    this.name = name;
    this.child = child;
    this.healthPort = healthPort;
    this.metricsPort = metricsPort;
    this.startedAt = performance.now();
    this.exited = new Promise((resolve) =>
      child.on('exit', () => {
        for (const w of this.waiters.splice(0)) w.resolve(undefined);
        resolve();
      }),
    );
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (text) => this.onLine(text));
  }

  /** Starts the process with the default flags plus `args` (e.g. --debounce=0). */
  static async start(o: {
    name: string;
    kubeconfig: string;
    certDir: string;
    args?: string[];
    /** Extra node flags and environment (the module list of the bare-process scenario). */
    nodeArgs?: string[];
    env?: Record<string, string>;
  }): Promise<OperatorProcess> {
    const [health, metrics, webhook] = [await freePort(), await freePort(), await freePort()];
    const launch = shippedLaunch();
    const child = spawn(
      process.execPath,
      [
        ...launch.nodeFlags,
        ...(o.nodeArgs ?? []),
        MAIN,
        `--kubeconfig=${o.kubeconfig}`,
        `--namespace=${OPERATOR_NAMESPACE}`,
        '--bind-address=127.0.0.1',
        `--health-port=${health}`,
        `--metrics-port=${metrics}`,
        `--webhook-port=${webhook}`,
        `--cert-dir=${o.certDir}`,
        ...(o.args ?? []),
      ],
      {
        cwd: ROOT,
        env: { PATH: process.env.PATH, HOME: process.env.HOME, ...launch.env, ...o.env },
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    return new OperatorProcess(o.name, child, health, metrics);
  }

  get pid(): number {
    return this.child.pid as number;
  }

  /** Milliseconds from spawn to `at` (a performance.now() value). */
  since(at: number): number {
    return Math.round(at - this.startedAt);
  }

  private onLine(text: string): void {
    let raw: Record<string, unknown>;
    try {
      raw = JSON.parse(text) as Record<string, unknown>;
    } catch {
      return;
    }
    const line: LogLine = {
      at: performance.now(),
      msg: String(raw.msg ?? ''),
      level: Number(raw.level ?? 0),
      fields: raw,
    };
    this.lines.push(line);
    if (line.level >= 40) process.stderr.write(`  [${this.name}] ${text}\n`);
    for (const w of this.waiters.filter((x) => x.test(line))) {
      this.waiters.splice(this.waiters.indexOf(w), 1);
      w.resolve(line);
    }
  }

  /** The first log line (seen or to come) whose message matches, or undefined after timeoutMs. */
  waitForLog(pattern: RegExp, timeoutMs: number, after = 0): Promise<LogLine | undefined> {
    const test = (l: LogLine) => l.at >= after && pattern.test(l.msg);
    const seen = this.lines.find(test);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(waiter), 1);
        resolve(undefined);
      }, timeoutMs);
      const waiter = {
        test,
        resolve: (l?: LogLine) => {
          clearTimeout(t);
          resolve(l);
        },
      };
      this.waiters.push(waiter);
    });
  }

  /** The leader-election identity the process campaigns with (from its log). */
  async identity(timeoutMs = 60_000): Promise<string> {
    const l = await this.waitForLog(/campaigning for leadership/, timeoutMs);
    return String(l?.fields.identity ?? '');
  }

  /** performance.now() when /readyz first answered 200 (caches synced, webhook serving), or undefined. */
  async waitReady(timeoutMs: number): Promise<number | undefined> {
    const deadline = performance.now() + timeoutMs;
    while (performance.now() < deadline && this.alive()) {
      try {
        const res = await fetch(`http://127.0.0.1:${this.healthPort}/readyz`, {
          signal: AbortSignal.timeout(2000),
        });
        if (res.ok) return performance.now();
      } catch {
        // not listening yet
      }
      await sleep(50);
    }
    return undefined;
  }

  /** The value of one metric line (no labels), or undefined. */
  async metric(name: string): Promise<number | undefined> {
    try {
      const res = await fetch(`http://127.0.0.1:${this.metricsPort}/metrics`, {
        signal: AbortSignal.timeout(5000),
      });
      const line = (await res.text()).split('\n').find((l) => l.startsWith(`${name} `));
      return line === undefined ? undefined : Number(line.split(' ')[1]);
    } catch {
      return undefined;
    }
  }

  /** Heap figures from the process's own metrics (prom-client's default metrics), in MB. */
  async heap(): Promise<{ heapUsedMB?: number; heapTotalMB?: number; externalMB?: number }> {
    const [used, total, external] = await Promise.all([
      this.metric('nodejs_heap_size_used_bytes'),
      this.metric('nodejs_heap_size_total_bytes'),
      this.metric('nodejs_external_memory_bytes'),
    ]);
    return {
      ...(used === undefined ? {} : { heapUsedMB: mb(used) }),
      ...(total === undefined ? {} : { heapTotalMB: mb(total) }),
      ...(external === undefined ? {} : { externalMB: mb(external) }),
    };
  }

  /**
   * When the first pass over every release ended: the controller's "start-up pass done" log line, or else
   * (code that does not log it) the trigger queue depth metric reaching 0 after "trigger controller
   * started". `after`: ignore earlier lines (a new leader's pass after a failover).
   */
  async waitFirstPass(
    timeoutMs: number,
    after = 0,
  ): Promise<{ at: number; signal: 'log' | 'queue-depth' } | undefined> {
    const deadline = performance.now() + timeoutMs;
    const logged = (pattern: RegExp) => this.lines.find((l) => l.at >= after && pattern.test(l.msg));
    while (performance.now() < deadline && this.alive()) {
      const done = logged(/start-up pass done/);
      if (done) return { at: done.at, signal: 'log' };
      if (
        logged(/trigger controller started/) &&
        (await this.metric('helmrelease_autopilot_trigger_queue_depth')) === 0
      ) {
        const at = performance.now();
        await sleep(500); // the log line, when the code has it, is exact; the metric is sampled
        const late = logged(/start-up pass done/);
        return late ? { at: late.at, signal: 'log' } : { at, signal: 'queue-depth' };
      }
      await sleep(100);
    }
    return undefined;
  }

  /**
   * performance.now() when the trigger queue depth metric is 0 (no release waiting), polled every 250 ms;
   * undefined after timeoutMs or when the process has no such metric.
   */
  async waitQueueEmpty(timeoutMs: number): Promise<number | undefined> {
    const deadline = performance.now() + timeoutMs;
    while (performance.now() < deadline && this.alive()) {
      const depth = await this.metric('helmrelease_autopilot_trigger_queue_depth');
      if (depth === undefined) return undefined;
      if (depth === 0) return performance.now();
      await sleep(250);
    }
    return undefined;
  }

  memory(): Memory {
    const status = readFileSync(`/proc/${this.pid}/status`, 'utf8');
    const kB = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
    return {
      rssMB: mb(kB('VmRSS') * 1024),
      peakRssMB: mb(kB('VmHWM') * 1024),
      anonRssMB: mb(kB('RssAnon') * 1024),
      fileRssMB: mb(kB('RssFile') * 1024),
    };
  }

  alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** SIGKILL: the process dies at once, holding its Lease. */
  kill(): Promise<void> {
    this.child.kill('SIGKILL');
    return this.exited;
  }

  /** SIGTERM (drains, releases the Lease); SIGKILL after 30 s. */
  async stop(): Promise<void> {
    if (!this.alive()) return;
    this.child.kill('SIGTERM');
    await Promise.race([this.exited, sleep(30_000).then(() => this.child.kill('SIGKILL'))]);
  }
}
