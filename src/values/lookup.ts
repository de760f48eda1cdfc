// How the webhook and the reconciler get the digest of the data a release consumes. The implementation
// (src/values/store.ts) answers from the operator's caches, fetches only what they cannot answer, and
// computes the digest with valuesDigest (src/values/digest.ts): one function for both callers.
import type { ValuesReference } from '../flux/helmrelease.ts';

export interface ValuesLookup {
  /**
   * The values digest of `refs` in `namespace`, in the current format. Rejects when a lookup fails (API
   * error, cache not synced, digest key not loaded): callers must not guess a digest then.
   */
  valuesDigest(namespace: string, refs: readonly ValuesReference[], signal?: AbortSignal): Promise<string>;
  /** True once the caches the lookups read are synced. */
  hasSynced(): boolean;
}
