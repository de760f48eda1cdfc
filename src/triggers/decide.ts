// The trigger decision, pure: given a release (from the cache), the current digest of the values it consumes
// and the state of every source that links to it, skip it, backfill our stamp without a reconcile, or
// trigger it with one merge patch; and name the links it refuses. The patch carries
// metadata.resourceVersion as a precondition: a digest computed from a release that has changed since it
// was read is never written (the API server answers 409 and the key is reconciled again).
// A digest stored in an older format (v1, or v2 under the previous key; src/values/digest.ts) is compared
// with the current data digested in that format, which the gatherer supplies: equal means the data did not
// change, and the release is re-stamped in the current format without a reconcile.
// A trigger is held while helm-controller works on the release (src/flux/activity.ts): nothing is written,
// the digests keep differing, and the trigger is sent once Flux is done — never into a running upgrade, and
// no change lost.
// A release without our stamp is backfilled without a trigger when it was there before the operator started
// (the migration case); one the operator saw created unstamped while it ran (admitted during a webhook outage)
// is triggered once, since nobody knows which data Flux read at its creation (src/kube/created.ts).
import { desiredStamp, isOptedOut } from '../admission/stamp.ts';
import { fluxActivity } from '../flux/activity.ts';
import type { HelmRelease } from '../flux/helmrelease.ts';
import { type MapChanges, type MergePatch, mapChanges } from '../kube/patch.ts';
import { Annotations, Flux, Labels } from '../names.ts';
import { type SourceId, sourceId } from './links.ts';

/** What the gatherer found about one ConfigMap/Secret that links to the release now or is recorded on it. */
export type LinkSourceState =
  /**
   * Links to the release from a namespace it allows: the digest of its data now and, when the recorded one
   * is in an older format, the data now in that format.
   */
  | { state: 'linked'; digest: string; storedFormatDigest?: string }
  /** Links to the release from a namespace it does not allow; never looked up. */
  | { state: 'refused' }
  /** Recorded on the release, still there, but no longer links to it. */
  | { state: 'unlinked' }
  /** Does not exist: deleted while linked, or recorded and deleted since. */
  | { state: 'gone' };

export interface TriggerInput {
  hr: HelmRelease;
  /** Digest of the valuesFrom data now; undefined when the release consumes none. */
  valuesDigest: string | undefined;
  /** When the recorded values digest is in an older format: the valuesFrom data now, digested in it. */
  storedFormatDigest?: string;
  /** Every source that links to the release now or is recorded in its link-digests annotation. */
  links: Readonly<Record<SourceId, LinkSourceState>>;
  /**
   * Sources the release consumes through valuesFrom that helm-controller watches itself (they match
   * --watch-configs-label-selector, with --flux-watches-configs): a change of theirs is Flux's to act on.
   */
  fluxWatched?: readonly SourceId[];
  /** Sources seen changing since the release was last handled; undefined when unknown (e.g. after a start). */
  changedSources?: readonly SourceId[];
  /**
   * The operator saw the release created while it ran, without our stamp (the webhook was bypassed): the data
   * Flux read at creation is unknown. Absent when unknown (explain) or for a release of the first list.
   */
  createdUnstamped?: true;
}

export interface TriggerOptions {
  /** --force: every trigger also sets forceAt. */
  force: boolean;
  /** A fresh reconcile token (RFC3339Nano time) for this write. */
  token: string;
  /** --no-release-force: the release's own force annotation is not read (--force still applies). */
  ignoreReleaseForce?: boolean;
  /** The time, for the in-flight bound of a condition a dead controller left behind. */
  nowMs: number;
}

/** The link-digests value of a linked source that is gone: its return (or its deletion) is a change. */
export const MISSING_LINK = 'missing';

export type SkipReason = 'ignored' | 'deleting' | 'suspended' | 'unchanged' | 'in-flight';
/** created-unstamped: created while the operator ran, admitted without our stamp; triggered once. */
export type TriggerReason = 'values-changed' | 'link-changed' | 'created-unstamped';
/** restamp: digests recorded in an older format, data unchanged, recorded again in the current one. */
export type BackfillReason = 'stamp' | 'link-digests' | 'restamp' | 'flux-watched';

