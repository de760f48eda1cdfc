// Reconcile one release by key, in three steps: gather (re-read it from the cache, compute the digest of the
// values it consumes and the state of every source that links to it), decide (decideTrigger, pure), act
// (the one write or, in notify-only mode, only tell). Only a write waits for a write token, and after the wait
// the release is read and decided again. Events and metrics describe what was done; Secret data never leaves
// the values store, and digests appear in no event and no log line. A digest recorded in an older format is
// checked against the data now in that format (one GET per object, once per release), so an upgrade or a key
// rotation re-stamps releases instead of triggering them.
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
  type SkipReason,
  skipBeforeLookup,
  type TriggerAction,
  type TriggerDecision,
  type TriggerInput,
} from '../../src/triggers/decide.ts';
import { gatherTriggerInput, type TriggerReads } from '../../src/triggers/gather.ts';
import { parseSourceId, type SourceId, sourceId } from '../../src/triggers/links.ts';
import type { Clock } from '../../src/util/clock.ts';
import { errorMessage } from '../../src/util/errors.ts';
import type { Priority, ReconcileResult, WriteTokens } from '../queue.ts';
import { budgetedWrite, type RolloutBudget, UNLIMITED } from '../rollout.ts';
import { type ChangedValues, TriggerEvents } from './events.ts';
import type { TriggerIndex } from './index.ts';
import type { TriggerMetrics } from './metrics.ts';

export interface ReconcilerDeps {
  client: KubeClient;
  /** What it reads of the caches (src/kube/caches.ts): cached objects by name, and the values store. */
  caches: {
    helmReleases: Pick<OperatorCaches['helmReleases'], 'get'>;
    createdUnstamped: Pick<OperatorCaches['createdUnstamped'], 'has' | 'handled'>;
    configMaps: Pick<OperatorCaches['configMaps'], 'get'>;
    secrets: Pick<OperatorCaches['secrets'], 'get'>;
    values: Pick<
      OperatorCaches['values'],
      'valuesDigest' | 'valuesDigestAsStored' | 'dataDigest' | 'dataDigestAsStored'
    >;
  };
  index: TriggerIndex;
  events: EventRecorder;
  metrics: TriggerMetrics;
  logger: Logger;
  clock: Clock;
  /** Taken only before a write, never for an evaluation that writes nothing. */
  writes: WriteTokens;
  /** True once the controller is stopping: a handler that waited for a write token writes nothing then. */
  stopped: () => boolean;
  nextToken: () => string;
  observed: ObservedChanges;
  force: boolean;
  notifyOnly: boolean;
  /** Lockdown flags: --no-cross-namespace-links, --no-release-force. */
  noCrossNamespaceLinks?: boolean;
  noReleaseForce?: boolean;
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
/** One evaluation of a release: gone from the cache, skipped before any lookup, or decided. */
type Evaluation =
  | { kind: 'gone' }
  | { kind: 'early'; reason: SkipReason }
  | { kind: 'decided'; input: TriggerInput; decision: TriggerDecision };

export class TriggerReconciler {
  private readonly d: ReconcilerDeps;
  /** notify-only writes nothing, so remember what was announced to announce it once. */
  private readonly announced = new Map<string, string>();
  /** Refused links counted once per source version and release. */
  private readonly refused = new Set<string>();

  constructor(d: ReconcilerDeps) {
    this.d = d;
  }

  async reconcile(key: string, priority: Priority = 'high'): Promise<ReconcileResult> {
    const { namespace, name } = parseReleaseKey(key);
    const log = this.d.logger.child({ namespace, name });
    // Decide without a write token: most evaluations (the start-up pass, the echo of our own patch) write
    // nothing, and must not wait for the write budget.
    let e = await this.evaluate(namespace, name);
    if (this.d.notifyOnly || e.kind !== 'decided' || e.decision.action.action === 'skip')
      return this.conclude(key, e, false, log);
    // A trigger reserves its slot of --max-upgrades-in-flight before it waits for a write token, so a release
    // waiting in line for a slot holds no token; a backfill needs no slot.
    const reserved = e.decision.action.action === 'trigger';
    if (reserved && !this.reserve(key, log)) return undefined;
    try {
      await this.d.writes.take(priority);
      if (this.d.stopped()) {
        if (reserved) this.budget.release(key);
        return undefined;
      }
      // Re-read and decide again after the wait: the patch's resourceVersion precondition is as fresh as it
      // can be (a read before a long wait would end in a 409), and whatever changed meanwhile is acted on.
      e = await this.evaluate(namespace, name);
    } catch (err) {
      if (reserved) this.budget.release(key);
      throw err;
    }
    return this.conclude(key, e, reserved, log);
  }

