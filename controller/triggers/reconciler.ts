// Reconcile one release by key, in three steps: gather (re-read it from the cache, compute the digest of the
// values it consumes and the state of every source that links to it), decide (decideTrigger, pure), act
// (the one write or, in notify-only mode, only tell). Events and metrics describe what was done; Secret data
// never leaves the values store (digests only).
import type { Logger } from 'pino';
import { type HelmRelease, parseReleaseKey, releaseKey } from '../../src/flux/helmrelease.ts';
import type { OperatorCaches, SourceMeta } from '../../src/kube/caches.ts';
import { isConflict, isNotFound, type KubeClient } from '../../src/kube/client.ts';
import { type EventRecorder, releaseTarget } from '../../src/kube/events.ts';
import type { Cached } from '../../src/kube/informer.ts';
import type { MergePatch } from '../../src/kube/patch.ts';
import { HelmReleases, objectPath } from '../../src/kube/resources.ts';
import { Annotations, Flux } from '../../src/names.ts';
import {
  decideTrigger,
  type LinkSourceState,
  recordedLinks,
  type SkipReason,
  skipBeforeLookup,
  type TriggerAction,
  type TriggerInput,
} from '../../src/triggers/decide.ts';
import { parseSourceId, type SourceId, sourceAllowed, sourceId } from '../../src/triggers/links.ts';
import type { Clock } from '../../src/util/clock.ts';
import { errorMessage } from '../../src/util/errors.ts';
import { shortDigest } from '../../src/values/digest.ts';
import { digestOfRelease } from '../../src/values/lookup.ts';
import type { ReconcileResult, TokenBucket } from '../queue.ts';
import { budgetedWrite, type RolloutBudget, UNLIMITED } from '../rollout.ts';
import { TriggerEvents } from './events.ts';
import type { TriggerIndex } from './index.ts';
import type { TriggerMetrics } from './metrics.ts';

export interface ReconcilerDeps {
  client: KubeClient;
  caches: Pick<OperatorCaches, 'helmReleases' | 'configMaps' | 'secrets' | 'values'>;
  index: TriggerIndex;
  events: EventRecorder;
  metrics: TriggerMetrics;
  logger: Logger;
  clock: Clock;
  writes: Pick<TokenBucket, 'take'>;
  /** True once the controller is stopping: a handler that waited for a write token writes nothing then. */
  stopped: () => boolean;
  nextToken: () => string;
  observed: ObservedChanges;
  force: boolean;
  notifyOnly: boolean;
  /** --max-upgrades-in-flight (default: no limit), and how a release waiting for a slot is woken. */
  budget?: RolloutBudget;
  wake?: (key: string) => void;
}

/** A failure the queue retries with backoff; `type` labels the error metric. */
export class TriggerError extends Error {
  readonly type: 'lookup' | 'conflict' | 'patch';
  constructor(type: TriggerError['type'], message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'TriggerError';
    this.type = type;
  }
}

/** When a change concerning a release was first seen, and which sources changed, until it is handled. */
export class ObservedChanges {
  private readonly byKey = new Map<string, { at: number; sources: Set<SourceId> }>();
  note(key: string, at: number, source?: SourceId): void {
    let o = this.byKey.get(key);
    if (!o) {
      o = { at, sources: new Set() };
      this.byKey.set(key, o);
    }
    if (source) o.sources.add(source);
  }
  /** The sources seen changing for key so far; undefined when nothing was noted (e.g. after a start). */
  sources(key: string): SourceId[] | undefined {
    const o = this.byKey.get(key);
    return o && o.sources.size > 0 ? [...o.sources] : undefined;
  }
  take(key: string): { at: number; sources: Set<SourceId> } | undefined {
    const o = this.byKey.get(key);
    this.byKey.delete(key);
    return o;
  }
}

type Trigger = Extract<TriggerAction, { action: 'trigger' }>;
type Write = Exclude<TriggerAction, { action: 'skip' }>;
type Seen = ReturnType<ObservedChanges['take']>;

export class TriggerReconciler {
  private readonly d: ReconcilerDeps;
  /** notify-only writes nothing, so remember what was announced to announce it once. */
  private readonly announced = new Map<string, string>();
  /** Refused links counted once per source version and release. */
  private readonly refused = new Set<string>();

  constructor(d: ReconcilerDeps) {
    this.d = d;
  }