export type TriggerAction =
  | { action: 'skip'; reason: Exclude<SkipReason, 'in-flight'> }
  /**
   * A trigger held while Flux works on the release: look again when its status changes, or at `recheckAtMs`
   * (when a "Running ..." condition stops counting); `why` says what Flux is doing.
   */
  | { action: 'skip'; reason: 'in-flight'; why: string; recheckAtMs?: number }
  | { action: 'backfill'; reason: BackfillReason; patch: MergePatch }
  | {
      action: 'trigger';
      reason: TriggerReason;
      patch: MergePatch;
      /** Linked sources whose data changed. */
      changedLinks: SourceId[];
      /** The values digest recorded by this write (notify-only tells each one once). */
      newDigest: string | undefined;
    };

export interface TriggerDecision {
  /** The one thing to do with the release. */
  action: TriggerAction;
  /** Linked sources the release does not allow (cross-namespace without its opt-in): told, never followed. */
  refused: SourceId[];
}

/** One action for the release, and the links it refuses (told for releases past the early skips only). */
export function decideTrigger(input: TriggerInput, options: TriggerOptions): TriggerDecision {
  const early = skipBeforeLookup(input.hr);
  if (early) return { action: { action: 'skip', reason: early }, refused: [] };
  const refused = Object.keys(input.links)
    .filter((id) => input.links[id]?.state === 'refused')
    .sort();
  return { action: releaseAction(input, options), refused };
}

/**
 * The tombstone rule: the link digests to record. A linked source records its data digest; one that is gone
 * records a tombstone, so its deletion is a change and so is its return (kubectl replace --force, secret
 * managers that recreate). One that still exists but no longer links, or that is refused, is dropped.
 */
export function linkDigests(links: Readonly<Record<SourceId, LinkSourceState>>): Record<SourceId, string> {
  const out: Record<SourceId, string> = {};
  for (const [id, s] of Object.entries(links)) {
    if (s.state === 'linked') out[id] = s.digest;
    else if (s.state === 'gone') out[id] = MISSING_LINK;
  }
  return out;
}

/** The sources recorded in a release's link-digests annotation (the gatherer looks each one up). */
export function recordedLinks(hr: HelmRelease): SourceId[] {
  return Object.keys(parseLinkDigests(hr.metadata.annotations[Annotations.linkDigests]));
}

/** What to do with a release that is not skipped before the lookup, given the digests of what it consumes. */
function releaseAction(input: TriggerInput, options: TriggerOptions): TriggerAction {
  const { hr, valuesDigest } = input;
  const links = linkDigests(input.links);
  const valuesChanged = valuesDigestChanged(hr, valuesDigest, input.storedFormatDigest);
  const createdUnstamped = createdWithoutStamp(input);
  const changedLinks = changedLinkSources(hr, input.links);
  const { labels, annotations } = recordChanges(hr, valuesDigest, links);
  const patch = (extra: MapChanges): MergePatch => ({
    metadata: {
      resourceVersion: hr.metadata.resourceVersion,
      ...(Object.keys(labels).length > 0 ? { labels } : {}),
      annotations: { ...annotations, ...extra },
    },
  });

  // helm-controller reconciles by itself on changes of the sources it watches: record the digest only.
  if ((valuesChanged || createdUnstamped) && changedLinks.length === 0 && changeWatchedByFlux(input)) {
    return { action: 'backfill', reason: 'flux-watched', patch: patch({}) };
  }
  if (valuesChanged || createdUnstamped || changedLinks.length > 0) {
    const flux = fluxActivity(hr, options.nowMs);
    if (flux.busy) {
      return {
        action: 'skip',
        reason: 'in-flight',
        why: flux.detail,
        ...(flux.untilMs !== undefined ? { recheckAtMs: flux.untilMs } : {}),
      };
    }
    return {
      action: 'trigger',
      reason: valuesChanged ? 'values-changed' : createdUnstamped ? 'created-unstamped' : 'link-changed',
      patch: patch(reconcileRequest(hr, options)),
      changedLinks,
      newDigest: valuesDigest,
    };
  }
  if (Object.keys(labels).length > 0 || Object.keys(annotations).length > 0) {
    return { action: 'backfill', reason: backfillReason(input, labels, annotations), patch: patch({}) };
  }
  return { action: 'skip', reason: 'unchanged' };
}

