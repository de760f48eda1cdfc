// A TLS server under test in a child process of its own (server-child.ts), and one request to it.
import { type ChildProcess, spawn } from 'node:child_process';
import https from 'node:https';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { sleep } from '../../src/util/sleep.ts';

export interface ServerStats {
  loopDelayP99Ms: number;
  loopDelayMaxMs: number;
}

export class ServerProcess {
  readonly child: ChildProcess;
  readonly port: Promise<number>;
  private statsWaiter: ((s: ServerStats) => void) | undefined;
  /** mode: webhook, cluster or bare (see server-child.ts). */
  constructor(mode: string, env: Record<string, string>) {
    this.child = spawn(process.execPath, [join(import.meta.dirname, 'server-child.ts')], {
      env: { ...process.env, BENCH_SERVER: mode, ...env },
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    this.port = new Promise((resolve, reject) => {
      this.child.on('exit', (code) => reject(new Error(`${mode} server exited (${code})`)));
      createInterface({ input: this.child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
        try {
          const msg = JSON.parse(line) as { port?: number; stats?: ServerStats };
          if (msg.port !== undefined) resolve(msg.port);
          if (msg.stats) this.statsWaiter?.(msg.stats);
        } catch {
          // not one of our lines
        }
      });
    });
  }
  /** The server's event-loop delay since the previous call. */
  stats(): Promise<ServerStats> {
    return new Promise((resolve) => {
      this.statsWaiter = resolve;
      this.child.stdin?.write('stats\n');
    });
  }
  async stop() {
    const exited = new Promise((r) => this.child.once('exit', r));
    this.child.stdin?.end();
    await Promise.race([exited, sleep(5_000).then(() => this.child.kill('SIGKILL'))]);
  }
}

/** One request; `fresh` counts requests that needed a new TLS connection (a handshake). */
export function post(agent: https.Agent, port: number, body: Buffer, fresh?: { n: number }): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        port,
        path: '/mutate',
        method: 'POST',
        agent,
        headers: { 'content-type': 'application/json', 'content-length': body.length },
      },
      (res) => {
        if (fresh && !req.reusedSocket) fresh.n++;
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}
