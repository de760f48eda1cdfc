// Should this release be retried? A pure function of the HelmRelease, in the shape of helm-controller's
// own state determination and cert-manager's policy chains: CHECKS lists named checks in the order of the
// spec, the first that applies decides. Only an install or upgrade that failed on a transient error, and
// that Flux will not retry by itself, is retryable.
//
// The condition shapes are helm-controller v1.x's (internal/reconcile, api/v2):
// - the release action failed: Released=False, reason InstallFailed/UpgradeFailed, message
//   "Helm upgrade failed for release <ns>/<name> with chart <c>@<v>: <Helm error>"; Ready mirrors it;
// - a remediation ran afterwards: Ready=False with reason RollbackSucceeded/UninstallSucceeded (or
//   ...Failed) while Released still holds the failure;
// - remediation retries are spent: Stalled=True, reason RetriesExceeded, message
//   "Failed to upgrade after 1 attempt(s)" — Flux stops until the spec changes or requestedAt+resetAt.
// - Flux retries by itself (RetryOnFailure, v1.4.3+): Reconciling=True, reason ProgressingWithRetry,
//   message "retrying after 5m0s"; v1.4.0-v1.4.2: Ready=False, reason RetryAfterInterval, "Will retry after 5m0s".
//   (With remediation retries left, Reconciling=True ProgressingWithRetry carries Ready's message instead.)
import { isOptedOut } from '../admission/stamp.ts';
import { activeFailurePolicy, type Condition, findCondition, type HelmRelease } from '../flux/helmrelease.ts';
import { Annotations, Flux } from '../names.ts';
import { firstMatch, parseReleasePatterns, type TransientPattern } from './patterns.ts';

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
  patterns: readonly TransientPattern[];
  /** --no-release-retry-patterns: the per-release retry-patterns annotation is not read. */
  ignoreReleasePatterns?: boolean;
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
  | 'flux-retrying'
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

/** What the checks look at: the release, the patterns, and its failed install or upgrade (read once). */
export interface ClassifyInput {
  hr: HelmRelease;
  policy: ClassifyPolicy;
  /** The condition that reports a failed install or upgrade, and what it says; absent when none failed. */
  failed?: { condition: Condition; failure: Failure };
}

/** What a check found when it applies. */
export interface Finding {
  verdict: Verdict;
  reason: string;
  failure?: Failure;
  warnings?: string[];
}

/** One rule of the spec: a finding when it applies to the release, undefined to leave it to the next. */
export type Check = (input: ClassifyInput) => Finding | undefined;

/** Reads the release once for the checks. */
export function classifyInput(hr: HelmRelease, policy: ClassifyPolicy): ClassifyInput {
  const condition = failingCondition(hr);
  return { hr, policy, ...(condition ? { failed: { condition, failure: describe(hr, condition) } } : {}) };
}

/** Not ours to touch: the release opted out of everything. */
export function optedOut({ hr }: ClassifyInput): Finding | undefined {
  if (!isOptedOut(hr.metadata.annotations)) return undefined;
  return { verdict: 'opted-out', reason: `${Annotations.ignore} is "true"` };
}

/** Not ours to touch: the release opted out of retries. */
export function retriesTurnedOff({ hr }: ClassifyInput): Finding | undefined {
  if (hr.metadata.annotations[Annotations.retry] !== 'false') return undefined;
  return { verdict: 'opted-out', reason: `${Annotations.retry} is "false"` };
}

/** The release is going away: nothing to retry. */
export function beingDeleted({ hr }: ClassifyInput): Finding | undefined {
  return hr.metadata.deletionTimestamp
    ? { verdict: 'deleting', reason: 'the release is being deleted' }
    : undefined;
}

/** Flux leaves suspended releases alone, and so do we. */
export function suspended({ hr }: ClassifyInput): Finding | undefined {
  return hr.suspend ? { verdict: 'suspended', reason: 'the release is suspended' } : undefined;
}

