// The trigger decision, pure: given a release (from the cache) and the current digests of what it consumes,
// skip it, backfill our stamp without a reconcile, or trigger it with one merge patch. The patch carries
// metadata.resourceVersion as a precondition: a digest computed from a release that has changed since it
// was read is never written (the API server answers 409 and the key is reconciled again).
import { desiredStamp, isOptedOut } from '../admission/stamp.ts';
import type { HelmRelease } from '../flux/helmrelease.ts';
import { type MapChanges, type MergePatch, mapChanges } from '../kube/patch.ts';
import { Annotations, Flux, Labels } from '../names.ts';
import type { SourceId } from './links.ts';

export interface TriggerInput {
  hr: HelmRelease;
  /** Digest of the valuesFrom data now; undefined when the release consumes none. */
  valuesDigest: string | undefined;
  /** Data digests of the linked sources allowed to trigger this release, by source. */
  links: Readonly<Record<SourceId, string>>;
}

export interface TriggerOptions {
  /** --force: every trigger also sets forceAt. */
  force: boolean;
  /** A fresh reconcile token (RFC3339Nano time) for this write. */
  token: string;
}

/** The link-digests value of a linked source that is gone: its return (or its deletion) is a change. */
export const MISSING_LINK = 'missing';

export type SkipReason = 'ignored' | 'deleting' | 'suspended' | 'unchanged';
export type TriggerReason = 'values-changed' | 'link-changed';
export type BackfillReason = 'stamp' | 'link-digests';

export type TriggerDecision =
  | { action: 'skip'; reason: SkipReason }
  | { action: 'backfill'; reason: BackfillReason; patch: MergePatch }
  | {
      action: 'trigger';
      reason: TriggerReason;
      patch: MergePatch;
      /** Linked sources whose data changed (values changes are described by the digests). */
      changedLinks: SourceId[];
      oldDigest: string | undefined;
      newDigest: string | undefined;
    };

export function decideTrigger(input: TriggerInput, options: TriggerOptions): TriggerDecision {
  const { hr, valuesDigest, links } = input;
  const meta = hr.metadata;
  const early = skipBeforeLookup(hr);
  if (early) return { action: 'skip', reason: early };

  const stored = meta.annotations[Annotations.valuesDigest];
  // Labelled but without a digest: the webhook saw the release but its lookup failed, so Flux may have
  // reconciled with data older than now. Trigger once rather than record a digest nobody reconciled with.
  // (A release the webhook never saw has no label: its stamp is backfilled without a trigger.)
  const digestUnknown = stored === undefined && meta.labels[Labels.managed] === 'true';
  const valuesChanged =
    valuesDigest !== undefined && (digestUnknown || (stored !== undefined && stored !== valuesDigest));
  const storedLinks = parseLinkDigests(meta.annotations[Annotations.linkDigests]);
  // A link seen for the first time is recorded, not triggered: its earlier data is unknown.
  const changedLinks = Object.keys(links)
    .filter((id) => storedLinks[id] !== undefined && storedLinks[id] !== links[id])
    .sort();

  const stamp = desiredStamp(hr, valuesDigest);
  const labels = mapChanges(meta.labels, stamp.labels);
  const annotations: Record<string, string | null> = { ...mapChanges(meta.annotations, stamp.annotations) };
  const linksValue = formatLinkDigests(links);
  if (linksValue !== (meta.annotations[Annotations.linkDigests] ?? null)) {
    annotations[Annotations.linkDigests] = linksValue;
  }
  const patch = (extra: MapChanges): MergePatch => ({
    metadata: {
      resourceVersion: meta.resourceVersion,
      ...(Object.keys(labels).length > 0 ? { labels } : {}),
      annotations: { ...annotations, ...extra },
    },
  });

  if (valuesChanged || changedLinks.length > 0) {
    const force = options.force || meta.annotations[Annotations.force] === 'true';
    return {
      action: 'trigger',
      reason: valuesChanged ? 'values-changed' : 'link-changed',
      patch: patch({
        [Flux.requestedAt]: options.token,
        ...(force || pendingWithRequest(hr, Flux.forceAt, hr.status.lastHandledForceAt)
          ? { [Flux.forceAt]: options.token }
          : {}),
        ...(pendingWithRequest(hr, Flux.resetAt, hr.status.lastHandledResetAt)
          ? { [Flux.resetAt]: options.token }
          : {}),
      }),
      changedLinks,
      oldDigest: stored,
      newDigest: valuesDigest,
    };
  }
  if (Object.keys(labels).length > 0 || Object.keys(annotations).length > 0) {
    const onlyLinks =
      Object.keys(labels).length === 0 &&
      Object.keys(annotations).length === 1 &&
      Annotations.linkDigests in annotations;
    return { action: 'backfill', reason: onlyLinks ? 'link-digests' : 'stamp', patch: patch({}) };
  }
  return { action: 'skip', reason: 'unchanged' };
}

/**
 * True when `annotation` (forceAt or resetAt) was written with the pending requestedAt and Flux has not
 * handled it yet. A new requestedAt must carry it along with the new token, or Flux would see the two
 * differ and drop it (e.g. a retry's resetAt overtaken by a trigger).
 */
function pendingWithRequest(hr: HelmRelease, annotation: string, lastHandled: string | undefined): boolean {
  const value = hr.metadata.annotations[annotation];
  return value !== undefined && value === hr.metadata.annotations[Flux.requestedAt] && value !== lastHandled;
}

/** Skips that need no digest, so the reconciler can take them without any lookup. */
export function skipBeforeLookup(hr: HelmRelease): SkipReason | undefined {
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
