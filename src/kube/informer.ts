// List-and-watch cache of one resource, built to survive what client-node's informer does not:
// any error restarts it with backoff; a 410 (expired resourceVersion) relists at once; a watch that
// goes silent longer than staleAfterMs (half-open connection) is aborted and resumed. A relist diffs
// against the cache and reports only real changes (a new resourceVersion), so it triggers nothing spurious.
import type { Logger } from 'pino';
import { errorMessage } from '../util/errors.ts';
import { flatKey, internNamespace } from '../util/intern.ts';
import { isObject, str } from '../util/narrow.ts';
import { sleep } from '../util/sleep.ts';
import { ACCEPT_METADATA, ACCEPT_METADATA_LIST, ApiError, isGone, type KubeClient } from './client.ts';
import { collectionPath, type Resource } from './resources.ts';

export interface Cached<T> {
  namespace: string;
  name: string;
  resourceVersion: string;
  value: T;
}

export interface InformerHandler<T> {
  add?(obj: Cached<T>): void;
  update?(old: Cached<T>, obj: Cached<T>): void;
  delete?(obj: Cached<T>): void;
}

export interface InformerOptions<T> {
  client: KubeClient;
  resource: Resource;
  /** Watch one namespace; default all. */
  namespace?: string;
  labelSelector?: string;
  /** e.g. "metadata.name=x": one object, which RBAC can then grant by resourceNames (list, watch). */
  fieldSelector?: string;
  /** List and watch PartialObjectMetadata only (no data, no spec). */
  metadataOnly?: boolean;
  /** Narrows a raw object to what the cache keeps; undefined drops the object (and logs why). */
  transform: (raw: unknown) => T | undefined;
  logger: Logger;
  pageSize?: number;
  /** A watch that delivers no byte for this long is considered dead and restarted. */
  staleAfterMs?: number;
  /** Server-side watch timeout; the watch is resumed from the last resourceVersion afterwards. */
  watchTimeoutSeconds?: number;
  backoff?: { initialMs: number; maxMs: number };
}

export interface InformerStats {
  lists: number;
  watches: number;
  gone: number;
  errors: number;
  staleRestarts: number;
}

const key = (namespace: string, name: string) => (namespace ? flatKey(namespace, name) : name);

class GoneError extends Error {}
class StaleError extends Error {}

export class Informer<T> {
  private readonly o: Required<Omit<InformerOptions<T>, 'namespace' | 'labelSelector' | 'fieldSelector'>> &
    Pick<InformerOptions<T>, 'namespace' | 'labelSelector' | 'fieldSelector'>;
  private readonly store = new Map<string, Cached<T>>();
  private readonly handlers: InformerHandler<T>[] = [];
  private readonly log: Logger;
  private abort = new AbortController();
  private running: Promise<void> | undefined;
  private stopped = false;
  private synced = false;
  private syncWaiters: (() => void)[] = [];
  private resourceVersion = '';
  readonly stats: InformerStats = { lists: 0, watches: 0, gone: 0, errors: 0, staleRestarts: 0 };

  constructor(options: InformerOptions<T>) {
    this.o = {
      pageSize: 500,
      staleAfterMs: 120_000,
      watchTimeoutSeconds: 300,
      backoff: { initialMs: 200, maxMs: 30_000 },
      metadataOnly: false,
      ...options,
    };
    this.log = options.logger.child({ informer: options.resource.plural });
  }

  /** Registers a handler; the returned function removes it (a reconciler that stops must call it). */
  on(handler: InformerHandler<T>): () => void {
    this.handlers.push(handler);
    return () => {
      const i = this.handlers.indexOf(handler);
      if (i >= 0) this.handlers.splice(i, 1);
    };
  }

  get(namespace: string, name: string): Cached<T> | undefined {
    return this.store.get(key(namespace, name));
  }

  list(): IterableIterator<Cached<T>> {
    return this.store.values();
  }