/** Why a write without a trigger: only re-stamps of older formats, only link digests, or our stamp. */
function backfillReason(
  input: TriggerInput,
  labels: Record<string, string | null>,
  annotations: Record<string, string | null>,
): BackfillReason {
  const stored = input.hr.metadata.annotations;
  const restamped = (key: string) =>
    key === Annotations.valuesDigest
      ? input.storedFormatDigest !== undefined && stored[key] === input.storedFormatDigest
      : key === Annotations.linkDigests && linksRestampedOnly(input);
  const keys = Object.keys(annotations);
  if (Object.keys(labels).length === 0 && keys.every(restamped)) return 'restamp';
  if (Object.keys(labels).length === 0 && keys.length === 1 && keys[0] === Annotations.linkDigests)
    return 'link-digests';
  return 'stamp';
}

/** True when the link digests differ from the recorded ones only by re-stamps of older formats. */
function linksRestampedOnly(input: TriggerInput): boolean {
  const stored = parseLinkDigests(input.hr.metadata.annotations[Annotations.linkDigests]);
  const now = linkDigests(input.links);
  const ids = new Set([...Object.keys(stored), ...Object.keys(now)]);
  let restamps = 0;
  for (const id of ids) {
    if (stored[id] === now[id]) continue;
    const s = input.links[id];
    if (s?.state !== 'linked' || s.storedFormatDigest === undefined || stored[id] !== s.storedFormatDigest)
      return false;
    restamps++;
  }
  return restamps > 0;
}

/**
 * Whether the values change is one helm-controller acts on by itself: every source the release consumes is
 * watched by it, or every consumed source seen changing is. Unknown changes (after a start) of a release
 * that also consumes unwatched sources are ours, so nothing is lost (at worst Flux reconciles twice, the
 * second time without a new revision).
 */
export function changeWatchedByFlux(
  input: Pick<TriggerInput, 'hr' | 'fluxWatched' | 'changedSources'>,
): boolean {
  const watched = new Set(input.fluxWatched ?? []);
  if (watched.size === 0) return false;
  const ns = input.hr.metadata.namespace;
  const consumed = new Set(input.hr.valuesFrom.map((r) => sourceId(r.kind, ns, r.name)));
  if ([...consumed].every((id) => watched.has(id))) return true;
  const changed = (input.changedSources ?? []).filter((id) => consumed.has(id));
  return changed.length > 0 && changed.every((id) => watched.has(id));
}

/**
 * Seen created while the operator ran, consuming values, and still without our label: the webhook never saw it,
 * and a change between its creation (when Flux may have read the data) and now would be lost by a backfill.
 */
/** Seen created unstamped and not yet written for by the operator (whoever stamped it since). */
function createdWithoutStamp(input: TriggerInput): boolean {
  return input.createdUnstamped === true && input.valuesDigest !== undefined;
}

function valuesDigestChanged(
  hr: HelmRelease,
  valuesDigest: string | undefined,
  storedFormatDigest: string | undefined,
): boolean {
  const stored = hr.metadata.annotations[Annotations.valuesDigest];
  // Labelled but without a digest: the webhook saw the release but its lookup failed, so Flux may have
  // reconciled with data older than now. Trigger once rather than record a digest nobody reconciled with.
  // (A release the webhook never saw has no label: its stamp is backfilled without a trigger, unless the
  // operator saw it created while it ran: createdWithoutStamp.)
  const digestUnknown = stored === undefined && hr.metadata.labels[Labels.managed] === 'true';
  // An older format that matches the data now is the same data: re-stamped, not triggered.
  const sameInOlderFormat = storedFormatDigest !== undefined && stored === storedFormatDigest;
  return (
    valuesDigest !== undefined &&
    (digestUnknown || (stored !== undefined && stored !== valuesDigest && !sameInOlderFormat))
  );
}

