// What the webhook stamps on a HelmRelease, and what the reconciler backfills when the webhook was
// bypassed: one function, so the two can never disagree.
import type { ValuesReference } from '../flux/helmrelease.ts';
import { Annotations, Labels } from '../names.ts';
import type { MapChanges } from './jsonpatch.ts';

/** The parts of a HelmRelease the stamp depends on (a parsed HelmRelease fits). */
export interface StampSubject {
  metadata: { annotations: Readonly<Record<string, string>> };
  valuesFrom: readonly ValuesReference[];
}

/** Our keys on a HelmRelease: a string sets one, null removes it. */
export interface Stamp {
  labels: MapChanges;
  annotations: MapChanges;
}

export function isOptedOut(annotations: Readonly<Record<string, string>>): boolean {
  return annotations[Annotations.ignore] === 'true';
}

/** A release is ours when it consumes valuesFrom data and has not opted out. */
export function isManaged(hr: StampSubject): boolean {
  return !isOptedOut(hr.metadata.annotations) && hr.valuesFrom.length > 0;
}

/**
 * The label and digest annotation `hr` should carry. `digest` is the digest to record; undefined means none
 * is known, and then no digest is kept either (a guessed or stale digest would hide a change from the
 * trigger). Releases that opted out or consume no valuesFrom carry neither.
 */
export function desiredStamp(hr: StampSubject, digest: string | undefined): Stamp {
  if (!isManaged(hr)) {
    return { labels: { [Labels.managed]: null }, annotations: { [Annotations.valuesDigest]: null } };
  }
  return {
    labels: { [Labels.managed]: 'true' },
    annotations: { [Annotations.valuesDigest]: digest ?? null },
  };
}