/** Ready ends the episode (the retry state is cleared). */
export function releaseReady({ hr }: ClassifyInput): Finding | undefined {
  return findCondition(hr, 'Ready')?.status === 'True'
    ? { verdict: 'ready', reason: 'the release is Ready' }
    : undefined;
}

/** Flux has not acted on the current spec yet: the failure belongs to an older generation. */
export function specChanged({ hr, failed }: ClassifyInput): Finding | undefined {
  if (!failed) return undefined;
  const gen = hr.metadata.generation;
  const s = hr.status;
  const observed = failed.condition.observedGeneration;
  const reason =
    s.lastAttemptedGeneration !== undefined && s.lastAttemptedGeneration !== gen
      ? `generation ${gen} was not attempted yet (last attempted ${s.lastAttemptedGeneration})`
      : observed !== undefined && observed !== gen
        ? `the failure was observed at generation ${observed}, the spec is at ${gen}`
        : undefined;
  return reason ? { verdict: 'spec-changed', reason, failure: failed.failure } : undefined;
}

/** helm-controller's RetryOnFailure strategy (an Event of its own): the reason for the verdict. */
export const RETRY_ON_FAILURE = 'RetryOnFailure';

/**
 * Flux retries the release by itself without a limit: the active action's strategy is RetryOnFailure (also
 * recognised by its condition shape, which is all the DefaultToRetryOnFailure gate leaves to see), or its
 * remediation retries are negative (unlimited). Ours would only add attempts: its turn, for good.
 */
export function fluxRetriesItself({ hr, failed }: ClassifyInput): Finding | undefined {
  if (!failed) return undefined;
  const reason = unlimitedFluxRetries(hr);
  return reason ? { verdict: 'flux-retrying', reason, failure: failed.failure } : undefined;
}

/** Why Flux retries the release by itself without a limit, or undefined. */
export function unlimitedFluxRetries(hr: HelmRelease): string | undefined {
  const policy = activeFailurePolicy(hr);
  const action = hr.status.lastAttemptedReleaseAction ?? 'release';
  if (policy?.strategy === RETRY_ON_FAILURE)
    return `Flux retries the ${action} itself (${action}.strategy ${RETRY_ON_FAILURE}, every ${policy.retryInterval ?? '5m'})`;
  const reconciling = findCondition(hr, 'Reconciling');
  if (reconciling?.status === 'True' && reconciling.reason === 'ProgressingWithRetry') {
    const m = /^retrying after (\S+)/.exec(reconciling.message);
    if (m) return `Flux retries the ${action} itself (${RETRY_ON_FAILURE}, every ${m[1]})`;
  }
  const ready = findCondition(hr, 'Ready');
  if (ready?.status === 'False' && ready.reason === 'RetryAfterInterval')
    return `Flux retries the ${action} itself (${RETRY_ON_FAILURE}: ${ready.message})`;
  if (policy && policy.retries < 0)
    return `Flux retries the ${action} itself (${action}.remediation.retries ${policy.retries}: no limit)`;
  return undefined;
}

/** Flux is still at work (an action runs, or it retries by itself): its turn, not ours. */
export function fluxReconciling({ hr, failed }: ClassifyInput): Finding | undefined {
  if (!failed) return undefined;
  const busy =
    findCondition(hr, 'Reconciling')?.status === 'True' || findCondition(hr, 'Ready')?.status === 'Unknown';
  return busy
    ? { verdict: 'in-progress', reason: 'Flux is reconciling the release', failure: failed.failure }
    : undefined;
}

/** A reconcile request (ours or anyone's) that Flux has not handled yet: wait for its outcome. */
export function requestPending({ hr, failed }: ClassifyInput): Finding | undefined {
  if (!failed) return undefined;
  const requested = hr.metadata.annotations[Flux.requestedAt];
  if (requested === undefined || requested === hr.status.lastHandledReconcileAt) return undefined;
  return {
    verdict: 'request-pending',
    reason: `Flux has not yet handled requestedAt "${requested}"`,
    failure: failed.failure,
  };
}

