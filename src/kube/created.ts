// Releases the caches saw created while the operator ran (an add after the first list) that carry no stamp of
// ours: admitted while the webhook was down (failurePolicy: Ignore). Which values data Flux read when it first
// reconciled them is unknown, so the trigger decision triggers each one once instead of backfilling its stamp
// silently (src/triggers/decide.ts). Releases of the first list are not remembered: that is the migration case,
// where a backfill without a trigger stays right. Kept per uid until the operator's own write for it (handled),
// not until any stamp: the webhook, back, stamps such a release on its next update with the data of that
// moment, which says nothing of what Flux read at creation. Forgotten too when deleted, opted out or
// consuming nothing; bounded, the oldest forgotten first (a forgotten one gets the old behaviour: a silent
// backfill).
import { isManaged } from '../admission/stamp.ts';
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

  /** A release created while the operator runs: remembered when it is ours (values, no opt-out) and unstamped. */
  created(hr: HelmRelease): void {
    const uid = hr.metadata.uid;
    if (!uid || isStamped(hr) || !isManaged(hr)) return;
    if (this.uids.size >= this.max) {
      const oldest = this.uids.values().next().value;
      if (oldest !== undefined) this.uids.delete(oldest);
    }
    this.uids.add(uid);
  }

  /** A release changed: forgotten once it is no longer ours (opted out, or consumes nothing). */
  updated(hr: HelmRelease): void {
    if (!isManaged(hr)) this.uids.delete(hr.metadata.uid);
  }

  /** The operator wrote its trigger (or its stamp where Flux acts itself): nothing is owed any more. */
  handled(hr: HelmRelease): void {
    this.uids.delete(hr.metadata.uid);
  }

  deleted(hr: HelmRelease): void {
    this.uids.delete(hr.metadata.uid);
  }

  /** True when the release was seen created unstamped and the operator has not written for it since. */
  has(hr: HelmRelease): boolean {
    return this.uids.has(hr.metadata.uid);
  }

  get size(): number {
    return this.uids.size;
  }
}
