// Retry state lives in annotations on the HelmRelease, not in memory, so a restart or a new leader
// neither resets nor double-counts it. This module reads it (tolerating anything a user may have typed),
// computes the failure-episode fingerprint, and builds the merge patches that write it.
import { createHash } from 'node:crypto';
import type { HelmRelease } from '../flux/helmrelease.ts';
import type { MergePatch } from '../kube/patch.ts';
import { Annotations, Flux } from '../names.ts';

export interface RetryState {
  /** Retries requested in the recorded episode. */
  attempts: number;
  /** Token (RFC3339) of the last retry: also the value written to requestedAt and forceAt. */
  lastAttempt?: string;
  lastAttemptMs?: number;
  /** Fingerprint of the episode the counters belong to. */
  episode?: string;
  /** When the budget of the recorded episode was spent. */
  exhaustedAt?: string;
}

export interface ReadState {
  state: RetryState;
  /** Malformed annotations, described for a Warning event; their values are treated as absent. */
  problems: string[];
}

const OURS = [
  Annotations.retryAttempts,
  Annotations.retryLastAttempt,
  Annotations.retryEpisode,
  Annotations.retryExhausted,
] as const;

export function hasRetryState(annotations: Readonly<Record<string, string>>): boolean {
  return OURS.some((k) => annotations[k] !== undefined);
}

export function readRetryState(annotations: Readonly<Record<string, string>>): ReadState {
  const problems: string[] = [];
  const state: RetryState = { attempts: 0 };
  const attempts = annotations[Annotations.retryAttempts];
  if (attempts !== undefined) {
    if (/^\d{1,6}$/.test(attempts)) state.attempts = Number(attempts);
    else problems.push(`${Annotations.retryAttempts}: "${clip(attempts)}" is not a non-negative integer`);
  }
  const last = annotations[Annotations.retryLastAttempt];
  if (last !== undefined) {
    const ms = parseTime(last);
    if (ms === undefined)
      problems.push(`${Annotations.retryLastAttempt}: "${clip(last)}" is not an RFC3339 time`);
    else Object.assign(state, { lastAttempt: last, lastAttemptMs: ms });
  }
  const episode = annotations[Annotations.retryEpisode];
  if (episode !== undefined && episode !== '') state.episode = episode;
  const exhausted = annotations[Annotations.retryExhausted];
  if (exhausted !== undefined && exhausted !== '') state.exhaustedAt = exhausted;
  return { state, problems };
}

/**
 * The failure episode: what Flux last tried to release (generation, chart version, values digest).
 * Retries of one desired state share an episode; a new spec, chart or values starts a new one (and a
 * fresh budget). The failure reason is left out on purpose: a retried install can come back as an
 * upgrade failure (Helm keeps the failed release), which must not double the budget.
 */
export function episodeFingerprint(hr: HelmRelease): string {
  const s = hr.status;
  const parts = [
    String(s.lastAttemptedGeneration ?? hr.metadata.generation),
    s.lastAttemptedRevision ?? '',
    s.lastAttemptedConfigDigest ?? '',
  ];
  return createHash('sha256').update(parts.join('\n')).digest('hex').slice(0, 16);
}

/** A token Flux has not handled yet: the time, moved forward by a millisecond until it is new. */
export function freshToken(hr: HelmRelease, nowMs: number): string {
  const used = new Set(
    [
      hr.metadata.annotations[Flux.requestedAt],
      hr.metadata.annotations[Flux.forceAt],
      hr.metadata.annotations[Flux.resetAt],
      hr.status.lastHandledReconcileAt,
      hr.status.lastHandledForceAt,
      hr.status.lastHandledResetAt,
    ].filter((v): v is string => v !== undefined),
  );
  let t = nowMs;
  while (used.has(new Date(t).toISOString())) t++;
  return new Date(t).toISOString();
}

/**
 * The retry: requestedAt and forceAt with one fresh token (Flux honours forceAt only when it equals
 * requestedAt): exactly one more install/upgrade, past Flux's exhausted remediation budget, without
 * resetting Flux's failure counters — they are the episode's count of failed attempts, Flux's own and ours
 * (ADR 0011). resourceVersion makes it conditional: if anyone wrote the release since we read it, the API
 * server answers 409 and nothing is counted twice.
 */
export function retryPatch(hr: HelmRelease, token: string, attempts: number, episode: string): MergePatch {
  return {
    metadata: {
      resourceVersion: hr.metadata.resourceVersion,
      annotations: {
        [Flux.requestedAt]: token,
        [Flux.forceAt]: token,
        [Annotations.retryAttempts]: String(attempts),
        [Annotations.retryLastAttempt]: token,
        [Annotations.retryEpisode]: episode,
        [Annotations.retryExhausted]: null,
      },
    },
  };
}

/** The retry-reset-at token the user set and we have not handled yet, if any. */
export function pendingRestart(annotations: Readonly<Record<string, string>>): string | undefined {
  const token = annotations[Annotations.retryResetAt];
  return token && token !== annotations[Annotations.retryResetHandled] ? token : undefined;
}

/**
 * A restart by hand: our state for the episode is cleared and the token recorded as handled (so it acts
 * once). With `retry`, the release is also asked for one attempt now with requestedAt = resetAt = a fresh
 * token: resetAt clears Flux's failure counters, so both budgets start again.
 */
export function restartPatch(
  hr: HelmRelease,
  handled: string,
  retry?: { token: string; episode: string },
): MergePatch {
  const annotations: Record<string, string | null> = {};
  for (const k of OURS) if (hr.metadata.annotations[k] !== undefined) annotations[k] = null;
  annotations[Annotations.retryResetHandled] = handled;
  if (retry) {
    Object.assign(annotations, {
      [Flux.requestedAt]: retry.token,
      [Flux.resetAt]: retry.token,
      [Annotations.retryAttempts]: '0',
      [Annotations.retryLastAttempt]: retry.token,
      [Annotations.retryEpisode]: retry.episode,
    });
  }
  return { metadata: { resourceVersion: hr.metadata.resourceVersion, annotations } };
}

/** Marks the budget of episode as spent (attempts kept as they are). */
export function exhaustedPatch(hr: HelmRelease, at: string, attempts: number, episode: string): MergePatch {
  return {
    metadata: {
      resourceVersion: hr.metadata.resourceVersion,
      annotations: {
        [Annotations.retryAttempts]: String(attempts),
        [Annotations.retryEpisode]: episode,
        [Annotations.retryExhausted]: at,
      },
    },
  };
}

/** Removes our retry state (the release is Ready: the episode is over). Flux's annotations stay. */
export function clearPatch(hr: HelmRelease): MergePatch {
  const annotations: Record<string, null> = {};
  for (const k of OURS) if (hr.metadata.annotations[k] !== undefined) annotations[k] = null;
  return { metadata: { resourceVersion: hr.metadata.resourceVersion, annotations } };
}

/** Milliseconds of an RFC3339 time, or undefined. */
export function parseTime(s: string): number | undefined {
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/.test(s)) return undefined;
  const ms = Date.parse(s);
  return Number.isFinite(ms) ? ms : undefined;
}

function clip(s: string): string {
  return s.length > 64 ? `${s.slice(0, 61)}...` : s;
}