/** Ready reports something other than the release failure (or its remediation): that is what holds it. */
export function readyForAnotherReason({ hr, failed }: ClassifyInput): Finding | undefined {
  const ready = findCondition(hr, 'Ready');
  if (!failed || !ready || READY_AFTER_FAILURE.includes(ready.reason)) return undefined;
  return {
    verdict: 'other-failure',
    reason: `Ready is ${ready.status} for ${ready.reason}: not the release failure`,
    failure: failed.failure,
  };
}

/** Stalled for a reason other than spent remediation retries: not something a retry fixes. */
export function stalledForAnotherReason({ hr, failed }: ClassifyInput): Finding | undefined {
  const stalled = findCondition(hr, 'Stalled');
  if (!failed || stalled?.status !== 'True' || stalled.reason === 'RetriesExceeded') return undefined;
  return { verdict: 'stalled-other', reason: `Stalled for ${stalled.reason}`, failure: failed.failure };
}

/**
 * Decides every failure that got this far: retry when a transient pattern (defaults, --retry-patterns,
 * the release's own annotation) matches the Helm error. A malformed annotation is reported and ignored.
 */
export function transientFailure({ hr, policy, failed }: ClassifyInput): Finding | undefined {
  if (!failed) return undefined;
  const { failure } = failed;
  const warnings: string[] = [];
  const extra = parseReleasePatterns(
    policy.ignoreReleasePatterns ? undefined : hr.metadata.annotations[Annotations.retryPatterns],
    Annotations.retryPatterns,
  );
  if (!extra.ok) warnings.push(`${extra.error}; using the default patterns only`);
  const patterns = extra.ok ? [...policy.patterns, ...extra.patterns] : policy.patterns;
  const match = firstMatch(patterns, failure.message);
  return match
    ? { verdict: 'retry', reason: `${failure.reason} matches /${match.source}/`, failure, warnings }
    : {
        verdict: 'non-transient',
        reason: `${failure.reason}: no transient pattern matches`,
        failure,
        warnings,
      };
}

/**
 * The spec, in order: the first check that applies decides. The checks after releaseReady look at the failed
 * install or upgrade and pass a release without one; transientFailure decides every release that has one.
 */
export const CHECKS: readonly Check[] = [
  optedOut,
  retriesTurnedOff,
  beingDeleted,
  suspended,
  releaseReady,
  specChanged,
  fluxRetriesItself,
  fluxReconciling,
  requestPending,
  readyForAnotherReason,
  stalledForAnotherReason,
  transientFailure,
];

export function classifyFailure(hr: HelmRelease, policy: ClassifyPolicy): Classification {
  const input = classifyInput(hr, policy);
  const { warnings = [], ...found } = firstThatApplies(input) ?? noReleaseFailure(input);
  return { ...found, warnings };
}

function firstThatApplies(input: ClassifyInput): Finding | undefined {
  for (const check of CHECKS) {
    const found = check(input);
    if (found) return found;
  }
  return undefined;
}

/** What a release that no check applies to is: no install or upgrade failed (or Ready is False for
 * another cause, which Flux retries by itself). */
export function noReleaseFailure({ hr }: ClassifyInput): Finding {
  const ready = findCondition(hr, 'Ready');
  return ready?.status === 'False'
    ? {
        verdict: 'other-failure',
        reason: `Ready is False for ${ready.reason || 'no reason'}: not a release failure`,
      }
    : { verdict: 'not-failed', reason: 'no failed install or upgrade' };
}

/** The per-release settings the release carries that a lockdown flag makes us ignore (told once per release). */
export function ignoredSettings(hr: HelmRelease, policy: ClassifyPolicy): string[] {
  const present = hr.metadata.annotations[Annotations.retryPatterns] !== undefined;
  return policy.ignoreReleasePatterns && present ? [Annotations.retryPatterns] : [];
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
