// What the trigger benchmark measures with: watches of the releases (every write, every new requestedAt)
// and of the ConfigMaps (the API server's own floor under trigger latency).
import type { KubeClient } from '../../src/kube/client.ts';
import { Informer } from '../../src/kube/informer.ts';
import { ConfigMaps, collectionPath, HelmReleases, objectPath } from '../../src/kube/resources.ts';
import { createLogger } from '../../src/log.ts';
import { Flux } from '../../src/names.ts';
import { isObject, stringMap } from '../../src/util/narrow.ts';

const logger = createLogger('warn', 'bench');

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

/** Watches releases: every write, and every new requestedAt with the time it was seen. */
export class ReleaseWatch {
  readonly writes = new Map<string, number>();
  readonly triggers = new Map<string, number>();
  private readonly waiters = new Map<string, (t: number) => void>();
  private readonly informer: Informer<string>;

  constructor(client: KubeClient, namespace?: string) {
    this.informer = new Informer<string>({
      client,
      resource: HelmReleases,
      ...(namespace ? { namespace } : {}),
      logger,
      pageSize: 1000,
      transform: (raw) =>
        isObject(raw) && isObject(raw.metadata)
          ? (stringMap(raw.metadata.annotations)[Flux.requestedAt] ?? '')
          : undefined,
    });
    this.informer.on({
      update: (old, c) => {
        const key = `${c.namespace}/${c.name}`;
        this.writes.set(key, (this.writes.get(key) ?? 0) + 1);
        if (c.value !== old.value) {
          this.triggers.set(key, (this.triggers.get(key) ?? 0) + 1);
          this.waiters.get(key)?.(performance.now());
        }
      },
    });
  }

  async start(): Promise<this> {
    this.informer.start();
    await this.informer.waitForSync();
    return this;
  }

  reset(): void {
    this.writes.clear();
    this.triggers.clear();
  }

  /** Resolves with the time the next new requestedAt of key is seen (or NaN after timeoutMs). */
  nextTrigger(key: string, timeoutMs: number): Promise<number> {
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.waiters.delete(key);
        resolve(Number.NaN);
      }, timeoutMs);
      this.waiters.set(key, (at) => {
        clearTimeout(t);
        this.waiters.delete(key);
        resolve(at);
      });
    });
  }

  get totalWrites(): number {
    let n = 0;
    for (const v of this.writes.values()) n += v;
    return n;
  }

  stop(): Promise<void> {
    return this.informer.stop();
  }
}

/** ConfigMap changes as the API server delivers them to any watcher: the floor under trigger latency. */
export class ConfigMapWatch {
  private readonly waiters = new Map<string, (t: number) => void>();
  private readonly informer: Informer<true>;
  constructor(client: KubeClient, namespace: string) {
    this.informer = new Informer<true>({
      client,
      resource: ConfigMaps,
      namespace,
      metadataOnly: true,
      logger,
      transform: () => true,
    });
    this.informer.on({ update: (_o, c) => this.waiters.get(c.name)?.(performance.now()) });
  }
  async start(): Promise<this> {
    this.informer.start();
    await this.informer.waitForSync();
    return this;
  }
  next(name: string): Promise<number> {
    return new Promise((resolve) => this.waiters.set(name, resolve));
  }
  stop(): Promise<void> {
    return this.informer.stop();
  }
}
