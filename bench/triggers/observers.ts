// What the trigger benchmark measures with, through watches of its own: every write to a release and every
// new requestedAt (ReleaseWatch), ConfigMap changes as any watcher sees them (the API server's floor under
// trigger latency), and the leader Lease's holder.
import type { KubeClient } from '../../src/kube/client.ts';
import { Informer } from '../../src/kube/informer.ts';
import { ConfigMaps, collectionPath, HelmReleases, Leases, objectPath } from '../../src/kube/resources.ts';
import { createLogger } from '../../src/log.ts';
import { Flux } from '../../src/names.ts';
import { isObject, str, stringMap } from '../../src/util/narrow.ts';

const logger = createLogger('warn', 'bench');

/** One write to a release seen by the watch: when (performance.now()), and whether requestedAt changed. */
export interface ReleaseWrite {
  key: string;
  at: number;
  trigger: boolean;
}

/** Resolves with the time of the next matching event, or NaN after timeoutMs (or when cancelled). */
class Waiters {
  private readonly waiting = new Map<string, (t: number) => void>();
  next(key: string, timeoutMs: number): Promise<number> {
    return new Promise((resolve) => {
      const t = setTimeout(() => this.settle(key, Number.NaN), timeoutMs);
      this.waiting.set(key, (at) => {
        clearTimeout(t);
        resolve(at);
      });
    });
  }
  settle(key: string, at: number): void {
    const w = this.waiting.get(key);
    if (!w) return;
    this.waiting.delete(key);
    w(at);
  }
  cancelAll(): void {
    for (const key of [...this.waiting.keys()]) this.settle(key, Number.NaN);
  }
}

/**
 * Plays helm-controller's bookkeeping between scenarios: every request not handled yet in `namespace` is
 * recorded as handled (status.lastHandledReconcileAt = requestedAt). The operator holds further triggers of a
 * release until Flux has handled its last request (src/flux/activity.ts), so a scenario that changes the
 * data of releases an earlier one triggered needs this first. Waits a second for the watches to settle.
 */
export async function fluxHandlesPending(client: KubeClient, namespace: string): Promise<number> {
  const list = await client.request({ path: collectionPath(HelmReleases, namespace), timeoutMs: 60_000 });
  let handled = 0;
  for (const item of isObject(list) && Array.isArray(list.items) ? list.items : []) {
    if (!isObject(item) || !isObject(item.metadata)) continue;
    const token = stringMap(item.metadata.annotations)[Flux.requestedAt];
    const status = isObject(item.status) ? item.status : {};
    if (!token || status.lastHandledReconcileAt === token) continue;
    await client.mergePatch(`${objectPath(HelmReleases, namespace, String(item.metadata.name))}/status`, {
      status: { lastHandledReconcileAt: token },
    });
    handled++;
  }
  await new Promise((r) => setTimeout(r, 1000));
  return handled;
}

/** Watches every release: each write, and each new requestedAt with the time it was seen. */
export class ReleaseWatch {
  readonly writes: ReleaseWrite[] = [];
  private readonly waiters = new Waiters();
  private readonly informer: Informer<string>;

  constructor(client: KubeClient) {
    this.informer = new Informer<string>({
      client,
      resource: HelmReleases,
      logger,
      pageSize: 1000,
      transform: (raw) =>
        isObject(raw) && isObject(raw.metadata)
          ? (stringMap(raw.metadata.annotations)[Flux.requestedAt] ?? '')
          : undefined,
    });
    this.informer.on({
      update: (old, c) => {
        const at = performance.now();
        const key = `${c.namespace}/${c.name}`;
        const trigger = c.value !== old.value;
        this.writes.push({ key, at, trigger });
        if (trigger) this.waiters.settle(key, at);
      },
    });
  }

  async start(): Promise<this> {
    this.informer.start();
    await this.informer.waitForSync();
    return this;
  }

  /** Resolves with the time the next new requestedAt of key is seen (NaN after timeoutMs). */
  nextTrigger(key: string, timeoutMs: number): Promise<number> {
    return this.waiters.next(key, timeoutMs);
  }

  /** Writes seen in [from, to), optionally leaving out some releases. */
  writesBetween(from: number, to: number, except: ReadonlySet<string> = new Set()): ReleaseWrite[] {
    return this.writes.filter((w) => w.at >= from && w.at < to && !except.has(w.key));
  }

  stop(): Promise<void> {
    this.waiters.cancelAll();
    return this.informer.stop();
  }
}

/** ConfigMap changes as the API server delivers them to any watcher: the floor under trigger latency. */
export class ConfigMapWatch {
  private readonly waiters = new Waiters();
  private readonly informer: Informer<true>;
  constructor(client: KubeClient) {
    this.informer = new Informer<true>({
      client,
      resource: ConfigMaps,
      metadataOnly: true,
      logger,
      pageSize: 1000,
      transform: () => true,
    });
    this.informer.on({
      update: (_o, c) => this.waiters.settle(`${c.namespace}/${c.name}`, performance.now()),
    });
  }
  async start(): Promise<this> {
    this.informer.start();
    await this.informer.waitForSync();
    return this;
  }
  /** The time the next change of namespace/name is seen (NaN after timeoutMs). */
  next(key: string, timeoutMs: number): Promise<number> {
    return this.waiters.next(key, timeoutMs);
  }
  stop(): Promise<void> {
    this.waiters.cancelAll();
    return this.informer.stop();
  }
}

/** The holder of one Lease, and when each holder was first seen. */
export class LeaseWatch {
  private readonly waiters = new Waiters();
  private readonly informer: Informer<string>;
  readonly holders: { holder: string; at: number }[] = [];
  /** Waiters for a holder other than the value. */
  private readonly others = new Map<string, string>();
  constructor(client: KubeClient, namespace: string, name: string) {
    this.informer = new Informer<string>({
      client,
      resource: Leases,
      namespace,
      fieldSelector: `metadata.name=${name}`,
      logger,
      transform: (raw) => (isObject(raw) && isObject(raw.spec) ? (str(raw.spec.holderIdentity) ?? '') : ''),
    });
    const seen = (holder: string) => {
      const at = performance.now();
      if (this.holders.at(-1)?.holder === holder) return;
      this.holders.push({ holder, at });
      if (holder === '') return;
      for (const [key, previous] of this.others) {
        if (previous === holder) continue;
        this.others.delete(key);
        this.waiters.settle(key, at);
      }
    };
    this.informer.on({ add: (c) => seen(c.value), update: (_o, c) => seen(c.value) });
  }
  async start(): Promise<this> {
    this.informer.start();
    await this.informer.waitForSync();
    return this;
  }
  get holder(): string | undefined {
    return this.holders.at(-1)?.holder;
  }
  /** The time a holder other than `previous` (and not empty) is first seen; NaN after timeoutMs. */
  nextHolder(previous: string, timeoutMs: number): Promise<number> {
    const key = `not:${previous}`;
    const t = this.waiters.next(key, timeoutMs);
    this.others.set(key, previous);
    return t;
  }

  stop(): Promise<void> {
    this.waiters.cancelAll();
    return this.informer.stop();
  }
}
