// The harness's own raw watch of every HelmRelease (straight to the API server, no informer of the
// project's): each new reconcile.fluxcd.io/requestedAt is a trigger, recorded with its resourceVersion and
// the time it was seen; each change of our labels/annotations is a write of the operator. It also plays
// helm-controller's part: soon after a trigger it records the request as handled
// (status.lastHandledReconcileAt), or the operator would hold the next one for ever (src/flux/activity.ts).
// No trigger can slip past it: the operator sends none while the previous one is unhandled, and only this
// watch handles them. A watch that ends is resumed from its last resourceVersion; a 410 relists.
import { ApiError, type KubeClient } from '../../src/kube/client.ts';
import { collectionPath, HelmReleases, objectPath } from '../../src/kube/resources.ts';
import { Annotations, Flux, Labels } from '../../src/names.ts';
import { isObject, str, stringMap } from '../../src/util/narrow.ts';
import { sleep } from '../../src/util/sleep.ts';
import type { Oracle } from './oracle.ts';

interface Seen {
  requestedAt?: string;
  handled?: string;
  valuesDigest?: string;
  linkDigests?: string;
  /** Our labels and annotations (and Flux's), as one string: a change is a write of the operator. */
  ours: string;
  suspend: boolean;
}

/** Delay before the harness, as Flux, records a request as handled. */
const FLUX_DELAY_MS = 300;

function seenOf(raw: unknown): { key: string; rv: number; seen: Seen } | undefined {
  if (!isObject(raw) || !isObject(raw.metadata)) return undefined;
  const m = raw.metadata;
  const annotations = stringMap(m.annotations);
  const labels = stringMap(m.labels);
  const status = isObject(raw.status) ? raw.status : {};
  const spec = isObject(raw.spec) ? raw.spec : {};
  const mine = Object.entries({ ...annotations, ...labels })
    .filter(([k]) => k.startsWith('helmrelease-autopilot.dev/') || k.startsWith('reconcile.fluxcd.io/'))
    .sort();
  return {
    key: `${str(m.namespace)}/${str(m.name)}`,
    rv: Number(str(m.resourceVersion)),
    seen: {
      ...(annotations[Flux.requestedAt] !== undefined ? { requestedAt: annotations[Flux.requestedAt] } : {}),
      ...(str(status.lastHandledReconcileAt) !== undefined
        ? { handled: str(status.lastHandledReconcileAt) as string }
        : {}),
      ...(annotations[Annotations.valuesDigest] !== undefined
        ? { valuesDigest: annotations[Annotations.valuesDigest] }
        : {}),
      ...(annotations[Annotations.linkDigests] !== undefined
        ? { linkDigests: annotations[Annotations.linkDigests] }
        : {}),
      ours: JSON.stringify([mine, labels[Labels.managed] ?? '']),
      suspend: spec.suspend === true,
    },
  };
}

export class ReleaseWatch {
  readonly stats = { events: 0, relists: 0, resumes: 0, errors: 0, operatorWrites: 0, fluxHandled: 0 };
  private readonly known = new Map<string, Seen>();
  private rv = '';
  private stopped = false;
  private abort = new AbortController();
  private loop: Promise<void> = Promise.resolve();
  private readonly handling = new Set<string>();

  private readonly client: KubeClient;
  private readonly oracle: Oracle;

  constructor(client: KubeClient, oracle: Oracle) {
    this.client = client;
    this.oracle = oracle;
  }

  async start(): Promise<void> {
    await this.list();
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.abort.abort();
    await this.loop;
  }

  /** Releases whose last request the harness has not yet recorded as handled (unsettled at the end). */
  pending(): string[] {
    return [...this.known.entries()]
      .filter(([, s]) => s.requestedAt !== undefined && s.requestedAt !== s.handled && !s.suspend)
      .map(([k]) => k);
  }

  private async list(): Promise<void> {
    for (;;) {
      try {
        const list = await this.client.request({ path: collectionPath(HelmReleases), timeoutMs: 60_000 });
        if (!isObject(list) || !isObject(list.metadata)) throw new Error('not a list');
        const present = new Set<string>();
        for (const item of Array.isArray(list.items) ? list.items : []) {
          const s = seenOf(item);
          if (!s) continue;
          present.add(s.key);
          this.observe(s.key, s.rv, s.seen);
        }
        for (const key of [...this.known.keys()]) if (!present.has(key)) this.known.delete(key);
        this.rv = str(list.metadata.resourceVersion) ?? '';
        this.stats.relists++;
        return;
      } catch {
        this.stats.errors++;
        if (this.stopped) return;
        await sleep(500);
      }
    }
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      try {
        await this.client.watch(
          {
            path: collectionPath(HelmReleases),
            query: { watch: true, resourceVersion: this.rv, allowWatchBookmarks: true, timeoutSeconds: 3600 },
            signal: this.abort.signal,
          },
          (event) => this.onEvent(event),
        );
        this.stats.resumes++;
      } catch (err) {
        if (this.stopped) return;
        this.stats.errors++;
        if (err instanceof ApiError && err.status === 410) await this.list();
        else await sleep(300);
      }
    }
  }

  private onEvent(event: unknown): void {
    if (!isObject(event)) return;
    this.stats.events++;
    const type = str(event.type);
    if (type === 'ERROR') {
      // 410 Gone (or any error): relist, then resume from the list.
      throw new ApiError(
        isObject(event.object) && typeof event.object.code === 'number' ? event.object.code : 500,
        '',
        'watch error',
      );
    }
    const o = event.object;
    if (isObject(o) && isObject(o.metadata)) this.rv = str(o.metadata.resourceVersion) ?? this.rv;
    if (type === 'BOOKMARK') return;
    const s = seenOf(o);
    if (!s) return;
    if (type === 'DELETED') {
      this.known.delete(s.key);
      return;
    }
    this.observe(s.key, s.rv, s.seen);
  }

  private observe(key: string, rv: number, seen: Seen): void {
    const before = this.known.get(key);
    this.known.set(key, seen);
    if (before) {
      if (before.ours !== seen.ours) {
        this.stats.operatorWrites++;
        this.oracle.operatorWrite(key, rv);
      }
      if (seen.requestedAt !== undefined && seen.requestedAt !== before.requestedAt) {
        this.oracle.trigger({
          key,
          rv,
          at: Date.now(),
          before: {
            ...(before.valuesDigest !== undefined ? { valuesDigest: before.valuesDigest } : {}),
            ...(before.linkDigests !== undefined ? { linkDigests: before.linkDigests } : {}),
          },
        });
      }
    }
    if (seen.requestedAt !== undefined && seen.requestedAt !== seen.handled && !seen.suspend)
      this.handleLater(key, seen.requestedAt);
  }

  /** As helm-controller: record the request as handled, soon; retried until done or superseded. */
  private handleLater(key: string, token: string): void {
    const id = `${key}@${token}`;
    if (this.handling.has(id)) return;
    this.handling.add(id);
    const [namespace, name] = key.split('/') as [string, string];
    void (async () => {
      await sleep(FLUX_DELAY_MS);
      while (!this.stopped) {
        const now = this.known.get(key);
        if (!now || now.requestedAt !== token || now.handled === token) break;
        try {
          await this.client.mergePatch(`${objectPath(HelmReleases, namespace, name)}/status`, {
            status: { lastHandledReconcileAt: token },
          });
          this.stats.fluxHandled++;
          break;
        } catch (err) {
          if (err instanceof ApiError && err.status === 404) break;
          await sleep(1000);
        }
      }
      this.handling.delete(id);
    })();
  }
}