  /** The rollout budget (--max-upgrades-in-flight), unlimited when none is given. */
  private get budget(): RolloutBudget {
    return this.d.budget ?? UNLIMITED;
  }

  /** Reserves a rollout slot for a trigger's write; false when the release waits in line (it is woken). */
  private reserve(key: string, log: Logger): boolean {
    if (this.budget.acquire(key, 'triggers', () => this.d.wake?.(key))) return true;
    this.d.metrics.skips.inc({ reason: 'rollout-budget' });
    log.debug({ max: this.budget.max }, 'trigger waits for a slot of --max-upgrades-in-flight');
    return false;
  }

  /** Acts on an evaluation; `reserved`: a rollout slot is held for it (freed unless a trigger writes). */
  private async conclude(
    key: string,
    e: Evaluation,
    reserved: boolean,
    log: Logger,
  ): Promise<ReconcileResult> {
    if (e.kind !== 'decided') {
      if (reserved) this.budget.release(key);
      this.budget.leave(key, 'triggers');
      if (e.kind === 'early') return this.skipped(key, e.reason, log);
      this.d.observed.take(key);
      this.announced.delete(key);
      return undefined;
    }
    for (const id of e.decision.refused) this.tellRefused(e.input.hr, id, log);
    return this.act(key, e.input, e.decision.action, reserved, log);
  }

  /** The release as the cache holds it now, and what to do with it (pure decision; lookups may GET). */
  private async evaluate(namespace: string, name: string): Promise<Evaluation> {
    const hr = this.d.caches.helmReleases.get(namespace, name)?.value;
    if (!hr) return { kind: 'gone' };
    const early = skipBeforeLookup(hr);
    if (early) return { kind: 'early', reason: early };
    const input = await this.gather(hr);
    const decision = decideTrigger(input, {
      force: this.d.force,
      token: this.d.nextToken(),
      ignoreReleaseForce: this.d.noReleaseForce === true,
      nowMs: this.d.clock.now(),
    });
    return { kind: 'decided', input, decision };
  }

  /** The one input of the decision; any failed lookup is a TriggerError('lookup') the queue retries. */
  private async gather(hr: HelmRelease): Promise<TriggerInput> {
    try {
      return await gatherTriggerInput(hr, this.reads, {
        noCrossNamespaceLinks: this.d.noCrossNamespaceLinks === true,
      });
    } catch (err) {
      throw new TriggerError('lookup', `values lookup failed: ${errorMessage(err)}`, { cause: err });
    }
  }

  /** The gatherer reads the operator's caches (explain reads the same through the user's client). */
  private readonly reads: TriggerReads = {
    valuesDigest: (hr) => this.d.caches.values.valuesDigest(hr.metadata.namespace, hr.valuesFrom),
    valuesDigestAsStored: (hr, stored) =>
      this.d.caches.values.valuesDigestAsStored(hr.metadata.namespace, hr.valuesFrom, stored),
    linkedSources: (namespace, name) => this.d.index.linkedSources(namespace, name),
    dataDigest: (kind, namespace, name) => this.d.caches.values.dataDigest(kind, namespace, name),
    dataDigestAsStored: (kind, namespace, name, stored) =>
      this.d.caches.values.dataDigestAsStored(kind, namespace, name, stored),
    exists: (id) => this.sourceMeta(id) !== undefined,
    fluxWatched: (id) => this.sourceMeta(id)?.value.fluxWatched === true,
    changedSources: (hr) => this.d.observed.sources(releaseKey(hr.metadata.namespace, hr.metadata.name)),
    createdUnstamped: (hr) => this.d.caches.createdUnstamped.has(hr),
  };

