// Every metric the shipped Grafana dashboard and alerts use exists on a running operator's /metrics: the real
// process (the image's entry point, read from the Dockerfile), both roles on, leader of its Lease, scraped over HTTP.
// The required names are read from manifests/components/{dashboard,prometheusrule}; a missing one is named
// with the panels and rules that use it.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, HACK_DIR } from '../../hack/controlplane.ts';
import { adminClient, createNamespace, eventually, kubeconfigPath } from '../support/cluster.ts';
import { exposedFamilies, isExposed, shippedMetricUses } from '../support/metrics-usage.ts';

const ROOT = resolve(HACK_DIR, '..');

/** The image's ENTRYPOINT (exec form), with this Node for `node` and paths relative to WORKDIR (the repository). */
function entryPoint(): string[] {
  const m = /^ENTRYPOINT\s+(\[.*\])\s*$/m.exec(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'));
  if (!m) throw new Error('Dockerfile has no exec-form ENTRYPOINT');
  const [cmd, ...args] = JSON.parse(m[1] as string) as string[];
  if (cmd !== 'node') throw new Error(`ENTRYPOINT starts with ${cmd}, not node`);
  return [process.execPath, ...args.map((a) => (a.startsWith('-') ? a : join(ROOT, a)))];
}

describe('the metrics the dashboard and alerts use', () => {
  let proc: ChildProcess;
  let exit: Promise<number | null>;
  let output = '';
  let scraped = '';
  let dir: string;

  beforeAll(async () => {
    const admin = await adminClient();
    const ns = await createNamespace(admin, 'metrics');
    admin.close();
    dir = mkdtempSync(join(tmpdir(), 'autopilot-metrics-'));
    const [health, metrics, webhook] = [await freePort(), await freePort(), await freePort()];
    const [bin, ...args] = entryPoint();
    proc = spawn(
      bin as string,
      [
        ...args,
        `--namespace=${ns}`,
        `--watch-namespace=${ns}`,
        `--health-port=${health}`,
        `--metrics-port=${metrics}`,
        `--webhook-port=${webhook}`,
        '--bind-address=127.0.0.1',
        '--tls-mode=self-signed',
        `--cert-dir=${join(dir, 'certs')}`,
        '--lease-duration=3s',
        '--lease-renew-deadline=2s',
        '--lease-retry-period=250ms',
      ],
      {
        env: { PATH: process.env.PATH, HOME: dir, KUBECONFIG: kubeconfigPath() },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    proc.stdout?.on('data', (b: Buffer) => {
      output += b.toString();
    });
    proc.stderr?.on('data', (b: Buffer) => {
      output += b.toString();
    });
    exit = new Promise((r) => proc.on('exit', (code) => r(code)));
    const get = async (port: number, path: string) => {
      const res = await fetch(`http://127.0.0.1:${port}${path}`);
      return { status: res.status, body: await res.text() };
    };
    await eventually(async () => (await get(health, '/readyz')).status === 200, {
      timeoutMs: 30_000,
      what: `/readyz (output: ${output.slice(-2000)})`,
    });
    // The reconcilers register their metrics when this replica starts leading.
    scraped = await eventually(
      async () => {
        const { body } = await get(metrics, '/metrics');
        return body.includes('# TYPE helmrelease_autopilot_trigger_queue_depth ') && body;
      },
      { timeoutMs: 30_000, what: 'the reconcilers’ metrics (leadership)' },
    );
  });

  afterAll(async () => {
    proc?.kill('SIGTERM');
    await exit;
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('reads a non-trivial set of names from the dashboard and the alerts', () => {
    const names = [...shippedMetricUses().keys()];
    expect(names.length).toBeGreaterThanOrEqual(12);
    expect(names.every((n) => n.startsWith('helmrelease_autopilot_'))).toBe(true);
  });

  it('every one of them is exposed by the running operator (histogram series map to their family)', () => {
    const families = exposedFamilies(scraped);
    const missing = [...shippedMetricUses()]
      .filter(([name]) => !isExposed(name, families))
      .map(([name, where]) => `${name} (used by ${[...new Set(where)].join(', ')})`);
    expect(missing, `missing from /metrics:\n  ${missing.join('\n  ')}`).toEqual([]);
  });
});