  async reconcile(key: string): Promise<ReconcileResult> {
    const { namespace, name } = parseReleaseKey(key);
    const log = this.d.logger.child({ namespace, name });
    // The write token first: the release is read after any wait for it, so the patch's resourceVersion
    // precondition is as fresh as it can be (a read before a long wait would end in a 409).
    if (!this.d.notifyOnly) await this.d.writes.take();
    if (this.d.stopped()) return undefined;
    const hr = this.d.caches.helmReleases.get(namespace, name)?.value;
    if (!hr) {
      this.d.observed.take(key);
      this.announced.delete(key);
      return undefined;
    }
    const early = skipBeforeLookup(hr);
    if (early) return this.skipped(key, early, log);
    const input = await this.gather(hr);
    const { action, refused } = decideTrigger(input, {
      force: this.d.force,
      token: this.d.nextToken(),
      nowMs: this.d.clock.now(),
    });
    for (const id of refused) this.tellRefused(hr, id, log);
    return this.act(key, input, action, log);
  }

  /** The one input of the decision; any failed lookup is a TriggerError('lookup') the queue retries. */
  private async gather(hr: HelmRelease): Promise<TriggerInput> {
    try {
      const valuesDigest =
        hr.valuesFrom.length > 0 ? await digestOfRelease(this.d.caches.values, hr) : undefined;
      const key = releaseKey(hr.metadata.namespace, hr.metadata.name);
      const changedSources = this.d.observed.sources(key);
      return {
        hr,
        valuesDigest,
        links: await this.linkSources(hr),
        fluxWatched: this.fluxWatched(hr),
        ...(changedSources ? { changedSources } : {}),
      };
    } catch (err) {
      throw new TriggerError('lookup', `values lookup failed: ${errorMessage(err)}`, { cause: err });
    }
  }

  /** The sources the release consumes that helm-controller watches itself (see SourceMeta.fluxWatched). */
  private fluxWatched(hr: HelmRelease): SourceId[] {
    const ns = hr.metadata.namespace;
    return hr.valuesFrom
      .map((r) => sourceId(r.kind, ns, r.name))
      .filter((id) => this.sourceMeta(id)?.value.fluxWatched === true);
  }

  /** The state of every source that links to the release now, or is recorded on it. */
  private async linkSources(hr: HelmRelease): Promise<Record<SourceId, LinkSourceState>> {
    const { namespace, name, annotations } = hr.metadata;
    const out: Record<SourceId, LinkSourceState> = {};
    for (const id of this.d.index.linkedSources(namespace, name)) {
      const src = parseSourceId(id);
      if (!sourceAllowed(namespace, annotations, src.namespace)) {
        out[id] = { state: 'refused' };
        continue;
      }
      const digest = await this.d.caches.values.dataDigest(src.kind, src.namespace, src.name);
      out[id] = digest === null ? { state: 'gone' } : { state: 'linked', digest };
    }
    for (const id of recordedLinks(hr)) {
      if (!(id in out)) out[id] = this.sourceMeta(id) ? { state: 'unlinked' } : { state: 'gone' };
    }
    return out;
  }

  private async act(
    key: string,
    input: TriggerInput,
    a: TriggerAction,
    log: Logger,
  ): Promise<ReconcileResult> {
    const budget = this.d.budget ?? UNLIMITED;
    if (a.action !== 'trigger' || this.d.notifyOnly) budget.leave(key, 'triggers');
    if (a.action === 'skip' && a.reason === 'in-flight') return this.held(a, log);
    if (a.action === 'skip') return this.skipped(key, a.reason, log);
    if (this.d.notifyOnly) return this.notify(key, input.hr, a, log);
    if (a.action === 'trigger' && !budget.acquire(key, 'triggers', () => this.d.wake?.(key))) {
      this.d.metrics.skips.inc({ reason: 'rollout-budget' });
      log.debug({ max: budget.max }, 'trigger waits for a slot of --max-upgrades-in-flight');
      return undefined;
    }
    const write = () => this.write(key, input.hr, a.patch, log);
    if (!(await (a.action === 'trigger' ? budgetedWrite(budget, key, a.patch, write) : write())))
      return undefined;
    const seen = this.d.observed.take(key);
    if (a.action === 'trigger') return this.triggered(input.hr, a, seen, log);
    this.d.metrics.backfills.inc({ reason: a.reason });
    log.info({ reason: a.reason, digest: shortDigest(input.valuesDigest) }, 'stamp backfilled');
    return undefined;
  }

  private skipped(key: string, reason: SkipReason, log: Logger): undefined {
    this.d.observed.take(key);
    this.d.metrics.skips.inc({ reason });
    log.debug({ reason }, 'release skipped');
    return undefined;
  }

  /**
   * A trigger held while Flux works on the release: nothing written, the change still observed. The
   * controller enqueues the release again when Flux stops (status), or at the recheck time.
   */
  private held(a: Extract<TriggerAction, { reason: 'in-flight' }>, log: Logger): ReconcileResult {
    this.d.metrics.skips.inc({ reason: a.reason });
    log.debug({ why: a.why }, 'trigger held: Flux is working on the release');
    return a.recheckAtMs === undefined
      ? undefined
      : { requeueAfterMs: Math.max(0, a.recheckAtMs - this.d.clock.now()) };
  }

