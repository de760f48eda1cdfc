// tether.sh ends its command when the parent dies (even by SIGKILL) or when it is told to stop.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const tether = join(import.meta.dirname, 'tether.sh');

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function until(cond: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (cond()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return cond();
}

function startTethered(parentPid: number) {
  const pidFile = join(mkdtempSync(join(tmpdir(), 'tether-')), 'pid');
  const t = spawn('bash', [tether, String(parentPid), 'sleep', '300'], {
    env: { ...process.env, TETHER_PIDFILE: pidFile },
    stdio: 'ignore',
  });
  return {
    t,
    childPid: async () => {
      await until(() => {
        try {
          return readFileSync(pidFile, 'utf8').trim() !== '';
        } catch {
          return false;
        }
      }, 5000);
      return Number(readFileSync(pidFile, 'utf8').trim());
    },
  };
}

describe('tether.sh', () => {
  it('kills the command when the parent is SIGKILLed', async () => {
    const parent = spawn('sleep', ['300'], { stdio: 'ignore' });
    const { childPid } = startTethered(parent.pid as number);
    const child = await childPid();
    expect(alive(child)).toBe(true);
    parent.kill('SIGKILL');
    expect(await until(() => !alive(child), 5000)).toBe(true);
  });

  it('kills the command when the tether gets SIGTERM', async () => {
    const { t, childPid } = startTethered(process.pid);
    const child = await childPid();
    expect(alive(child)).toBe(true);
    t.kill('SIGTERM');
    expect(await until(() => !alive(child), 5000)).toBe(true);
  });
});