/** Linked sources whose data differs from the recorded digest (in its format), sorted. */
function changedLinkSources(hr: HelmRelease, links: Readonly<Record<SourceId, LinkSourceState>>): SourceId[] {
  const stored = parseLinkDigests(hr.metadata.annotations[Annotations.linkDigests]);
  const now = linkDigests(links);
  // A link seen for the first time is recorded, not triggered: its earlier data is unknown.
  return Object.keys(now)
    .filter((id) => {
      const recorded = stored[id];
      if (recorded === undefined || recorded === now[id]) return false;
      const s = links[id];
      return !(
        s?.state === 'linked' &&
        s.storedFormatDigest !== undefined &&
        recorded === s.storedFormatDigest
      );
    })
    .sort();
}

/** Our stamp (label, values digest) and the link digests, as changes to what the release carries. */
function recordChanges(
  hr: HelmRelease,
  valuesDigest: string | undefined,
  links: Readonly<Record<SourceId, string>>,
): { labels: Record<string, string | null>; annotations: Record<string, string | null> } {
  const meta = hr.metadata;
  const stamp = desiredStamp(hr, valuesDigest);
  const labels = mapChanges(meta.labels, stamp.labels);
  const annotations = mapChanges(meta.annotations, stamp.annotations);
  const linksValue = formatLinkDigests(links);
  if (linksValue !== (meta.annotations[Annotations.linkDigests] ?? null)) {
    annotations[Annotations.linkDigests] = linksValue;
  }
  return { labels, annotations };
}

/** requestedAt = the token, and forceAt/resetAt with the same token where asked for or still pending. */
function reconcileRequest(hr: HelmRelease, options: TriggerOptions): MapChanges {
  const releaseForce = !options.ignoreReleaseForce && hr.metadata.annotations[Annotations.force] === 'true';
  const force = options.force || releaseForce;
  return {
    [Flux.requestedAt]: options.token,
    ...(force || pendingWithRequest(hr, Flux.forceAt, hr.status.lastHandledForceAt)
      ? { [Flux.forceAt]: options.token }
      : {}),
    ...(pendingWithRequest(hr, Flux.resetAt, hr.status.lastHandledResetAt)
      ? { [Flux.resetAt]: options.token }
      : {}),
  };
}

/**
 * True when `annotation` (forceAt or resetAt) was written with the current requestedAt and Flux has not
 * handled it yet. A new requestedAt must carry it along with the new token, or Flux would see the two
 * differ and drop it. (A trigger is never sent while that requestedAt is pending; but a reconcile that fails
 * before the release step — ValuesError, SourceNotReady — records the requestedAt as handled without ever
 * evaluating forceAt/resetAt: a retry's forceAt then still waits, and the trigger carries it.)
 */
function pendingWithRequest(hr: HelmRelease, annotation: string, lastHandled: string | undefined): boolean {
  const value = hr.metadata.annotations[annotation];
  return value !== undefined && value === hr.metadata.annotations[Flux.requestedAt] && value !== lastHandled;
}

/** Skips that need no digest, so the reconciler can take them without any lookup. */
export function skipBeforeLookup(hr: HelmRelease): Exclude<SkipReason, 'in-flight'> | undefined {
  if (isOptedOut(hr.metadata.annotations)) return 'ignored';
  if (hr.metadata.deletionTimestamp) return 'deleting';
  // Left alone while suspended; the digests still differ on resume, so the change is caught up then.
  if (hr.suspend) return 'suspended';
  return undefined;
}

/** The link-digests annotation; anything malformed reads as empty (the next write repairs it). */
export function parseLinkDigests(raw: string | undefined): Record<SourceId, string> {
  if (!raw) return {};
  try {
    const v: unknown = JSON.parse(raw);
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return {};
    const out: Record<SourceId, string> = {};
    for (const [k, d] of Object.entries(v)) if (typeof d === 'string') out[k] = d;
    return out;
  } catch {
    return {};
  }
}

/** Canonical form (sorted keys), so an unchanged set of links never differs textually; null when empty. */
export function formatLinkDigests(links: Readonly<Record<SourceId, string>>): string | null {
  const keys = Object.keys(links).sort();
  if (keys.length === 0) return null;
  return JSON.stringify(Object.fromEntries(keys.map((k) => [k, links[k]])));
}
