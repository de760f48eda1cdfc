// Leader election on the real API server: one leader at a time, a fast hand-over on release, a takeover
// within the lease duration when the leader dies, and a leader that loses its Lease stops at once.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KubeClient } from '../../src/kube/client.ts';
import { LeaderElector } from '../../src/kube/leader.ts';
import { Leases, objectPath } from '../../src/kube/resources.ts';
import { adminClient, createNamespace, eventually, loadKubeConfig } from '../support/cluster.ts';
import { testLogger } from '../support/log.ts';
import { startOperator } from '../support/operator.ts';
import { FreezableProxy } from '../support/tcp-proxy.ts';

const timing = { leaseDurationMs: 3000, renewDeadlineMs: 2000, retryPeriodMs: 250 };

function elector(client: KubeClient, namespace: string, identity: string, log: string[]) {
  return new LeaderElector({
    client,
    namespace,
    name: 'autopilot',
    identity,
    ...timing,
    log: testLogger(),
    onStartedLeading: () => void log.push(`${identity} started`),
    onStoppedLeading: () => void log.push(`${identity} stopped`),
  });
}

async function holder(client: KubeClient, ns: string, name = 'autopilot'): Promise<string> {
  const lease = (await client.get(objectPath(Leases, ns, name))) as { spec?: { holderIdentity?: string } };
  return lease.spec?.holderIdentity ?? '';
}

describe('leader election', () => {
  let client: KubeClient;
  beforeAll(async () => {
    client = await adminClient();
  });
  afterAll(() => client.close());

  it('elects exactly one leader and hands over at once when it releases the Lease', async () => {
    const ns = await createNamespace(client, 'leader');
    const log: string[] = [];
    const a = elector(client, ns, 'a', log);
    const b = elector(client, ns, 'b', log);
    a.start();
    await eventually(() => a.isLeader(), { what: 'a leads' });
    b.start();
    await new Promise((r) => setTimeout(r, 1000));
    expect([a.isLeader(), b.isLeader()]).toEqual([true, false]);
    const released = Date.now();
    await a.stop();
    await eventually(() => b.isLeader(), { what: 'b leads', timeoutMs: timing.leaseDurationMs });
    // Released, not expired: b did not wait for the lease duration.
    expect(Date.now() - released).toBeLessThan(timing.leaseDurationMs);
    expect(await holder(client, ns)).toBe('b');
    await b.stop();
    expect(log).toEqual(['a started', 'a stopped', 'b started', 'b stopped']);
  });

  it('a leader whose Lease is taken over stops at once', async () => {
    const ns = await createNamespace(client, 'leader');
    const log: string[] = [];
    const a = elector(client, ns, 'a', log);
    a.start();
    await eventually(() => a.isLeader(), { what: 'a leads' });
    await client.mergePatch(objectPath(Leases, ns, 'autopilot'), { spec: { holderIdentity: 'usurper' } });
    await eventually(() => !a.isLeader(), {
      what: 'a steps down',
      timeoutMs: 2 * timing.retryPeriodMs + 1000,
    });
    expect(log).toEqual(['a started', 'a stopped']);
    await a.stop();
  });

  it('a leader whose API server stops answering steps down by its renew deadline', async () => {
    const ns = await createNamespace(client, 'leader');
    const proxy = new FreezableProxy(Number(new URL(client.server.href).port));
    const port = await proxy.listen();
    const kc = loadKubeConfig();
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new Error('no cluster');
    kc.clusters = [{ ...cluster, server: `https://127.0.0.1:${port}` }];
    const viaProxy = await KubeClient.create(kc);
    const log: string[] = [];
    const a = elector(viaProxy, ns, 'a', log);
    a.start();
    await eventually(() => a.isLeader(), { what: 'a leads' });
    proxy.blackhole = true;
    proxy.freezeOpenConnections();
    const silent = Date.now();
    await eventually(() => !a.isLeader(), { what: 'a steps down', timeoutMs: 10_000, intervalMs: 20 });
    // The renew deadline after the last renewal (before the silence), plus at most one retry period.
    expect(Date.now() - silent).toBeLessThan(timing.renewDeadlineMs + timing.retryPeriodMs + 500);
    expect(log).toEqual(['a started', 'a stopped']);
    await a.stop();
    viaProxy.close();
    await proxy.close();
  });

  it.each([
    ['SIGKILL', 3000 + 2000],
    ['SIGTERM', 2000],
  ] as const)(
    'when the leader process gets %s, the other takes over within %d ms',
    async (signal, within) => {
      const ns = await createNamespace(client, 'leader');
      const procs = [startOperator(ns), startOperator(ns)];
      try {
        const identityOf = (i: number) => /"identity":"([^"]+)"/.exec(procs[i]?.out.join('') ?? '')?.[1];
        await eventually(() => identityOf(0) && identityOf(1), {
          what: 'both campaigning',
          timeoutMs: 20_000,
        });
        const first = await eventually(
          async () => (await holder(client, ns, 'helmrelease-autopilot')) || undefined,
          {
            what: 'a leader',
            timeoutMs: 20_000,
          },
        );
        const leader = identityOf(0) === first ? 0 : 1;
        const follower = 1 - leader;
        procs[leader]?.proc.kill(signal);
        const killed = Date.now();
        await eventually(
          async () => (await holder(client, ns, 'helmrelease-autopilot')) === identityOf(follower),
          {
            what: 'the follower takes over',
            timeoutMs: 10_000,
          },
        );
        // SIGKILL: the follower waits for expiry (3 s lease), no longer; SIGTERM: the leader released the Lease.
        expect(Date.now() - killed).toBeLessThan(within);
        // Its log line travels through a pipe and may arrive after the Lease write the test saw.
        await eventually(() => procs[follower]?.out.join('').includes('became leader') || undefined, {
          what: 'the new leader says so',
          timeoutMs: 5_000,
        });
        if (signal === 'SIGTERM') {
          expect(await procs[leader]?.exit).toBe(0);
          expect(procs[leader]?.out.join('')).toContain('released the lease');
        }
      } finally {
        for (const p of procs) p.proc.kill('SIGKILL');
      }
    },
  );
});
