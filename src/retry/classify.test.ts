import { describe, expect, it } from 'vitest';
import {
  artifactFailure,
  HelmErrors,
  helmReleaseObject,
  inProgress,
  released,
  retryAfterIntervalFailure,
  retryingFailure,
  retryOnFailureFailure,
  rolledBackFailure,
  type ShapeOptions,
  stalledFailure,
  uninstalledFailure,
} from '../../test/support/flux-status.ts';
import { type HelmRelease, parseHelmRelease } from '../flux/helmrelease.ts';
import { Annotations, Flux } from '../names.ts';
import {
  CHECKS,
  classifyFailure,
  classifyInput,
  ignoredSettings,
  noReleaseFailure,
  type Verdict,
} from './classify.ts';
import { transientPatterns } from './patterns.ts';

const o: ShapeOptions = { namespace: 'apps', name: 'podinfo', generation: 3, at: '2026-01-01T00:00:00Z' };

function release(
  status: Record<string, unknown>,
  meta: {
    generation?: number;
    annotations?: Record<string, string>;
    suspend?: boolean;
    deleting?: boolean;
    install?: Record<string, unknown>;
    upgrade?: Record<string, unknown>;
  } = {},
): HelmRelease {
  const obj = helmReleaseObject(o.namespace, o.name, {
    ...(meta.annotations ? { annotations: meta.annotations } : {}),
    ...(meta.suspend ? { suspend: true } : {}),
    ...(meta.install ? { install: meta.install } : {}),
    ...(meta.upgrade ? { upgrade: meta.upgrade } : {}),
  });
  const parsed = parseHelmRelease({
    ...obj,
    metadata: {
      ...obj.metadata,
      uid: 'u-1',
      resourceVersion: '7',
      generation: meta.generation ?? o.generation,
      ...(meta.deleting ? { deletionTimestamp: '2026-01-01T00:01:00Z' } : {}),
    },
    status,
  });
  if (!parsed.ok) throw new Error(parsed.error);
  return parsed.value;
}

const defaults = transientPatterns([]);
if (!defaults.ok) throw new Error(defaults.error);
const policy = { patterns: defaults.patterns };
const withFlag = transientPatterns(['connection reset by peer']);
if (!withFlag.ok) throw new Error(withFlag.error);

