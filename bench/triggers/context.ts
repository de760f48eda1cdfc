// What every scenario of the trigger benchmark shares: the control plane, an admin client, the release
// watch that counts every write, the unused releases, and how long to wait before giving up.
import type { ControlPlane } from '../../hack/controlplane.ts';
import type { KubeClient } from '../../src/kube/client.ts';
import type { ReleasePool } from './objects.ts';
import type { ReleaseWatch } from './observers.ts';
import { OperatorProcess } from './operator-process.ts';

export interface BenchContext {
  cp: ControlPlane;
  client: KubeClient;
  certDir: string;
  releases: ReleaseWatch;
  pool: ReleasePool;
  /** Longest wait for anything that scales with the number of releases (a first pass, a trigger after it). */
  slowMs: number;
  /** Every operator process started, so a failed run can end them all. */
  started: OperatorProcess[];
}

/** The default debounce (--debounce 2s) and some margin: a wrong second write would show up within it. */
export const SETTLE_MS = 5000;

/** Starts the real operator (default flags plus args) and remembers it. */
export async function startOperator(
  ctx: BenchContext,
  name: string,
  args: string[] = [],
  extra: { nodeArgs?: string[]; env?: Record<string, string> } = {},
) {
  const op = await OperatorProcess.start({
    name,
    kubeconfig: ctx.cp.kubeconfigPath,
    certDir: ctx.certDir,
    args,
    ...extra,
  });
  ctx.started.push(op);
  return op;
}

/** Milliseconds between two performance.now() values, or null when the later one never came. */
export const span = (from: number, to: number | undefined) =>
  to === undefined || Number.isNaN(to) ? null : Math.round(to - from);
