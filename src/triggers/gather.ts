// The trigger decision's gatherer: everything decideTrigger looks at, read through one interface. The
// trigger reconciler reads through the operator's caches; `explain` reads through the user's own client.
// Both call this function, so they feed the decision the same input and cannot disagree about a release.
import type { HelmRelease, ValuesSourceKind } from '../flux/helmrelease.ts';
import { Annotations } from '../names.ts';
import { type LinkSourceState, parseLinkDigests, recordedLinks, type TriggerInput } from './decide.ts';
import { parseSourceId, type SourceId, sourceAllowed, sourceId } from './links.ts';

/** Where the gatherer reads. Any method may reject (or throw): the input cannot be gathered then. */
export interface TriggerReads {
  /** The digest of the valuesFrom data the release consumes now. */
  valuesDigest(hr: HelmRelease): Promise<string>;
  /** The same in the older format (or under the previous key) `stored` is in; undefined when it is current. */
  valuesDigestAsStored(hr: HelmRelease, stored: string): Promise<string | undefined>;
  /** The sources whose link annotations name the release now (any namespace). */
  linkedSources(namespace: string, name: string): readonly SourceId[];
  /** A digest over all data of one source; null when it does not exist. */
  dataDigest(kind: ValuesSourceKind, namespace: string, name: string): Promise<string | null>;
  /** dataDigest in the older format `stored` is in; undefined when it is current, null when the source is gone. */
  dataDigestAsStored(
    kind: ValuesSourceKind,
    namespace: string,
    name: string,
    stored: string,
  ): Promise<string | null | undefined>;
  /** Whether a source exists (it may no longer link). */
  exists(id: SourceId): boolean;
  /**
   * Whether helm-controller watches a source itself (it matches --watch-configs-label-selector, with
   * --flux-watches-configs): a change of its data is Flux's to act on.
   */
  fluxWatched(id: SourceId): boolean;
  /** Sources seen changing since the release was last handled; undefined when unknown (after a start, explain). */
  changedSources?(hr: HelmRelease): readonly SourceId[] | undefined;
  /**
   * Whether the caches saw the release created while the operator ran, without our stamp (src/kube/created.ts);
   * absent where that is unknown (explain).
   */
  createdUnstamped?(hr: HelmRelease): boolean;
}

/** Operator settings the gatherer applies (--no-cross-namespace-links refuses every cross-namespace link). */
export interface GatherPolicy {
  noCrossNamespaceLinks: boolean;
}

/** The one input of decideTrigger for a release that is not skipped before the lookup. */
export async function gatherTriggerInput(
  hr: HelmRelease,
  reads: TriggerReads,
  policy: GatherPolicy,
): Promise<TriggerInput> {
  const valuesDigest = hr.valuesFrom.length > 0 ? await reads.valuesDigest(hr) : undefined;
  const stored = hr.metadata.annotations[Annotations.valuesDigest];
  // Only when the recorded digest differs: it may be the same data in an older format (or key).
  const storedFormatDigest =
    valuesDigest !== undefined && stored !== undefined && stored !== valuesDigest
      ? await reads.valuesDigestAsStored(hr, stored)
      : undefined;
  const changedSources = reads.changedSources?.(hr);
  const createdUnstamped = reads.createdUnstamped?.(hr) === true;
  return {
    hr,
    valuesDigest,
    ...(storedFormatDigest !== undefined ? { storedFormatDigest } : {}),
    links: await linkSources(hr, reads, policy),
    fluxWatched: fluxWatchedSources(hr, reads),
    ...(changedSources ? { changedSources } : {}),
    ...(createdUnstamped ? { createdUnstamped } : {}),
  };
}

/** The sources the release consumes through valuesFrom that helm-controller watches itself. */
function fluxWatchedSources(hr: HelmRelease, reads: TriggerReads): SourceId[] {
  const ns = hr.metadata.namespace;
  return hr.valuesFrom.map((r) => sourceId(r.kind, ns, r.name)).filter((id) => reads.fluxWatched(id));
}

/** The state of every source that links to the release now, or is recorded on it. */
async function linkSources(
  hr: HelmRelease,
  reads: TriggerReads,
  policy: GatherPolicy,
): Promise<Record<SourceId, LinkSourceState>> {
  const { namespace, name, annotations } = hr.metadata;
  const recorded = parseLinkDigests(annotations[Annotations.linkDigests]);
  const out: Record<SourceId, LinkSourceState> = {};
  for (const id of reads.linkedSources(namespace, name)) {
    const src = parseSourceId(id);
    if (!sourceAllowed(namespace, annotations, src.namespace, policy.noCrossNamespaceLinks)) {
      out[id] = { state: 'refused' };
      continue;
    }
    const digest = await reads.dataDigest(src.kind, src.namespace, src.name);
    if (digest === null) {
      out[id] = { state: 'gone' };
      continue;
    }
    const stored = recorded[id];
    const storedFormatDigest =
      stored !== undefined && stored !== digest
        ? await reads.dataDigestAsStored(src.kind, src.namespace, src.name, stored)
        : undefined;
    out[id] =
      typeof storedFormatDigest === 'string'
        ? { state: 'linked', digest, storedFormatDigest }
        : { state: 'linked', digest };
  }
  for (const id of recordedLinks(hr)) {
    if (!(id in out)) out[id] = reads.exists(id) ? { state: 'unlinked' } : { state: 'gone' };
  }
  return out;
}
