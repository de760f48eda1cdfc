// The real operator process (node cmd/helmrelease-autopilot/main.ts) for integration tests: reconcilers only, scoped to one
// namespace, with a short Lease so failover tests take seconds.
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { kubeconfigPath } from './cluster.ts';

const MAIN = join(import.meta.dirname, '..', '..', 'cmd', 'helmrelease-autopilot', 'main.ts');

export interface OperatorProcess {
  proc: ChildProcess;
  /** Everything it printed so far (JSON log lines). */
  out: string[];
  exit: Promise<number | null>;
}

/** A log line of the operator (pino JSON): msg, time (epoch ms), and its fields. */
export type LogLine = { msg: string; time: number } & Record<string, unknown>;

/** The log lines printed so far, parsed (lines that are not JSON are left out). */
export function logLines(op: OperatorProcess): LogLine[] {
  return op.out
    .join('')
    .split('\n')
    .flatMap((line) => {
      try {
        const v = JSON.parse(line) as unknown;
        return typeof v === 'object' && v !== null && 'msg' in v ? [v as LogLine] : [];
      } catch {
        return [];
      }
    });
}

/** Waits for the first log line whose msg starts with `msg`. */
export async function waitForLog(op: OperatorProcess, msg: string, timeoutMs = 60_000): Promise<LogLine> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const line = logLines(op).find((l) => l.msg.startsWith(msg));
    if (line) return line;
    if (Date.now() > deadline) throw new Error(`operator did not log "${msg}" within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export function startOperator(namespace: string, extraFlags: string[] = []): OperatorProcess {
  const out: string[] = [];
  const proc = spawn(
    process.execPath,
    [
      MAIN,
      '--webhook=false',
      `--namespace=${namespace}`,
      `--watch-namespace=${namespace}`,
      '--health-port=0',
      '--metrics-port=0',
      '--bind-address=127.0.0.1',
      '--lease-duration=3s',
      '--lease-renew-deadline=2s',
      '--lease-retry-period=250ms',
      ...extraFlags,
    ],
    { env: { PATH: process.env.PATH, KUBECONFIG: kubeconfigPath() }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  proc.stdout?.on('data', (b: Buffer) => out.push(b.toString()));
  proc.stderr?.on('data', (b: Buffer) => out.push(b.toString()));
  const exit = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  return { proc, out, exit };
}