describe('classifyFailure on the condition shapes helm-controller writes', () => {
  it.each<[string, HelmRelease, Verdict]>([
    [
      'stalled upgrade, legacy waiter timeout',
      release(stalledFailure(o, 'upgrade', HelmErrors.legacyTimeout)),
      'retry',
    ],
    [
      'stalled install, Helm v3 wait timeout',
      release(stalledFailure(o, 'install', HelmErrors.waitTimeout)),
      'retry',
    ],
    [
      'stalled upgrade, kstatus timeout (Helm v4)',
      release(stalledFailure(o, 'upgrade', HelmErrors.kstatusTimeout)),
      'retry',
    ],
    [
      'stalled install, kstatus wait cut short by the rate limiter (helm-controller v1.6)',
      release(stalledFailure(o, 'install', HelmErrors.rateLimiterTimeout)),
      'retry',
    ],
    ['stalled upgrade, i/o timeout', release(stalledFailure(o, 'upgrade', HelmErrors.ioTimeout)), 'retry'],
    [
      'stalled install, TLS handshake timeout',
      release(stalledFailure(o, 'install', HelmErrors.tlsTimeout)),
      'retry',
    ],
    [
      'rolled back (Ready=RollbackSucceeded, Released holds the timeout)',
      release(rolledBackFailure(o, HelmErrors.legacyTimeout)),
      'retry',
    ],
    [
      'uninstalled (Ready=UninstallSucceeded, Released holds the timeout)',
      release(uninstalledFailure(o, HelmErrors.waitTimeout)),
      'retry',
    ],
    [
      'invalid object: not transient',
      release(stalledFailure(o, 'upgrade', HelmErrors.invalidSpec)),
      'non-transient',
    ],
    [
      'values schema error: not transient',
      release(stalledFailure(o, 'install', HelmErrors.schema)),
      'non-transient',
    ],
    ['template error: not transient', release(rolledBackFailure(o, HelmErrors.template)), 'non-transient'],
    [
      'connection reset: not in the defaults',
      release(stalledFailure(o, 'upgrade', HelmErrors.connectionReset)),
      'non-transient',
    ],
    ['Flux still retrying by itself', release(retryingFailure(o, HelmErrors.legacyTimeout)), 'in-progress'],
    ['an action is running', release(inProgress(o)), 'in-progress'],
    ['chart could not be loaded (not a release failure)', release(artifactFailure(o)), 'other-failure'],
    ['released', release(released(o)), 'ready'],
    ['no status yet', release({}), 'not-failed'],
    [
      'suspended',
      release(stalledFailure(o, 'upgrade', HelmErrors.legacyTimeout), { suspend: true }),
      'suspended',
    ],
    [
      'being deleted',
      release(stalledFailure(o, 'upgrade', HelmErrors.legacyTimeout), { deleting: true }),
      'deleting',
    ],
    [
      'opted out with retry: "false"',
      release(stalledFailure(o, 'upgrade', HelmErrors.legacyTimeout), {
        annotations: { [Annotations.retry]: 'false' },
      }),
      'opted-out',
    ],
    [
      'ignored',
      release(stalledFailure(o, 'upgrade', HelmErrors.legacyTimeout), {
        annotations: { [Annotations.ignore]: 'true' },
      }),
      'opted-out',
    ],
    [
      'spec changed since the failed attempt',
      release(stalledFailure(o, 'upgrade', HelmErrors.legacyTimeout), { generation: 4 }),
      'spec-changed',
    ],
    [
      'a reconcile request Flux has not handled yet',
      release(
        stalledFailure({ ...o, handled: '2026-01-01T00:00:00.000Z' }, 'upgrade', HelmErrors.legacyTimeout),
        {
          annotations: { [Flux.requestedAt]: '2026-01-01T00:05:00.000Z' },
        },
      ),
      'request-pending',
    ],
    [
      'a reconcile request Flux has handled',
      release(
        stalledFailure({ ...o, handled: '2026-01-01T00:05:00.000Z' }, 'upgrade', HelmErrors.legacyTimeout),
        {
          annotations: { [Flux.requestedAt]: '2026-01-01T00:05:00.000Z' },
        },
      ),
      'retry',
    ],
  ])('%s -> %s', (_name, hr, verdict) => {
    expect(classifyFailure(hr, policy).verdict).toBe(verdict);
  });

  it('stalled for another reason is left to Flux', () => {
    const status = stalledFailure(o, 'upgrade', HelmErrors.legacyTimeout);
    const conditions = (status.conditions as { type: string; reason: string }[]).map((c) =>
      c.type === 'Stalled' ? { ...c, reason: 'MissingRollbackTarget' } : c,
    );
    expect(classifyFailure(release({ ...status, conditions }), policy).verdict).toBe('stalled-other');
  });

  it('reports the Helm error and when the attempt ended', () => {
    const c = classifyFailure(release(rolledBackFailure(o, HelmErrors.kstatusTimeout)), policy);
    expect(c.failure).toMatchObject({ reason: 'UpgradeFailed', stalled: true, endedAtMs: Date.parse(o.at) });
    expect(c.failure?.message).toContain(HelmErrors.kstatusTimeout);
  });

  it('flag patterns extend the defaults', () => {
    const hr = release(stalledFailure(o, 'upgrade', HelmErrors.connectionReset));
    expect(classifyFailure(hr, { patterns: withFlag.patterns }).verdict).toBe('retry');
  });

  it('per-release patterns extend them for that release only', () => {
    const hr = release(stalledFailure(o, 'upgrade', HelmErrors.connectionReset), {
      annotations: { [Annotations.retryPatterns]: 'no such thing\n\n  connection reset  \n' },
    });
    const c = classifyFailure(hr, policy);
    expect(c).toMatchObject({ verdict: 'retry', warnings: [] });
  });

  it('a malformed per-release pattern yields a warning and the defaults, not a crash', () => {
    const annotations = { [Annotations.retryPatterns]: 'connection reset\n(unclosed' };
    const reset = classifyFailure(
      release(stalledFailure(o, 'upgrade', HelmErrors.connectionReset), { annotations }),
      policy,
    );
    expect(reset.verdict).toBe('non-transient');
    expect(reset.warnings).toEqual([
      expect.stringContaining('"(unclosed" is not a valid RE2 regular expression'),
    ]);
    const timeout = classifyFailure(
      release(stalledFailure(o, 'upgrade', HelmErrors.legacyTimeout), { annotations }),
      policy,
    );
    expect(timeout.verdict).toBe('retry');
  });

  it.each([
    ['a backreference', '(a)\\1', 'invalid escape sequence'],
    ['a lookahead', 'connection(?= reset)', 'unsupported Perl syntax'],
    ['a negative lookahead', 'connection(?! refused)', 'unsupported Perl syntax'],
    ['a program too large', '.{300}', 'too complex'],
  ])('a pattern RE2 refuses (%s) is a warning and the defaults', (_name, pattern, why) => {
    const annotations = { [Annotations.retryPatterns]: pattern };
    const c = classifyFailure(
      release(stalledFailure(o, 'upgrade', HelmErrors.connectionReset), { annotations }),
      policy,
    );
    expect(c.verdict).toBe('non-transient');
    expect(c.warnings).toEqual([expect.stringContaining(why)]);
  });

  it('with --no-release-retry-patterns the annotation is not read, and said to be ignored', () => {
    const annotations = { [Annotations.retryPatterns]: 'connection reset' };
    const hr = release(stalledFailure(o, 'upgrade', HelmErrors.connectionReset), { annotations });
    const locked = { ...policy, ignoreReleasePatterns: true };
    expect(classifyFailure(hr, policy).verdict).toBe('retry');
    expect(classifyFailure(hr, locked)).toMatchObject({ verdict: 'non-transient', warnings: [] });
    expect(ignoredSettings(hr, locked)).toEqual([Annotations.retryPatterns]);
    expect(ignoredSettings(hr, policy)).toEqual([]);
    expect(
      ignoredSettings(release(stalledFailure(o, 'upgrade', HelmErrors.connectionReset)), locked),
    ).toEqual([]);
  });

  it('older Flux without a Released condition: Ready carries the failure', () => {
    const status = stalledFailure(o, 'install', HelmErrors.legacyTimeout);
    const conditions = (status.conditions as { type: string }[]).filter((c) => c.type !== 'Released');
    expect(classifyFailure(release({ ...status, conditions }), policy).verdict).toBe('retry');
  });
});

