// One cache over several namespaces: an Informer per namespace behind the Informer's read API. A namespaced
// install has RBAC in its namespaces only, so a watch list is served by per-namespace LIST/WATCH, never by a
// cluster-wide watch (see src/scope.ts). One namespace, or all, is a single Informer.
import type { Cached, Informer, InformerHandler, InformerStats } from './informer.ts';

/** What the reconcilers, the webhook and the values store use of a cache. */
export type SharedInformer<T> = Pick<
  Informer<T>,
  'on' | 'get' | 'list' | 'size' | 'stats' | 'hasSynced' | 'waitForSync' | 'start' | 'stop'
>;

/** A single informer for no namespace (all) or one; a group of per-namespace informers for several. */
export function informerFor<T>(
  namespaces: readonly string[],
  make: (namespace?: string) => Informer<T>,
): SharedInformer<T> {
  if (namespaces.length <= 1) return make(namespaces[0]);
  return new NamespacedInformers(new Map(namespaces.map((ns) => [ns, make(ns)])));
}

export class NamespacedInformers<T> implements SharedInformer<T> {
  private readonly byNamespace: ReadonlyMap<string, Informer<T>>;
  private readonly all: readonly Informer<T>[];

  constructor(byNamespace: ReadonlyMap<string, Informer<T>>) {
    this.byNamespace = byNamespace;
    this.all = [...byNamespace.values()];
  }

  on(handler: InformerHandler<T>): () => void {
    const offs = this.all.map((i) => i.on(handler));
    return () => {
      for (const off of offs) off();
    };
  }

  get(namespace: string, name: string): Cached<T> | undefined {
    return this.byNamespace.get(namespace)?.get(namespace, name);
  }

  *list(): IterableIterator<Cached<T>> {
    for (const i of this.all) yield* i.list();
  }

  get size(): number {
    return this.all.reduce((n, i) => n + i.size, 0);
  }

  get stats(): InformerStats {
    const sum: InformerStats = { lists: 0, watches: 0, gone: 0, errors: 0, staleRestarts: 0 };
    for (const i of this.all) {
      for (const k of Object.keys(sum) as (keyof InformerStats)[]) sum[k] += i.stats[k];
    }
    return sum;
  }

  hasSynced(): boolean {
    return this.all.every((i) => i.hasSynced());
  }

  async waitForSync(): Promise<void> {
    await Promise.all(this.all.map((i) => i.waitForSync()));
  }

  start(): void {
    for (const i of this.all) i.start();
  }

  async stop(): Promise<void> {
    await Promise.all(this.all.map((i) => i.stop()));
  }
}
