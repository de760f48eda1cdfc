// Releases the caches saw created while the operator ran (an add after the first list) that carry no stamp of
// ours: admitted while the webhook was down (failurePolicy: Ignore). Which values data Flux read when it first
// reconciled them is unknown, so the trigger decision triggers each one once instead of backfilling its stamp
// silently (src/triggers/decide.ts). Releases of the first list are not remembered: that is the migration case,
// where a backfill without a trigger stays right. Kept per uid, forgotten once the release is stamped or
// deleted; bounded, the oldest forgotten first (a forgotten one gets the old behaviour: a silent backfill).
import type { HelmRelease } from '../flux/helmrelease.ts';
import { Labels } from '../names.ts';

/** How many unstamped creations are remembered at most. */
export const MAX_UNSTAMPED_CREATIONS = 10_000;

/** Whether the release carries our stamp's label (the webhook or the reconciler stamped it). */
export function isStamped(hr: HelmRelease): boolean {
  return hr.metadata.labels[Labels.managed] === 'true';
}

export class UnstampedCreations {
  private readonly uids = new Set<string>();
  private readonly max: number;

  constructor(max = MAX_UNSTAMPED_CREATIONS) {
    this.max = max;
  }

  /** A release created while the operator runs: remembered when it consumes values and is not stamped. */
  created(hr: HelmRelease): void {
    const uid = hr.metadata.uid;
    if (!uid || isStamped(hr) || hr.valuesFrom.length === 0) return;
    if (this.uids.size >= this.max) {
      const oldest = this.uids.values().next().value;
      if (oldest !== undefined) this.uids.delete(oldest);
    }
    this.uids.add(uid);
  }

  /** A release changed: forgotten once it carries our stamp or consumes nothing. */
  updated(hr: HelmRelease): void {
    if (isStamped(hr) || hr.valuesFrom.length === 0) this.uids.delete(hr.metadata.uid);
  }

  deleted(hr: HelmRelease): void {
    this.uids.delete(hr.metadata.uid);
  }

  /** True when the release was seen created unstamped and has not been stamped since. */
  has(hr: HelmRelease): boolean {
    return this.uids.has(hr.metadata.uid) && !isStamped(hr);
  }

  get size(): number {
    return this.uids.size;
  }
}
