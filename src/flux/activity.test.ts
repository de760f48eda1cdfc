import { describe, expect, it } from 'vitest';
import {
  HelmErrors,
  helmReleaseObject,
  inProgress,
  released,
  retryOnFailureFailure,
  type ShapeOptions,
  stalledFailure,
} from '../../test/support/flux-status.ts';
import { Flux } from '../names.ts';
import {
  type FluxActivity,
  fluxActivity,
  PREREQUISITES_MS,
  parseGoDuration,
  STALE_ACTION_MARGIN_MS,
} from './activity.ts';
import { type HelmRelease, parseHelmRelease } from './helmrelease.ts';

const AT = '2026-01-01T00:00:00Z';
const T0 = Date.parse(AT);
const o: ShapeOptions = { namespace: 'apps', name: 'podinfo', generation: 1, at: AT };

function release(status: Record<string, unknown>, annotations: Record<string, string> = {}): HelmRelease {
  const p = parseHelmRelease({ ...helmReleaseObject(o.namespace, o.name, { annotations }), status });
  if (!p.ok) throw new Error(p.error);
  return p.value;
}

const prerequisites = {
  conditions: [
    {
      type: 'Reconciling',
      status: 'True',
      reason: 'Progressing',
      message: 'Fulfilling prerequisites',
      lastTransitionTime: AT,
    },
    { type: 'Ready', status: 'True', reason: 'UpgradeSucceeded', message: 'ok', lastTransitionTime: AT },
  ],
};
/** A rollback remediation runs: only Reconciling says so (Ready keeps the failure). */
const rollback = {
  conditions: [
    {
      type: 'Reconciling',
      status: 'True',
      reason: 'Progressing',
      message: "Running 'rollback' action with timeout of 1m0s",
      lastTransitionTime: AT,
    },
    { type: 'Ready', status: 'False', reason: 'UpgradeFailed', message: 'x', lastTransitionTime: AT },
  ],
};
const FIVE_MIN = 5 * 60_000;

describe('fluxActivity: is helm-controller working on the release?', () => {
  it.each<[string, HelmRelease, number, Partial<FluxActivity>]>([
    ['never reconciled, nothing requested', release({}), T0, { busy: false }],
    [
      'Ready, request handled',
      release(released({ ...o, handled: 'T1' }), { [Flux.requestedAt]: 'T1' }),
      T0,
      { busy: false },
    ],
    [
      'a requestedAt Flux has not handled',
      release(released({ ...o, handled: 'T1' }), { [Flux.requestedAt]: 'T2' }),
      T0 + 1e9,
      { busy: true, reason: 'request-pending' },
    ],
    [
      'an upgrade running (Ready=Unknown Progressing, "Running \'upgrade\' action with timeout of 5m0s")',
      release(inProgress(o)),
      T0 + 1000,
      { busy: true, reason: 'action-running', untilMs: T0 + FIVE_MIN + STALE_ACTION_MARGIN_MS },
    ],
    [
      'an upgrade whose controller died: past its timeout plus the margin',
      release(inProgress(o)),
      T0 + FIVE_MIN + STALE_ACTION_MARGIN_MS,
      { busy: false },
    ],
    [
      'a rollback running (Reconciling only)',
      release(rollback),
      T0 + 1000,
      { busy: true, reason: 'action-running' },
    ],
    [
      'fulfilling prerequisites (the reconcile started, no action yet)',
      release(prerequisites),
      T0 + 1000,
      { busy: true, reason: 'reconciling', untilMs: T0 + PREREQUISITES_MS },
    ],
    [
      'stalled after a failure',
      release(stalledFailure(o, 'upgrade', HelmErrors.legacyTimeout)),
      T0,
      { busy: false },
    ],
    [
      'RetryOnFailure waiting for its interval (ProgressingWithRetry: no action runs)',
      release(retryOnFailureFailure(o, 'upgrade', HelmErrors.legacyTimeout)),
      T0,
      { busy: false },
    ],
  ])('%s', (_name, hr, now, expected) => {
    expect(fluxActivity(hr, now)).toMatchObject(expected);
  });
});

describe('parseGoDuration', () => {
  it.each<[string, number | undefined]>([
    ['5m0s', 300_000],
    ['1h0m0s', 3_600_000],
    ['1m30.5s', 90_500],
    ['300ms', 300],
    ['0s', 0],
    ['0', 0],
    ['', undefined],
    ['5 minutes', undefined],
  ])('%s', (s, ms) => {
    expect(parseGoDuration(s)).toBe(ms);
  });
});
