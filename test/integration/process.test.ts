// The real process: flags, kubeconfig, health endpoints, and a clean exit on SIGTERM.
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { freePort } from '../../hack/controlplane.ts';
import { adminClient, createNamespace, eventually, kubeconfigPath } from '../support/cluster.ts';

const main = join(import.meta.dirname, '..', '..', 'cmd', 'helmrelease-autopilot', 'main.ts');

function start(
  args: string[],
  env: NodeJS.ProcessEnv = {},
): { proc: ChildProcess; output: () => string; exit: Promise<number | null> } {
  let out = '';
  const proc = spawn(process.execPath, [main, ...args], {
    env: { PATH: process.env.PATH, HOME: '/nonexistent', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  proc.stdout?.on('data', (b: Buffer) => {
    out += b.toString();
  });
  proc.stderr?.on('data', (b: Buffer) => {
    out += b.toString();
  });
  const exit = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  return { proc, output: () => out, exit };
}

describe('the operator process', () => {
  it('exits 2 with a message naming a bad flag, and 0 for --help', async () => {
    const bad = start(['--write-qps=lots']);
    expect(await bad.exit).toBe(2);
    expect(bad.output()).toMatch(/--write-qps: "lots" must be a number/);
    const help = start(['--help']);
    expect(await help.exit).toBe(0);
    expect(help.output()).toContain('--debounce');
  });

  it('exits 1 with a clear message when there is no kubeconfig', async () => {
    const p = start([]);
    expect(await p.exit).toBe(1);
    expect(p.output()).toMatch(/no Kubernetes configuration/);
  });

  it('connects through $KUBECONFIG, serves /healthz and /readyz, and exits 0 on SIGTERM', async () => {
    const admin = await adminClient();
    const ns = await createNamespace(admin, 'process');
    admin.close();
    const [health, metrics] = [await freePort(), await freePort()];
    const p = start(
      [
        '--webhook=false',
        `--namespace=${ns}`,
        `--watch-namespace=${ns}`,
        `--health-port=${health}`,
        `--metrics-port=${metrics}`,
        '--bind-address=127.0.0.1',
      ],
      { KUBECONFIG: kubeconfigPath() },
    );
    const get = async (port: number, path: string) => {
      const res = await fetch(`http://127.0.0.1:${port}${path}`);
      return { status: res.status, body: await res.text() };
    };
    await eventually(async () => (await get(health, '/healthz')).status === 200, {
      timeoutMs: 20_000,
      what: '/healthz',
    });
    await eventually(async () => (await get(health, '/readyz')).status === 200, {
      timeoutMs: 20_000,
      what: '/readyz',
    });
    expect((await get(metrics, '/metrics')).body).toContain('process_resident_memory_bytes');
    expect(p.output()).toContain('"msg":"connected"');
    p.proc.kill('SIGTERM');
    expect(await p.exit).toBe(0);
    expect(p.output()).toContain('"msg":"stopped"');
  });
});
