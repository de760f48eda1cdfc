// Reconcile one release by key: re-read it from the cache, compute the current digests of what it consumes,
// let decideTrigger choose, and carry out the one write (or, in notify-only mode, only tell). Events and
// metrics describe what was done; Secret data never leaves the values store (digests only).
import type { Logger } from 'pino';
import type { HelmRelease } from '../../src/flux/helmrelease.ts';
import type { OperatorCaches } from '../../src/kube/caches.ts';
import { isConflict, isNotFound, type KubeClient } from '../../src/kube/client.ts';
import { type EventRecorder, releaseTarget } from '../../src/kube/events.ts';
import { HelmReleases, objectPath } from '../../src/kube/resources.ts';
import { Annotations, Flux } from '../../src/names.ts';
import {
  decideTrigger,
  MISSING_LINK,
  parseLinkDigests,
  skipBeforeLookup,
  type TriggerDecision,
} from '../../src/triggers/decide.ts';
import { parseSourceId, type SourceId, sourceAllowed } from '../../src/triggers/links.ts';
import type { Clock } from '../../src/util/clock.ts';
import { errorMessage } from '../../src/util/errors.ts';
import { shortDigest } from '../../src/values/digest.ts';
import { digestOfRelease } from '../../src/values/lookup.ts';
import type { TokenBucket } from '../queue.ts';
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
  take(key: string): { at: number; sources: Set<SourceId> } | undefined {
    const o = this.byKey.get(key);
    this.byKey.delete(key);
    return o;
  }
}

