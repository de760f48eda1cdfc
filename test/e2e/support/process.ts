// Child processes of the e2e tier (helm-controller, the operator), started through hack/lib/tether.sh
// like the control plane's, so a killed test runner never leaves one behind.
import { type ChildProcess, spawn } from 'node:child_process';
import { openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { HACK_DIR } from '../../../hack/controlplane.ts';

export interface Tethered {
  name: string;
  log: string;
  /** PID of the process itself (not its tether), once started. */
  pid(): number | undefined;
  exited(): boolean;
  /** The last lines of its log, for failure messages. */
  tail(lines?: number): string;
  stop(): Promise<void>;
}

export function startTethered(
  name: string,
  args: string[],
  o: { dir: string; env?: NodeJS.ProcessEnv; cwd?: string },
): Tethered {
  const log = join(o.dir, `${name}.log`);
  const pidFile = join(o.dir, `${name}.pid`);
  writeFileSync(pidFile, '');
  const fd = openSync(log, 'a');
  const tether: ChildProcess = spawn(
    'bash',
    [join(HACK_DIR, 'lib', 'tether.sh'), String(process.pid), ...args],
    {
      stdio: ['ignore', fd, fd],
      env: { ...(o.env ?? process.env), TETHER_PIDFILE: pidFile },
      ...(o.cwd ? { cwd: o.cwd } : {}),
    },
  );
  const exited = () => tether.exitCode !== null || tether.signalCode !== null;
  const pid = () => {
    const n = Number(readFileSync(pidFile, 'utf8').trim());
    return n > 0 ? n : undefined;
  };
  return {
    name,
    log,
    pid,
    exited,
    tail(lines = 40) {
      try {
        return readFileSync(log, 'utf8').split('\n').slice(-lines).join('\n');
      } catch {
        return '';
      }
    },
    async stop() {
      if (exited()) return;
      const gone = new Promise<void>((resolve) => tether.once('exit', () => resolve()));
      tether.kill('SIGTERM');
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<'late'>((resolve) => {
        timer = setTimeout(() => resolve('late'), 20_000);
      });
      const outcome = await Promise.race([gone, late]);
      clearTimeout(timer);
      if (outcome === 'late') {
        tether.kill('SIGKILL');
        const p = pid();
        if (p) {
          try {
            process.kill(p, 'SIGKILL');
          } catch {
            // already gone
          }
        }
      }
    },
  };
}
