// Should this release be retried? A pure function of the HelmRelease, in the shape of helm-controller's
// own state determination: named checks in order, the first that applies decides. Only an install or
// upgrade that failed on a transient error, and that Flux will not retry by itself, is retryable.
//
// The condition shapes are helm-controller v1.x's (internal/reconcile, api/v2):
// - the release action failed: Released=False, reason InstallFailed/UpgradeFailed, message
//   "Helm upgrade failed for release <ns>/<name> with chart <c>@<v>: <Helm error>"; Ready mirrors it;
// - a remediation ran afterwards: Ready=False with reason RollbackSucceeded/UninstallSucceeded (or
//   ...Failed) while Released still holds the failure;
// - remediation retries are spent: Stalled=True, reason RetriesExceeded, message
//   "Failed to upgrade after 1 attempt(s)" — Flux stops until the spec changes or requestedAt+resetAt.
import { type Condition, findCondition, type HelmRelease } from '../flux/helmrelease.ts';
import { Annotations, Flux } from '../names.ts';
import { firstMatch, parseReleasePatterns } from './patterns.ts';

export const RELEASE_FAILED_REASONS: readonly string[] = ['InstallFailed', 'UpgradeFailed'];
/** Ready reasons that still mean "the release action failed" (the action itself, or its remediation). */
const READY_AFTER_FAILURE: readonly string[] = [
  ...RELEASE_FAILED_REASONS,
  'RollbackSucceeded',
  'RollbackFailed',
  'UninstallSucceeded',
  'UninstallFailed',
];

export interface ClassifyPolicy {
  /** Compiled defaults plus --retry-patterns. */
  patterns: readonly RegExp[];
}

export interface Failure {
  /** InstallFailed or UpgradeFailed. */
  reason: string;
  /** The Helm error as Flux reported it. */
  message: string;
  /** Latest lastTransitionTime among Released, Ready and Stalled: when the last attempt ended. */
  endedAtMs?: number;
  stalled: boolean;
}

export type Verdict =
  | 'retry'
  | 'opted-out'
  | 'deleting'
  | 'suspended'
  | 'ready'
  | 'not-failed'
  | 'other-failure'
  | 'spec-changed'
  | 'in-progress'
  | 'request-pending'
  | 'stalled-other'
  | 'non-transient';

export interface Classification {
  verdict: Verdict;
  /** Why, in a few words (logs and events). */
  reason: string;
  /** Present when an install or upgrade failure was found. */
  failure?: Failure;
  /** Malformed per-release settings that were ignored (for a Warning event). */
  warnings: string[];
}

export function classifyFailure(hr: HelmRelease, policy: ClassifyPolicy): Classification {
  const warnings: string[] = [];
  const done = (verdict: Verdict, reason: string, failure?: Failure): Classification => ({
    verdict,
    reason,
    warnings,
    ...(failure ? { failure } : {}),
  });
  const a = hr.metadata.annotations;
  if (a[Annotations.ignore] === 'true') return done('opted-out', `${Annotations.ignore} is "true"`);
  if (a[Annotations.retry] === 'false') return done('opted-out', `${Annotations.retry} is "false"`);
  if (hr.metadata.deletionTimestamp) return done('deleting', 'the release is being deleted');
  if (hr.suspend) return done('suspended', 'the release is suspended');

  const ready = findCondition(hr, 'Ready');
  if (ready?.status === 'True') return done('ready', 'the release is Ready');

  const failed = failingCondition(hr);
  if (!failed) {
    return ready?.status === 'False'
      ? done('other-failure', `Ready is False for ${ready.reason || 'no reason'}: not a release failure`)
      : done('not-failed', 'no failed install or upgrade');
  }
  const failure = describe(hr, failed);

  const changed = specChanged(hr, failed);
  if (changed) return done('spec-changed', changed, failure);
  if (findCondition(hr, 'Reconciling')?.status === 'True' || ready?.status === 'Unknown') {
    return done('in-progress', 'Flux is reconciling the release', failure);
  }
  const requested = a[Flux.requestedAt];
  if (requested !== undefined && requested !== hr.status.lastHandledReconcileAt) {
    return done('request-pending', `Flux has not yet handled requestedAt "${requested}"`, failure);
  }
  if (ready && !READY_AFTER_FAILURE.includes(ready.reason)) {
    return done(
      'other-failure',
      `Ready is ${ready.status} for ${ready.reason}: not the release failure`,
      failure,
    );
  }
  const stalled = findCondition(hr, 'Stalled');
  if (stalled?.status === 'True' && stalled.reason !== 'RetriesExceeded') {
    return done('stalled-other', `Stalled for ${stalled.reason}`, failure);
  }

  const extra = parseReleasePatterns(a[Annotations.retryPatterns], Annotations.retryPatterns);
  if (!extra.ok) warnings.push(`${extra.error}; using the default patterns only`);
  const patterns = extra.ok ? [...policy.patterns, ...extra.patterns] : policy.patterns;
  const match = firstMatch(patterns, failure.message);
  if (!match) return done('non-transient', `${failure.reason}: no transient pattern matches`, failure);
  return done('retry', `${failure.reason} matches /${match.source}/`, failure);
}

/** Released=False for an install/upgrade failure; or, without Released (older Flux), Ready=False for one. */
function failingCondition(hr: HelmRelease): Condition | undefined {
  const isFailure = (c: Condition | undefined) =>
    c?.status === 'False' && RELEASE_FAILED_REASONS.includes(c.reason);
  const released = findCondition(hr, 'Released');
  if (released) return isFailure(released) ? released : undefined;
  const ready = findCondition(hr, 'Ready');
  return isFailure(ready) ? ready : undefined;
}

function describe(hr: HelmRelease, failed: Condition): Failure {
  const times = ['Released', 'Ready', 'Stalled']
    .map((t) => findCondition(hr, t)?.lastTransitionTime)
    .map((t) => (t ? Date.parse(t) : Number.NaN))
    .filter((t) => Number.isFinite(t));
  return {
    reason: failed.reason,
    message: failed.message,
    ...(times.length > 0 ? { endedAtMs: Math.max(...times) } : {}),
    stalled: findCondition(hr, 'Stalled')?.status === 'True',
  };
}

/** Flux has not acted on the current spec yet: the failure belongs to an older generation. */
function specChanged(hr: HelmRelease, failed: Condition): string | undefined {
  const gen = hr.metadata.generation;
  const s = hr.status;
  if (s.lastAttemptedGeneration !== undefined && s.lastAttemptedGeneration !== gen) {
    return `generation ${gen} was not attempted yet (last attempted ${s.lastAttemptedGeneration})`;
  }
  if (failed.observedGeneration !== undefined && failed.observedGeneration !== gen) {
    return `the failure was observed at generation ${failed.observedGeneration}, the spec is at ${gen}`;
  }
  return undefined;
}
