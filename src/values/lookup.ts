// How the webhook and the reconciler read the data a release consumes. The implementation
// (src/values/store.ts) answers from the operator's caches and fetches only what they cannot answer.
import type { HelmRelease, ValuesReference } from '../flux/helmrelease.ts';
import { type KeyBytes, valuesDigest } from './digest.ts';

export interface ValuesLookup {
  /**
   * Bytes of each ref's valuesKey in `namespace` (null: object or key missing). Rejects when a lookup
   * fails (API error, cache not synced): callers must not guess a digest then.
   */
  resolve(namespace: string, refs: readonly ValuesReference[], signal?: AbortSignal): Promise<KeyBytes>;
  /** True once the caches the lookups read are synced. */
  hasSynced(): boolean;
}

/** The current digest of what `hr` consumes. */
export async function currentDigest(
  lookup: ValuesLookup,
  namespace: string,
  refs: readonly ValuesReference[],
  signal?: AbortSignal,
): Promise<string> {
  return valuesDigest(refs, await lookup.resolve(namespace, refs, signal));
}

export function digestOfRelease(
  lookup: ValuesLookup,
  hr: HelmRelease,
  signal?: AbortSignal,
): Promise<string> {
  return currentDigest(lookup, hr.metadata.namespace, hr.valuesFrom, signal);
}