  get size(): number {
    return this.store.size;
  }

  hasSynced(): boolean {
    return this.synced;
  }

  /** Resolves once the first list has been loaded into the cache. */
  waitForSync(): Promise<void> {
    if (this.synced) return Promise.resolve();
    return new Promise((resolve) => this.syncWaiters.push(resolve));
  }

  start(): void {
    if (this.running) return;
    this.stopped = false;
    this.running = this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.abort.abort();
    await this.running;
    this.running = undefined;
  }

  private async run(): Promise<void> {
    let delay = this.o.backoff.initialMs;
    // After stop() and start() the cache resumes watching from where it was (a 410 then relists).
    let needList = this.resourceVersion === '';
    while (!this.stopped) {
      this.abort = new AbortController();
      try {
        if (needList) {
          await this.relist();
          needList = false;
        }
        const delivered = await this.watchOnce();
        if (delivered) delay = this.o.backoff.initialMs;
      } catch (err) {
        if (this.stopped) break;
        if (err instanceof GoneError || isGone(err)) {
          this.stats.gone++;
          this.log.info(
            { resourceVersion: this.resourceVersion },
            'resourceVersion expired (410): relisting',
          );
          needList = true;
          continue;
        }
        if (err instanceof StaleError) {
          this.stats.staleRestarts++;
          this.log.warn({ staleAfterMs: this.o.staleAfterMs }, 'watch went silent: restarting it');
          continue;
        }
        this.stats.errors++;
        this.log.warn({ err: errorMessage(err), retryInMs: delay }, 'list/watch failed: retrying');
        // A failed list leaves needList set. A watch the API server answered with an error relists, as
        // client-go's reflector does: resuming it can fail the same way for ever (found by the soak: after an
        // etcd compaction, kube-apiserver without its watch cache answered every resume of a ConfigMap watch
        // with "etcd event received with PrevKv=nil", and the cache stayed stale). A broken connection resumes.
        if (err instanceof ApiError) needList = true;
        await sleep(delay, this.abort.signal);
        delay = Math.min(delay * 2, this.o.backoff.maxMs);
      }
    }
  }

  private query(extra: Record<string, string | number | boolean | undefined>) {
    return { labelSelector: this.o.labelSelector, fieldSelector: this.o.fieldSelector, ...extra };
  }

  /** Lists everything (paginated), replaces the cache and reports the differences. */
  private async relist(): Promise<void> {
    const path = collectionPath(this.o.resource, this.o.namespace);
    const fresh = new Map<string, Cached<T>>();
    let cont: string | undefined;
    let rv = '';
    do {
      const page = await this.o.client.request({
        path,
        query: this.query({ limit: this.o.pageSize, continue: cont }),
        signal: this.abort.signal,
        timeoutMs: 60_000,
        ...(this.o.metadataOnly ? { accept: ACCEPT_METADATA_LIST } : {}),
      });
      if (!isObject(page)) throw new Error('list answer is not an object');
      const meta = isObject(page.metadata) ? page.metadata : {};
      rv = str(meta.resourceVersion) ?? '';
      cont = str(meta.continue) || undefined;
      for (const item of Array.isArray(page.items) ? page.items : []) {
        const c = this.toCached(item);
        if (c) fresh.set(key(c.namespace, c.name), c);
      }
    } while (cont);
    this.stats.lists++;
    const old = new Map(this.store);
    this.store.clear();
    for (const [k, c] of fresh) {
      this.store.set(k, c);
      const before = old.get(k);
      old.delete(k);
      if (!before) this.emit('add', c);
      else if (before.resourceVersion !== c.resourceVersion) this.emit('update', c, before);
    }
    for (const gone of old.values()) this.emit('delete', gone);
    this.resourceVersion = rv;
    if (!this.synced) {
      this.synced = true;
      for (const w of this.syncWaiters.splice(0)) w();
      this.log.debug({ objects: this.store.size }, 'synced');
    }
  }