  private async act(
    key: string,
    input: TriggerInput,
    a: TriggerAction,
    reserved: boolean,
    log: Logger,
  ): Promise<ReconcileResult> {
    const budget = this.budget;
    if (a.action !== 'trigger' || this.d.notifyOnly) {
      // Only a trigger's write takes a slot: a slot reserved for a decision that changed is given back.
      if (reserved) budget.release(key);
      budget.leave(key, 'triggers');
    }
    if (a.action === 'skip' && a.reason === 'in-flight') return this.held(a, log);
    if (a.action === 'skip') return this.skipped(key, a.reason, log);
    if (this.d.notifyOnly) return this.notify(key, input.hr, a, log);
    // A backfill that became a trigger after the wait for the token reserves its slot now.
    if (a.action === 'trigger' && !reserved && !this.reserve(key, log)) return undefined;
    const write = () => this.write(key, input.hr, a.patch, log);
    if (!(await (a.action === 'trigger' ? budgetedWrite(budget, key, a.patch, write) : write())))
      return undefined;
    // A write decided with createdUnstamped is its trigger (or a flux-watched stamp): the debt is paid.
    if (input.createdUnstamped) this.d.caches.createdUnstamped.handled(input.hr);
    const seen = this.d.observed.take(key);
    if (a.action === 'trigger') return this.triggered(input.hr, a, seen, log);
    this.d.metrics.backfills.inc({ reason: a.reason });
    log.info(
      { reason: a.reason },
      a.reason === 'restamp' ? 'digests re-stamped in the current format' : 'stamp backfilled',
    );
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
    const values = changedValues(hr, seen);
    log.info(
      {
        reason: a.reason,
        sources: [...values.seen, ...a.changedLinks],
        requestedAt: token,
        forced: Flux.forceAt in a.patch.metadata.annotations,
      },
      'release triggered',
    );
    void this.d.events.emit(
      releaseTarget(hr),
      a.reason === 'values-changed'
        ? TriggerEvents.valuesChanged(values, token ?? '')
        : a.reason === 'created-unstamped'
          ? TriggerEvents.createdUnstamped(values, token ?? '')
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
    const values = changedValues(hr, seen);
    log.info(
      { reason: a.reason, sources: [...values.seen, ...a.changedLinks] },
      'release would be triggered (notify-only)',
    );
    void this.d.events.emit(
      releaseTarget(hr),
      a.reason === 'values-changed'
        ? TriggerEvents.valuesChangedNotify(values)
        : a.reason === 'created-unstamped'
          ? TriggerEvents.createdUnstampedNotify(values)
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
    const lockdown = this.d.noCrossNamespaceLinks === true;
    log.warn(
      { source: id, lockdown },
      lockdown
        ? 'cross-namespace link refused: --no-cross-namespace-links'
        : 'cross-namespace link refused: the release does not allow the source namespace',
    );
    const src = parseSourceId(id);
    void this.d.events.emit(
      { apiVersion: 'v1', kind: src.kind, namespace: src.namespace, name: src.name, uid: '' },
      lockdown
        ? TriggerEvents.linkRefusedByLockdown(hr.metadata)
        : TriggerEvents.linkRefused(hr.metadata, src.namespace),
    );
  }

  /** A source from the metadata cache: whether it exists, and its resourceVersion. */
  private sourceMeta(id: SourceId): Cached<SourceMeta> | undefined {
    const src = parseSourceId(id);
    const informer = src.kind === 'ConfigMap' ? this.d.caches.configMaps : this.d.caches.secrets;
    return informer.get(src.namespace, src.name);
  }
}

/** The sources a values change is told about: those seen changing, and those the release consumes. */
function changedValues(hr: HelmRelease, seen: Seen): ChangedValues {
  const consumed = hr.valuesFrom.map((r) => sourceId(r.kind, hr.metadata.namespace, r.name));
  // Seen sources of a release include linked ones; a values change names only the consumed ones.
  return { seen: [...(seen?.sources ?? [])].filter((id) => consumed.includes(id)), consumed };
}