export function createReconciler(d: ReconcilerDeps): (key: string) => Promise<undefined> {
  /** notify-only writes nothing, so remember what was announced to announce it once. */
  const announced = new Map<string, string>();
  /** Refused links counted once per source version and release. */
  const refused = new Set<string>();

  return async (key) => {
    const slash = key.indexOf('/');
    const namespace = key.slice(0, slash);
    const name = key.slice(slash + 1);
    const log = d.logger.child({ namespace, name });
    // The write token first: the release is read after any wait for it, so the patch's resourceVersion
    // precondition is as fresh as it can be (a read before a long wait would end in a 409).
    if (!d.notifyOnly) await d.writes.take();
    if (d.stopped()) return undefined;
    const cached = d.caches.helmReleases.get(namespace, name);
    if (!cached) {
      d.observed.take(key);
      announced.delete(key);
      return undefined;
    }
    const hr = cached.value;
    const early = skipBeforeLookup(hr);
    if (early) {
      d.observed.take(key);
      d.metrics.skips.inc({ reason: early });
      log.debug({ reason: early }, 'release skipped');
      return undefined;
    }
    let valuesDigest: string | undefined;
    let links: Record<SourceId, string>;
    try {
      valuesDigest = hr.valuesFrom.length > 0 ? await digestOfRelease(d.caches.values, hr) : undefined;
      links = await linkDigests(hr);
    } catch (err) {
      throw new TriggerError('lookup', `values lookup failed: ${errorMessage(err)}`, { cause: err });
    }
    const decision = decideTrigger({ hr, valuesDigest, links }, { force: d.force, token: d.nextToken() });
    if (decision.action === 'skip') {
      d.observed.take(key);
      d.metrics.skips.inc({ reason: decision.reason });
      log.debug({ reason: decision.reason }, 'release skipped');
      return undefined;
    }
    if (d.notifyOnly) {
      notify(key, hr, decision, log);
      return undefined;
    }
    try {
      await d.client.mergePatch(objectPath(HelmReleases, namespace, name), decision.patch);
    } catch (err) {
      if (isNotFound(err)) {
        d.observed.take(key);
        log.debug('release deleted before the patch: nothing to trigger');
        return undefined;
      }
      if (isConflict(err)) {
        // The release changed after it was read: reconcile again from the newer copy.
        throw new TriggerError('conflict', 'release changed since it was read', { cause: err });
      }
      throw new TriggerError('patch', `patch failed: ${errorMessage(err)}`, { cause: err });
    }
    const seen = d.observed.take(key);
    if (decision.action === 'backfill') {
      d.metrics.backfills.inc({ reason: decision.reason });
      log.info({ reason: decision.reason, digest: shortDigest(valuesDigest) }, 'stamp backfilled');
      return undefined;
    }
    if (seen) d.metrics.latency.observe((d.clock.now() - seen.at) / 1000);
    d.metrics.triggers.inc({ reason: decision.reason });
    const token = decision.patch.metadata.annotations[Flux.requestedAt];
    log.info(
      {
        reason: decision.reason,
        oldDigest: shortDigest(decision.oldDigest),
        newDigest: shortDigest(decision.newDigest),
        sources: [...(seen?.sources ?? []), ...decision.changedLinks],
        requestedAt: token,
        forced: Flux.forceAt in decision.patch.metadata.annotations,
      },
      'release triggered',
    );
    const sources = [...(seen?.sources ?? [])];
    void d.events.emit(
      releaseTarget(hr),
      decision.reason === 'values-changed'
        ? TriggerEvents.valuesChanged(sources, decision.oldDigest, decision.newDigest, token ?? '')
        : TriggerEvents.linkedSourceChanged(decision.changedLinks, token ?? ''),
    );
    return undefined;
  };

  /** Data digests of the linked sources this release allows; refusals are told on the source. */
  async function linkDigests(hr: HelmRelease): Promise<Record<SourceId, string>> {
    const { namespace, name } = hr.metadata;
    const out: Record<SourceId, string> = {};
    const linked = d.index.linkedSources(namespace, name);
    for (const id of linked) {
      const src = parseSourceId(id);
      if (!sourceAllowed(namespace, hr.metadata.annotations, src.namespace)) {
        refuse(hr, id);
        continue;
      }
      const digest = await d.caches.values.dataDigest(src.kind, src.namespace, src.name);
      out[id] = digest ?? MISSING_LINK;
    }
    // A recorded source that is gone keeps a tombstone: deleting it is a change, and so is its return
    // (kubectl replace --force, secret managers that recreate). One that exists but no longer links is dropped.
    const stored = parseLinkDigests(hr.metadata.annotations[Annotations.linkDigests]);
    for (const id of Object.keys(stored)) {
      if (id in out || linked.includes(id)) continue;
      const src = parseSourceId(id);
      const informer = src.kind === 'ConfigMap' ? d.caches.configMaps : d.caches.secrets;
      if (!informer.get(src.namespace, src.name)) out[id] = MISSING_LINK;
    }
    return out;
  }

  function refuse(hr: HelmRelease, id: SourceId): void {
    const src = parseSourceId(id);
    const informer = src.kind === 'ConfigMap' ? d.caches.configMaps : d.caches.secrets;
    const rv = informer.get(src.namespace, src.name)?.resourceVersion ?? '';
    const k = `${id}@${rv}>${hr.metadata.namespace}/${hr.metadata.name}`;
    if (refused.has(k)) return;
    if (refused.size > 10_000) refused.clear();
    refused.add(k);
    d.metrics.refusedLinks.inc();
    d.logger.warn(
      { source: id, namespace: hr.metadata.namespace, name: hr.metadata.name },
      'cross-namespace link refused: the release does not allow the source namespace',
    );
    void d.events.emit(
      { apiVersion: 'v1', kind: src.kind, namespace: src.namespace, name: src.name, uid: '' },
      TriggerEvents.linkRefused(hr.metadata, src.namespace),
    );
  }

  function notify(
    key: string,
    hr: HelmRelease,
    decision: Exclude<TriggerDecision, { action: 'skip' }>,
    log: Logger,
  ) {
    const seen = d.observed.take(key);
    if (decision.action === 'backfill') {
      d.metrics.skips.inc({ reason: 'notify-only' });
      return;
    }
    const signature = JSON.stringify([
      decision.newDigest,
      decision.patch.metadata.annotations[Annotations.linkDigests],
    ]);
    if (announced.get(key) === signature) return;
    announced.set(key, signature);
    if (seen) d.metrics.latency.observe((d.clock.now() - seen.at) / 1000);
    d.metrics.triggers.inc({ reason: decision.reason });
    log.info(
      {
        reason: decision.reason,
        oldDigest: shortDigest(decision.oldDigest),
        newDigest: shortDigest(decision.newDigest),
      },
      'release would be triggered (notify-only)',
    );
    void d.events.emit(
      releaseTarget(hr),
      decision.reason === 'values-changed'
        ? TriggerEvents.valuesChangedNotify(
            [...(seen?.sources ?? [])],
            decision.oldDigest,
            decision.newDigest,
          )
        : TriggerEvents.linkedSourceChangedNotify(decision.changedLinks),
    );
  }
}
