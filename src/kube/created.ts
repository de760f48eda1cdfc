// Releases the caches saw created while the operator ran (an add after the first list) that carry no stamp of
// ours: admitted while the webhook was down (failurePolicy: Ignore). Which values data Flux read when it first
// reconciled them is unknown, so the trigger decision triggers each one once instead of backfilling its stamp
// silently (src/triggers/decide.ts). Releases of the first list are not remembered: that is the migration case,
// where a backfill without a trigger stays right. Kept per uid until the operator's own write for it (handled),
// not until any stamp: the webhook, back, stamps such a release on its next update with the data of that
// moment, which says nothing of what Flux read at creation. Forgotten too when deleted, opted out or
// consuming nothing; bounded, the oldest forgotten first (a forgotten one gets the old behaviour: a silent
// backfill).
//
// A release created while no replica ran (a rollout that replaced every pod, a node lost) is not seen live: it
// is in the next start's first list. It is told from the migration case by its creation time: created after
// the operator's installation (the digest key Secret's creationTimestamp) and still without our stamp, it was
// admitted while no webhook answered, since the webhook stamps every release it sees (found by the soak).
import { isManaged } from '../admission/stamp.ts';
import type { HelmRelease } from '../flux/helmrelease.ts';
import { Flux, Labels } from '../names.ts';

/**
 * Ours (values, no opt-out), still without our label, and created after the installation (`since`: the digest
 * key Secret's creation, ms): admitted while no webhook answered. Pure: explain asks the same.
 */
export function createdUnstampedAfterInstall(hr: HelmRelease, since: number | undefined): boolean {
  const created = hr.metadata.createdAtMs;
  return since !== undefined && created !== undefined && created > since && !isStamped(hr) && isManaged(hr);
}

/** How many unstamped creations are remembered at most. */
export const MAX_UNSTAMPED_CREATIONS = 10_000;

/** Whether the release carries our stamp's label (the webhook or the reconciler stamped it). */
export function isStamped(hr: HelmRelease): boolean {
  return hr.metadata.labels[Labels.managed] === 'true';
}

/** The release's reconcile request: any new one makes Flux read data at least as new as its moment. */
const requestOf = (hr: HelmRelease) => hr.metadata.annotations[Flux.requestedAt];

export class UnstampedCreations {
  /** uid -> the requestedAt the release carried when seen created (the debt lasts until it changes). */
  private readonly uids = new Map<string, string | undefined>();
  private readonly max: number;
  private readonly installedAt: () => number | undefined;

  /** installedAt: when the operator was installed (ms), once known; default unknown. */
  constructor(max = MAX_UNSTAMPED_CREATIONS, installedAt: () => number | undefined = () => undefined) {
    this.max = max;
    this.installedAt = installedAt;
  }

  /** A release created while the operator runs: remembered when it is ours (values, no opt-out) and unstamped. */
  created(hr: HelmRelease): void {
    const uid = hr.metadata.uid;
    if (!uid || isStamped(hr) || !isManaged(hr)) return;
    if (this.uids.size >= this.max) {
      const oldest = this.uids.keys().next().value;
      if (oldest !== undefined) this.uids.delete(oldest);
    }
    this.uids.set(uid, requestOf(hr));
  }

  /**
   * A release changed: forgotten once it is no longer ours (opted out, or consumes nothing), or once it
   * carries a new reconcile request — whoever wrote it (the leader's trigger, seen by every replica; a user's
   * `flux reconcile`), Flux then reads data at least as new, so a follower that takes over owes nothing.
   */
  updated(hr: HelmRelease): void {
    const uid = hr.metadata.uid;
    if (!this.uids.has(uid)) return;
    if (!isManaged(hr) || requestOf(hr) !== this.uids.get(uid)) this.uids.delete(uid);
  }

  /** The operator wrote its trigger (or its stamp where Flux acts itself): nothing is owed any more. */
  handled(hr: HelmRelease): void {
    this.uids.delete(hr.metadata.uid);
  }

  deleted(hr: HelmRelease): void {
    this.uids.delete(hr.metadata.uid);
  }

  /**
   * True when the release was seen created unstamped and the operator has not written for it since, or
   * when it is still unstamped and was created after the installation (while no replica ran).
   */
  has(hr: HelmRelease): boolean {
    const uid = hr.metadata.uid;
    const owed = this.uids.has(uid) && requestOf(hr) === this.uids.get(uid);
    return owed || this.createdSinceInstall(hr);
  }

  private createdSinceInstall(hr: HelmRelease): boolean {
    return createdUnstampedAfterInstall(hr, this.installedAt());
  }

  get size(): number {
    return this.uids.size;
  }
}