/** The check that decides for hr: the first in CHECKS that applies, else the fallback. */
function decidedBy(hr: HelmRelease): string {
  const input = classifyInput(hr, policy);
  return CHECKS.find((check) => check(input) !== undefined)?.name ?? noReleaseFailure.name;
}

const failedUpgrade = stalledFailure(o, 'upgrade', HelmErrors.legacyTimeout);
const { lastAttemptedGeneration: _, ...withoutAttempted } = failedUpgrade;

/** A status with one condition changed. */
function withCondition(type: string, change: Record<string, unknown>, status = failedUpgrade) {
  const conditions = (status.conditions as { type: string }[]).map((c) =>
    c.type === type ? { ...c, ...change } : c,
  );
  return { ...status, conditions };
}

describe('the checks, in the order of the spec', () => {
  it('are listed in this order; the first that applies decides', () => {
    expect(CHECKS.map((check) => check.name)).toEqual([
      'optedOut',
      'retriesTurnedOff',
      'beingDeleted',
      'suspended',
      'releaseReady',
      'specChanged',
      'fluxRetriesItself',
      'fluxReconciling',
      'requestPending',
      'readyForAnotherReason',
      'stalledForAnotherReason',
      'transientFailure',
    ]);
  });

  it.each<[string, string, HelmRelease, Verdict]>([
    [
      'optedOut',
      'ignore is "true"',
      release(failedUpgrade, { annotations: { [Annotations.ignore]: 'true' } }),
      'opted-out',
    ],
    [
      'retriesTurnedOff',
      'retry is "false"',
      release(failedUpgrade, { annotations: { [Annotations.retry]: 'false' } }),
      'opted-out',
    ],
    ['beingDeleted', 'deletionTimestamp set', release(failedUpgrade, { deleting: true }), 'deleting'],
    ['suspended', 'spec.suspend', release(failedUpgrade, { suspend: true }), 'suspended'],
    ['releaseReady', 'Ready=True', release(released(o)), 'ready'],
    [
      'specChanged',
      'generation not attempted yet',
      release(failedUpgrade, { generation: 4 }),
      'spec-changed',
    ],
    [
      'specChanged',
      'failure observed at an older generation (no lastAttemptedGeneration)',
      release(withCondition('Released', { observedGeneration: 2 }, withoutAttempted)),
      'spec-changed',
    ],
    [
      'fluxRetriesItself',
      'upgrade.strategy RetryOnFailure (the active action: the last attempted, an upgrade)',
      release(retryOnFailureFailure(o, 'upgrade', HelmErrors.legacyTimeout), {
        upgrade: { strategy: { name: 'RetryOnFailure', retryInterval: '2m' } },
      }),
      'flux-retrying',
    ],
    [
      'fluxRetriesItself',
      'no strategy on the object, RetryOnFailure shape (the DefaultToRetryOnFailure gate)',
      release(retryOnFailureFailure(o, 'upgrade', HelmErrors.legacyTimeout)),
      'flux-retrying',
    ],
    [
      'fluxRetriesItself',
      'v1.4.0-v1.4.2 RetryOnFailure shape (Ready=False RetryAfterInterval)',
      release(retryAfterIntervalFailure(o, HelmErrors.legacyTimeout)),
      'flux-retrying',
    ],
    [
      'fluxRetriesItself',
      'upgrade.remediation.retries negative (no limit)',
      release(stalledFailure(o, 'upgrade', HelmErrors.legacyTimeout), {
        upgrade: { remediation: { retries: -1 } },
      }),
      'flux-retrying',
    ],
    [
      'transientFailure',
      'install.strategy RetryOnFailure but the failed retry was an upgrade with no strategy (Flux stalled)',
      release(stalledFailure(o, 'upgrade', HelmErrors.legacyTimeout), {
        install: { strategy: { name: 'RetryOnFailure' } },
      }),
      'retry',
    ],
    [
      'fluxReconciling',
      'Reconciling=True ProgressingWithRetry with remediation retries left (Flux retries, then stalls)',
      release(retryingFailure(o, HelmErrors.legacyTimeout)),
      'in-progress',
    ],
    ['fluxReconciling', 'Ready=Unknown (an action runs)', release(inProgress(o)), 'in-progress'],
    [
      'requestPending',
      'requestedAt not yet handled',
      release(failedUpgrade, { annotations: { [Flux.requestedAt]: '2026-01-01T00:05:00.000Z' } }),
      'request-pending',
    ],
    [
      'readyForAnotherReason',
      'Ready=False for ArtifactFailed after a failed upgrade',
      release(withCondition('Ready', { reason: 'ArtifactFailed' })),
      'other-failure',
    ],
    [
      'stalledForAnotherReason',
      'Stalled for MissingRollbackTarget',
      release(withCondition('Stalled', { reason: 'MissingRollbackTarget' })),
      'stalled-other',
    ],
    ['transientFailure', 'a timeout', release(failedUpgrade), 'retry'],
    [
      'transientFailure',
      'a schema error',
      release(stalledFailure(o, 'install', HelmErrors.schema)),
      'non-transient',
    ],
    ['noReleaseFailure', 'no status yet (no check applies)', release({}), 'not-failed'],
    ['noReleaseFailure', 'Ready=False before any Helm action', release(artifactFailure(o)), 'other-failure'],
  ])('%s: %s -> %s', (check, _case, hr, verdict) => {
    expect(decidedBy(hr)).toBe(check);
    expect(classifyFailure(hr, policy).verdict).toBe(verdict);
  });

  it('only the checks of a failed release report the failure', () => {
    const failure = { reason: 'UpgradeFailed', stalled: true };
    expect(classifyFailure(release(failedUpgrade, { suspend: true }), policy).failure).toBeUndefined();
    expect(classifyFailure(release(failedUpgrade, { generation: 4 }), policy).failure).toMatchObject(failure);
  });
});
