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
