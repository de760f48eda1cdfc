// The soak's fault injector: one fault at a time, at random intervals, every kind in turn (a shuffled round,
// then another) so that even a short run sees each kind. Each fault ends with the cluster whole again
// (processes restarted, the webhook back); frozen connections stay frozen until the replica notices.
import { sleep } from '../../src/util/sleep.ts';
import type { SoakCluster } from './cluster.ts';

export const FAULTS = [
  'leader-sigkill',
  'follower-sigterm',
  'apiserver-restart',
  'compaction-410',
  'frozen-connection',
  'etcd-restart',
  'webhook-outage',
] as const;
export type FaultKind = (typeof FAULTS)[number];

/** The informer's staleAfterMs (src/kube/informer.ts) and a margin for the relist and the trigger. */
export const FROZEN_NOTICED_MS = 120_000 + 15_000;

export interface FaultRecord {
  kind: FaultKind;
  at: number;
  ms: number;
  detail: string;
}

export class FaultInjector {
  readonly injected: FaultRecord[] = [];
  private round: FaultKind[] = [];

  private readonly cluster: SoakCluster;
  private readonly random: () => number;

  constructor(cluster: SoakCluster, random: () => number) {
    this.cluster = cluster;
    this.random = random;
  }

  /**
   * Injects faults until `until`, waiting a random interval of [minMs, maxMs] before each. A frozen
   * connection is noticed only when the watch has been silent for the informer's staleAfterMs (120 s; the
   * watch cache is off, so no bookmarks keep a quiet watch talking): it is injected first, and later only
   * while that much time is left before `settled`, so that what it delays can still be seen by the end.
   */
  async run(until: number, settled: number, minMs: number, maxMs: number): Promise<void> {
    let first = true;
    for (;;) {
      const wait = minMs + this.random() * (maxMs - minMs);
      if (Date.now() + wait >= until) return;
      await sleep(wait);
      const freezeOk = Date.now() + FROZEN_NOTICED_MS < settled;
      const kind = first && freezeOk ? 'frozen-connection' : this.next(freezeOk);
      first = false;
      await this.inject(kind);
    }
  }

  private next(freezeOk: boolean): FaultKind {
    const kind = this.draw();
    if (kind !== 'frozen-connection' || freezeOk) return kind;
    return this.round.length > 0 ? this.draw() : 'apiserver-restart';
  }

  private draw(): FaultKind {
    if (this.round.length === 0) {
      this.round = [...FAULTS];
      for (let i = this.round.length - 1; i > 0; i--) {
        const j = Math.floor(this.random() * (i + 1));
        [this.round[i], this.round[j]] = [this.round[j] as FaultKind, this.round[i] as FaultKind];
      }
    }
    return this.round.shift() as FaultKind;
  }

  async inject(kind: FaultKind): Promise<void> {
    const at = Date.now();
    process.stderr.write(`  fault: ${kind}\n`);
    const detail = await this.apply(kind);
    this.injected.push({ kind, at, ms: Date.now() - at, detail });
  }

  private async apply(kind: FaultKind): Promise<string> {
    const { cluster } = this;
    switch (kind) {
      case 'leader-sigkill': {
        const leader = await cluster.leader();
        if (!leader) return 'no leader at the time';
        await leader.signal('SIGKILL');
        await sleep(1000 + this.random() * 2000);
        await leader.start();
        return `replica ${leader.name}`;
      }
      case 'follower-sigterm': {
        const leader = await cluster.leader();
        const follower = cluster.replicas.find((r) => r !== leader && r.alive());
        if (!follower) return 'no follower at the time';
        await follower.signal('SIGTERM');
        await sleep(500 + this.random() * 1500);
        await follower.start();
        return `replica ${follower.name}`;
      }
      case 'apiserver-restart':
        await cluster.cp.stopApiserver();
        await cluster.cp.startApiserver();
        return '';
      case 'compaction-410':
        // Compact at the current revision, then restart the API server: every watch resumes from a
        // resourceVersion older than the compaction and is answered 410 (the watch cache is off).
        await cluster.cp.compactEtcd();
        await cluster.cp.stopApiserver();
        await cluster.cp.startApiserver();
        return '';
      case 'frozen-connection': {
        const r = cluster.replicas[Math.floor(this.random() * cluster.replicas.length)];
        if (!r?.alive()) return 'replica down at the time';
        return `replica ${r.name}: ${r.freeze()} connections frozen`;
      }
      case 'etcd-restart':
        await cluster.cp.stopEtcd();
        await sleep(1000);
        await cluster.cp.startEtcd();
        await this.apiserverAnswers();
        return '';
      case 'webhook-outage': {
        const ms = 5000 + this.random() * 10_000;
        cluster.webhook.outage();
        await sleep(ms);
        cluster.webhook.down = false;
        return `${Math.round(ms / 1000)} s`;
      }
    }
  }

  /** Waits until the API server answers a read again (after its storage came back). */
  private async apiserverAnswers(): Promise<void> {
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      try {
        await this.cluster.client.request({
          path: '/api/v1/namespaces',
          query: { limit: 1 },
          timeoutMs: 2000,
        });
        return;
      } catch {
        await sleep(200);
      }
    }
  }

  counts(): Record<string, number> {
    const out: Record<string, number> = Object.fromEntries(FAULTS.map((k) => [k, 0]));
    for (const f of this.injected) out[f.kind] = (out[f.kind] ?? 0) + 1;
    return out;
  }
}
