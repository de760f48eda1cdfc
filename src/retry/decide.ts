// The retry state machine: given the classification of a release, its stored retry state and the time,
// one action. Pure, so the table test (decide.test.ts) reads like the specification; one row per line:
//
//   a new retry-reset-at token       -> restart (our state cleared, token handled; retry now if one is due)
//   ready, with state stored         -> clear (the episode is over; a later failure gets a fresh budget)
//   retry, new episode               -> the counters start at 0
//   retry, failed < max+1, not due   -> wait (requeue at the due time)
//   retry, failed < max+1, due       -> retry (requestedAt = forceAt = token, attempts + 1)
//   retry, failed >= max+1           -> exhaust once (annotation, Warning event), then nothing
//   anything else                    -> nothing (Flux's turn, or not ours to touch)
//
// "failed" counts the episode's failed install/upgrade attempts, Flux's own and ours: Flux's counters
// (installFailures + upgradeFailures, which a retry with forceAt never resets), and at least our retries
// + 1. So `remediation.retries: N` never multiplies our budget: an episode has at most max(N+1, max+1)
// failed attempts (ADR 0011).
import type { HelmRelease } from '../flux/helmrelease.ts';
import type { MergePatch } from '../kube/patch.ts';
import { type BackoffPolicy, backoffDelay } from './backoff.ts';
import { type Classification, type ClassifyPolicy, classifyFailure, ignoredSettings } from './classify.ts';
import {
  clearPatch,
  episodeFingerprint,
  exhaustedPatch,
  freshToken,
  hasRetryState,
  pendingRestart,
  type RetryState,
  readRetryState,
  restartPatch,
  retryPatch,
} from './state.ts';

export interface RetryLimits extends BackoffPolicy {
  /** Retries per episode: the episode ends after maxAttempts + 1 failed attempts, Flux's own included. */
  maxAttempts: number;
}

export type Action =
  | { kind: 'none'; why: string }
  | { kind: 'clear'; patch: MergePatch }
  | { kind: 'wait'; delayMs: number; attempt: number; episode: string }
  | { kind: 'retry'; patch: MergePatch; token: string; attempt: number; episode: string }
  | { kind: 'exhaust'; patch: MergePatch; attempts: number; failed: number; episode: string }
  | { kind: 'exhausted'; attempts: number; episode: string }
  /** A retry-reset-at token: with `token`, a retry is requested now as well. */
  | { kind: 'restart'; patch: MergePatch; handled: string; token?: string; episode: string };

/** Everything decideRetry looks at, read from the release once per reconcile. */
export interface RetryInput {
  release: HelmRelease;
  classification: Classification;
  /** The retry state stored on the release. */
  state: RetryState;
  /** Malformed per-release settings (patterns, stored state) that were ignored: for a Warning event. */
  problems: string[];
  /** Per-release annotations present but ignored by a lockdown flag (--no-release-retry-patterns). */
  ignored: string[];
}

/** Classifies the release and reads its stored retry state: the reconciler's input, from the release alone. */
export function retryInput(release: HelmRelease, policy: ClassifyPolicy): RetryInput {
  const classification = classifyFailure(release, policy);
  const read = readRetryState(release.metadata.annotations);
  return {
    release,
    classification,
    state: read.state,
    problems: [...classification.warnings, ...read.problems],
    ignored: ignoredSettings(release, policy),
  };
}

/** Failed install/upgrade attempts of the episode: Flux's counters, and at least our retries + 1. */
export function failedAttempts(hr: HelmRelease, ourRetries: number): number {
  return Math.max(hr.status.installFailures + hr.status.upgradeFailures, ourRetries + 1);
}

/** The one action for a release now (see the table above). */
export function decideRetry(input: RetryInput, limits: RetryLimits, nowMs: number): Action {
  const { release: hr, classification: c, state } = input;
  const restart = pendingRestart(hr.metadata.annotations);
  if (restart && c.verdict !== 'opted-out' && c.verdict !== 'deleting') {
    const episode = episodeFingerprint(hr);
    if (c.verdict !== 'retry')
      return { kind: 'restart', patch: restartPatch(hr, restart), handled: restart, episode };
    const token = freshToken(hr, nowMs);
    const patch = restartPatch(hr, restart, { token, episode });
    return { kind: 'restart', patch, handled: restart, token, episode };
  }
  if (c.verdict === 'ready') {
    return hasRetryState(hr.metadata.annotations)
      ? { kind: 'clear', patch: clearPatch(hr) }
      : { kind: 'none', why: c.reason };
  }
  if (c.verdict !== 'retry' || !c.failure) return { kind: 'none', why: c.reason };

  const episode = episodeFingerprint(hr);
  const same = state.episode === episode;
  const attempts = same ? state.attempts : 0;
  const failed = failedAttempts(hr, attempts);
  if (failed > limits.maxAttempts) {
    if (same && state.exhaustedAt) return { kind: 'exhausted', attempts, episode };
    const at = new Date(nowMs).toISOString();
    return { kind: 'exhaust', patch: exhaustedPatch(hr, at, attempts, episode), attempts, failed, episode };
  }
  // The delay runs from the end of the last attempt: Flux's (the failing conditions' transition) or,
  // when Flux has not reported back in a way that moved them, our last request. Both are stored on the
  // release, so the due time is the same on every evaluation. (Flux always sets lastTransitionTime; if
  // neither is known the release is due at once rather than never.)
  const last = same ? state.lastAttemptMs : undefined;
  const from = Math.max(c.failure.endedAtMs ?? Number.NEGATIVE_INFINITY, last ?? Number.NEGATIVE_INFINITY);
  const due = from + backoffDelay(attempts, limits, `${hr.metadata.uid}/${episode}/${attempts}`);
  if (nowMs < due) return { kind: 'wait', delayMs: due - nowMs, attempt: attempts + 1, episode };
  const token = freshToken(hr, nowMs);
  return {
    kind: 'retry',
    patch: retryPatch(hr, token, attempts + 1, episode),
    token,
    attempt: attempts + 1,
    episode,
  };
}