  /** One conditional merge patch; false when the release is gone. A 409 throws: the queue reconciles again. */
  private async write(key: string, hr: HelmRelease, patch: MergePatch, log: Logger): Promise<boolean> {
    try {
      await this.d.client.mergePatch(
        objectPath(HelmReleases, hr.metadata.namespace, hr.metadata.name),
        patch,
      );
      return true;
    } catch (err) {
      if (isNotFound(err)) {
        this.d.observed.take(key);
        log.debug('release deleted before the patch: nothing to trigger');
        return false;
      }
      if (isConflict(err)) {
        // The release changed after it was read: reconcile again from the newer copy.
        throw new TriggerError('conflict', 'release changed since it was read', { cause: err });
      }
      throw new TriggerError('patch', `patch failed: ${errorMessage(err)}`, { cause: err });
    }
  }

  private triggered(hr: HelmRelease, a: Trigger, seen: Seen, log: Logger): undefined {
    if (seen) this.d.metrics.latency.observe((this.d.clock.now() - seen.at) / 1000);
    this.d.metrics.triggers.inc({ reason: a.reason });
    const token = a.patch.metadata.annotations[Flux.requestedAt];
    const sources = [...(seen?.sources ?? [])];
    log.info(
      {
        reason: a.reason,
        oldDigest: shortDigest(a.oldDigest),
        newDigest: shortDigest(a.newDigest),
        sources: [...sources, ...a.changedLinks],
        requestedAt: token,
        forced: Flux.forceAt in a.patch.metadata.annotations,
      },
      'release triggered',
    );
    void this.d.events.emit(
      releaseTarget(hr),
      a.reason === 'values-changed'
        ? TriggerEvents.valuesChanged(sources, a.oldDigest, a.newDigest, token ?? '')
        : TriggerEvents.linkedSourceChanged(a.changedLinks, token ?? ''),
    );
    return undefined;
  }

  /** notify-only: a trigger is told once per digest and link digests; a backfill is only counted. */
  private notify(key: string, hr: HelmRelease, a: Write, log: Logger): undefined {
    const seen = this.d.observed.take(key);
    if (a.action === 'backfill') {
      this.d.metrics.skips.inc({ reason: 'notify-only' });
      return undefined;
    }
    const signature = JSON.stringify([a.newDigest, a.patch.metadata.annotations[Annotations.linkDigests]]);
    if (this.announced.get(key) === signature) return undefined;
    this.announced.set(key, signature);
    if (seen) this.d.metrics.latency.observe((this.d.clock.now() - seen.at) / 1000);
    this.d.metrics.triggers.inc({ reason: a.reason });
    log.info(
      { reason: a.reason, oldDigest: shortDigest(a.oldDigest), newDigest: shortDigest(a.newDigest) },
      'release would be triggered (notify-only)',
    );
    void this.d.events.emit(
      releaseTarget(hr),
      a.reason === 'values-changed'
        ? TriggerEvents.valuesChangedNotify([...(seen?.sources ?? [])], a.oldDigest, a.newDigest)
        : TriggerEvents.linkedSourceChangedNotify(a.changedLinks),
    );
    return undefined;
  }

  /** A refused link is told on the source: a Warning event, a metric and a log line, once per source version. */
  private tellRefused(hr: HelmRelease, id: SourceId, log: Logger): void {
    const rv = this.sourceMeta(id)?.resourceVersion ?? '';
    const k = `${id}@${rv}>${hr.metadata.namespace}/${hr.metadata.name}`;
    if (this.refused.has(k)) return;
    if (this.refused.size > 10_000) this.refused.clear();
    this.refused.add(k);
    this.d.metrics.refusedLinks.inc();
    log.warn({ source: id }, 'cross-namespace link refused: the release does not allow the source namespace');
    const src = parseSourceId(id);
    void this.d.events.emit(
      { apiVersion: 'v1', kind: src.kind, namespace: src.namespace, name: src.name, uid: '' },
      TriggerEvents.linkRefused(hr.metadata, src.namespace),
    );
  }

  /** A source from the metadata cache: whether it exists, and its resourceVersion. */
  private sourceMeta(id: SourceId): Cached<SourceMeta> | undefined {
    const src = parseSourceId(id);
    const informer = src.kind === 'ConfigMap' ? this.d.caches.configMaps : this.d.caches.secrets;
    return informer.get(src.namespace, src.name);
  }
}
