// What helm-controller reads of a release's valuesFrom data: the reference model of fluxcd/pkg chartutil's
// ChartValuesFromReferences (v1.27.2, helm-controller v1.6.4; the same in v1.15.0 / v1.4.3 but `literal`).
// Entries are read in order; a ConfigMap's `data[valuesKey]` and a Secret's `data[valuesKey]` only, never
// `binaryData`; a missing object or key is skipped when the entry is `optional` and fails the whole
// composition otherwise (Flux then reports Ready=False ValuesError and reads nothing further). The digest
// (digest.ts) covers exactly what this returns, so it changes exactly when what Flux reads changes.
import type { ValuesReference } from '../flux/helmrelease.ts';

/** One entry as Flux reads it: its bytes, or skipped (optional, and the object or key is missing). */
export interface EntryRead<T = Uint8Array> {
  ref: ValuesReference;
  /** The key's bytes (or what stands for them, e.g. their keyed digest); null: skipped (optional, missing). */
  bytes: T | null;
}

export type FluxReads<T = Uint8Array> =
  /** The composition succeeds (as far as bytes go: YAML and targetPath errors are Flux's to report). */
  | { ok: true; entries: EntryRead<T>[] }
  /** The composition fails at `index`: a required object or key is missing. Nothing is consumed. */
  | { ok: false; index: number; ref: ValuesReference };

/** The entries Flux reads, in order, or the first required one that is missing. */
export function fluxReads<T = Uint8Array>(
  refs: readonly ValuesReference[],
  bytesOf: (ref: ValuesReference) => T | null,
): FluxReads<T> {
  const entries: EntryRead<T>[] = [];
  for (const [index, ref] of refs.entries()) {
    const bytes = bytesOf(ref);
    if (bytes === null && !ref.optional) return { ok: false, index, ref };
    entries.push({ ref, bytes });
  }
  return { ok: true, entries };
}

/** `literal` changes how Flux sets the value only together with a targetPath; without one Flux ignores it. */
export function literalApplies(ref: ValuesReference): boolean {
  return ref.literal === true && ref.targetPath !== '';
}