  /** One watch from the last resourceVersion until the server ends it. Returns whether events arrived. */
  private async watchOnce(): Promise<boolean> {
    this.stats.watches++;
    let delivered = false;
    let timer: NodeJS.Timeout | undefined;
    const abort = this.abort;
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => abort.abort(new StaleError('stale watch')), this.o.staleAfterMs);
    };
    arm();
    try {
      await this.o.client.watch(
        {
          path: collectionPath(this.o.resource, this.o.namespace),
          query: this.query({
            watch: true,
            allowWatchBookmarks: true,
            resourceVersion: this.resourceVersion,
            timeoutSeconds: this.o.watchTimeoutSeconds,
          }),
          signal: abort.signal,
          ...(this.o.metadataOnly ? { accept: ACCEPT_METADATA } : {}),
        },
        (event) => {
          if (this.handleEvent(event)) delivered = true;
        },
        arm,
      );
    } catch (err) {
      if (abort.signal.reason instanceof StaleError && !this.stopped) throw abort.signal.reason;
      throw err;
    } finally {
      clearTimeout(timer);
    }
    return delivered;
  }

  /** Applies one watch event to the cache. Returns true for object events. */
  private handleEvent(event: unknown): boolean {
    if (!isObject(event)) return false;
    const type = str(event.type);
    const object = event.object;
    if (type === 'ERROR') {
      const code = isObject(object) ? object.code : undefined;
      if (code === 410) throw new GoneError('watch expired');
      const message = isObject(object) ? (str(object.message) ?? '') : '';
      throw new ApiError(
        typeof code === 'number' ? code : 500,
        isObject(object) ? (str(object.reason) ?? '') : '',
        message,
      );
    }
    const rv =
      isObject(object) && isObject(object.metadata) ? str(object.metadata.resourceVersion) : undefined;
    if (type === 'BOOKMARK') {
      if (rv) this.resourceVersion = rv;
      return false;
    }
    const c = this.toCached(object);
    if (!c) {
      // An object the transform no longer accepts leaves the cache, as if deleted.
      const meta = isObject(object) && isObject(object.metadata) ? object.metadata : {};
      const k = key(str(meta.namespace) ?? '', str(meta.name) ?? '');
      const before = this.store.get(k);
      if (before) {
        this.store.delete(k);
        this.emit('delete', before);
      }
      if (rv) this.resourceVersion = rv;
      return false;
    }
    const k = key(c.namespace, c.name);
    const before = this.store.get(k);
    if (type === 'DELETED') {
      this.store.delete(k);
      this.emit('delete', before ?? c);
    } else if (type === 'ADDED' || type === 'MODIFIED') {
      this.store.set(k, c);
      if (!before) this.emit('add', c);
      else if (before.resourceVersion !== c.resourceVersion) this.emit('update', c, before);
    }
    this.resourceVersion = c.resourceVersion;
    return true;
  }

  private toCached(raw: unknown): Cached<T> | undefined {
    const meta = isObject(raw) && isObject(raw.metadata) ? raw.metadata : undefined;
    const name = meta ? str(meta.name) : undefined;
    if (!meta || !name) return undefined;
    const value = this.o.transform(raw);
    if (value === undefined) return undefined;
    return {
      namespace: internNamespace(str(meta.namespace) ?? ''),
      name,
      resourceVersion: str(meta.resourceVersion) ?? '',
      value,
    };
  }

  private emit(kind: 'add' | 'update' | 'delete', obj: Cached<T>, old?: Cached<T>): void {
    for (const h of this.handlers) {
      try {
        if (kind === 'add') h.add?.(obj);
        else if (kind === 'update') h.update?.(old as Cached<T>, obj);
        else h.delete?.(obj);
      } catch (err) {
        this.log.error({ err: errorMessage(err) }, 'informer handler threw');
      }
    }
  }
}
