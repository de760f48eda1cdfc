// The trigger operator in a child process (operator-child.ts), so its RSS and start-up are its own: the
// benchmark reads its JSON report lines and asks it for stats.
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { sleep } from '../../src/util/sleep.ts';

export interface OperatorEvent {
  event: string;
  ms: number;
  rssMB: number;
  [k: string]: unknown;
}

export class OperatorProcess {
  private readonly child: ChildProcess;
  private readonly seen: OperatorEvent[] = [];
  private readonly waiters: { event: string; resolve: (e: OperatorEvent) => void }[] = [];
  private readonly exited: Promise<void>;

  constructor(kubeconfig: string, env: Record<string, string>, nodeFlags = '') {
    const flags = nodeFlags.split(' ').filter(Boolean);
    const child = join(import.meta.dirname, 'operator-child.ts');
    this.child = spawn(process.execPath, ['--expose-gc', ...flags, child], {
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
