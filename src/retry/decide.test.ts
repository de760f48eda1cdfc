import { describe, expect, it } from 'vitest';
import {
  HelmErrors,
  helmReleaseObject,
  released,
  retryOnFailureFailure,
  stalledFailure,
} from '../../test/support/flux-status.ts';
import { type HelmRelease, parseHelmRelease } from '../flux/helmrelease.ts';
import { Annotations, Flux } from '../names.ts';
import { backoffDelay } from './backoff.ts';
import { type Action, decideRetry, type RetryLimits, retryInput } from './decide.ts';
import { transientPatterns } from './patterns.ts';
import { episodeFingerprint } from './state.ts';

const T0 = Date.parse('2026-01-01T00:00:00Z');
const o = { namespace: 'apps', name: 'podinfo', generation: 2, at: new Date(T0).toISOString() };
const limits: RetryLimits = { baseMs: 30_000, factor: 2, maxMs: 600_000, jitter: 0.2, maxAttempts: 3 };
const compiled = transientPatterns([]);
if (!compiled.ok) throw new Error(compiled.error);
const policy = { patterns: compiled.patterns };

function release(status: Record<string, unknown>, annotations: Record<string, string> = {}): HelmRelease {
  const obj = helmReleaseObject(o.namespace, o.name, { annotations });
  const p = parseHelmRelease({
    ...obj,
    metadata: { ...obj.metadata, uid: 'u-1', resourceVersion: '5', generation: 2 },
    status,
  });
  if (!p.ok) throw new Error(p.error);
  return p.value;
}

const failed = stalledFailure(o, 'upgrade', 'context deadline exceeded');
const episode = episodeFingerprint(release(failed));
const delay = (attempts: number) => backoffDelay(attempts, limits, `u-1/${episode}/${attempts}`);
const iso = (ms: number) => new Date(ms).toISOString();

function run(hr: HelmRelease, now: number): Action {
  return decideRetry(retryInput(hr, policy), limits, now);
}

/** The state after `attempts` retries, the last at `last`, with Flux having handled it. */
function retried(attempts: number, last: number, extra: Record<string, string> = {}) {
  return release(
    { ...failed, lastHandledReconcileAt: iso(last), lastHandledResetAt: iso(last) },
    {
      [Flux.requestedAt]: iso(last),
      [Flux.resetAt]: iso(last),
      [Annotations.retryAttempts]: String(attempts),
      [Annotations.retryLastAttempt]: iso(last),
      [Annotations.retryEpisode]: episode,
      ...extra,
    },
  );
}

describe('decideRetry: the state table at the top of decide.ts, one row per line', () => {
  const last = T0 + 40_000;
  const spent = T0 + 500_000;
  it.each<[string, HelmRelease, number, Record<string, unknown>]>([
    [
      'ready, with state stored -> clear',
      release(released(o), retried(2, T0).metadata.annotations),
      T0,
      { kind: 'clear' },
    ],
    ['ready, nothing stored -> nothing', release(released(o)), T0, { kind: 'none' }],
    [
      'retry, new episode -> the counters start at 0',
      release(failed, {
        [Annotations.retryAttempts]: '3',
        [Annotations.retryEpisode]: 'an-older-episode',
        [Annotations.retryExhausted]: iso(T0),
      }),
      T0 + delay(0),
      { kind: 'retry', attempt: 1 },
    ],
    [
      'retry, attempts < max, not due -> wait (requeue at the due time)',
      retried(1, last),
      last + delay(1) - 1,
      { kind: 'wait', delayMs: 1, attempt: 2 },
    ],
    [
      'retry, attempts < max, due -> retry (attempts + 1)',
      retried(1, last),
      last + delay(1),
      { kind: 'retry', attempt: 2, token: iso(last + delay(1)) },
    ],
    [
      'retry, attempts >= max -> exhaust once',
      retried(3, spent),
      spent + 1,
      { kind: 'exhaust', attempts: 3 },
    ],
    [
      'retry, attempts >= max, exhausted already -> then nothing',
      retried(3, spent, { [Annotations.retryExhausted]: iso(spent + 1) }),
      spent + 10 * limits.maxMs,
      { kind: 'exhausted', attempts: 3 },
    ],
    [
      'anything else -> nothing (non-transient)',
      release(stalledFailure(o, 'upgrade', HelmErrors.schema)),
      T0 + 1e9,
      { kind: 'none' },
    ],
    [
      'anything else -> nothing (our request not handled by Flux yet)',
      release(failed, retried(1, last).metadata.annotations),
      T0 + 1e9,
      { kind: 'none' },
    ],
    [
      'a new retry-reset-at token, exhausted, a retry due -> restart: state cleared, requestedAt = resetAt now',
      retried(3, spent, {
        [Annotations.retryExhausted]: iso(spent + 1),
        [Annotations.retryResetAt]: 'by-hand',
      }),
      spent + 2,
      { kind: 'restart', handled: 'by-hand', token: iso(spent + 2) },
    ],
    [
      'a new retry-reset-at token, nothing to retry (Ready) -> restart: the token recorded only',
      release(released(o), { [Annotations.retryResetAt]: 'by-hand' }),
      T0,
      { kind: 'restart', handled: 'by-hand' },
    ],
    [
      'a handled retry-reset-at token -> the table as usual',
      retried(3, spent, {
        [Annotations.retryExhausted]: iso(spent + 1),
        [Annotations.retryResetAt]: 'by-hand',
        [Annotations.retryResetHandled]: 'by-hand',
      }),
      spent + 2,
      { kind: 'exhausted' },
    ],
  ])('%s', (_line, hr, now, action) => {
    expect(run(hr, now)).toMatchObject(action);
  });
});

/** A stalled failure after `failed` attempts Flux counted (remediation.retries: failed - 1 spent). */
function stalledAfter(failed: number, action: 'install' | 'upgrade' = 'upgrade') {
  const s = stalledFailure(o, action, 'context deadline exceeded');
  return { ...s, failures: failed, [`${action}Failures`]: failed };
}

describe('the budget counts Flux’s own failed attempts: at most max(N+1, maxAttempts+1) per episode', () => {
  // maxAttempts (M) is 3 in these tests: at most 4 failed attempts per episode.
  it.each<[string, HelmRelease, number, Record<string, unknown>]>([
    [
      'N = 0: Flux stalled after 1 attempt -> retry 1',
      release(stalledAfter(1)),
      T0 + 1e9,
      { kind: 'retry', attempt: 1 },
    ],
    [
      'N = 2: Flux stalled after 3 attempts -> retry 1 (the 4th attempt)',
      release(stalledAfter(3)),
      T0 + 1e9,
      { kind: 'retry', attempt: 1 },
    ],
    [
      'N = 2, retry 1 failed too (Flux counts 4) -> exhaust: 4 failed attempts',
      release(
        { ...stalledAfter(4), lastHandledReconcileAt: iso(T0), lastHandledForceAt: iso(T0) },
        retried(1, T0).metadata.annotations,
      ),
      T0 + 1e9,
      { kind: 'exhaust', attempts: 1, failed: 4 },
    ],
    [
      'N = 3 (>= M): Flux stalled after 4 attempts -> exhaust, no retry of ours',
      release(stalledAfter(4)),
      T0 + 1e9,
      { kind: 'exhaust', attempts: 0, failed: 4 },
    ],
    [
      'a failed install retried as an upgrade counts both counters',
      release(
        { ...stalledAfter(2), installFailures: 2, upgradeFailures: 2, lastHandledReconcileAt: iso(T0) },
        retried(1, T0).metadata.annotations,
      ),
      T0 + 1e9,
      { kind: 'exhaust', failed: 4 },
    ],
    [
      'counters reset by someone else: our own retries still bound the episode',
      release({ ...stalledAfter(1), lastHandledReconcileAt: iso(T0) }, retried(3, T0).metadata.annotations),
      T0 + 1e9,
      { kind: 'exhaust', attempts: 3, failed: 4 },
    ],
    [
      'RetryOnFailure: Flux retries without a limit -> nothing from us',
      release(retryOnFailureFailure(o, 'upgrade', 'context deadline exceeded', 7)),
      T0 + 1e9,
      { kind: 'none' },
    ],
  ])('%s', (_line, hr, now, action) => {
    expect(run(hr, now)).toMatchObject(action);
  });

  it('Flux attempts per episode, simulated: N+1 of Flux, then one per retry of ours, until max(N+1, M+1)', () => {
    for (const n of [0, 1, 2, 3, 5]) {
      // Flux stalls after N+1 failed attempts; every retry of ours (forceAt) buys exactly one more.
      let failedCount = n + 1;
      let state: Record<string, string> = {};
      let now = T0;
      for (let guard = 0; guard < 20; guard++) {
        const handled = state[Flux.requestedAt];
        const hr = release(
          {
            ...stalledAfter(failedCount),
            ...(handled ? { lastHandledReconcileAt: handled, lastHandledForceAt: handled } : {}),
          },
          state,
        );
        now += limits.maxMs * 2;
        const a = run(hr, now);
        if (a.kind !== 'retry') {
          expect(a.kind).toBe('exhaust');
          break;
        }
        state = { ...state, ...(a.patch.metadata.annotations as Record<string, string>) };
        failedCount++;
      }
      expect(failedCount).toBe(Math.max(n + 1, limits.maxAttempts + 1));
    }
  });
});

describe('decideRetry', () => {
  it('a restart by hand with nothing to retry writes no Flux annotation', () => {
    const a = run(release(released(o), { [Annotations.retryResetAt]: 'by-hand' }), T0);
    expect(a).toMatchObject({ kind: 'restart' });
    expect(a.kind === 'restart' ? a.token : 'n/a').toBeUndefined();
    if (a.kind !== 'restart') return;
    expect(Object.keys(a.patch.metadata.annotations)).toEqual([Annotations.retryResetHandled]);
  });

  it('a restart by hand is ignored for a release that opted out', () => {
    const hr = release(failed, { [Annotations.ignore]: 'true', [Annotations.retryResetAt]: 'by-hand' });
    expect(run(hr, T0 + 1e9)).toMatchObject({ kind: 'none' });
  });

  it('waits for the base delay after the failure, then retries with one fresh token', () => {
    const hr = release(failed);
    expect(run(hr, T0 + 1000)).toMatchObject({ kind: 'wait', delayMs: delay(0) - 1000, attempt: 1 });
    const a = run(hr, T0 + delay(0));
    expect(a).toMatchObject({ kind: 'retry', attempt: 1, token: iso(T0 + delay(0)) });
    if (a.kind !== 'retry') return;
    expect(a.patch.metadata.annotations).toMatchObject({
      [Flux.requestedAt]: a.token,
      [Flux.forceAt]: a.token,
      [Annotations.retryAttempts]: '1',
      [Annotations.retryEpisode]: episode,
    });
  });

  it('the delay grows with each attempt, from the later of our request and the end of Flux’s attempt', () => {
    const last = T0 + 40_000;
    expect(run(retried(1, last), last + delay(1) - 1)).toMatchObject({
      kind: 'wait',
      delayMs: 1,
      attempt: 2,
    });
    expect(run(retried(1, last), last + delay(1))).toMatchObject({ kind: 'retry', attempt: 2 });
    const ended = last + 300_000; // Flux's retry ran into the Helm timeout
    const conditions = (failed.conditions as Record<string, unknown>[]).map((c) => ({
      ...c,
      lastTransitionTime: iso(ended),
    }));
    const hr = release(
      { ...failed, conditions, lastHandledReconcileAt: iso(last) },
      retried(1, last).metadata.annotations,
    );
    expect(run(hr, ended + 1000)).toMatchObject({ kind: 'wait', delayMs: delay(1) - 1000 });
  });

  it('our own write (not yet handled by Flux) never causes a second retry', () => {
    const last = T0 + 40_000;
    const pending = release(failed, retried(1, last).metadata.annotations);
    expect(run(pending, last + 10 * limits.maxMs)).toMatchObject({ kind: 'none' });
  });

  it('at the cap: exhaust once, then nothing', () => {
    const last = T0 + 500_000;
    const a = run(retried(3, last), last + 1);
    expect(a).toMatchObject({ kind: 'exhaust', attempts: 3, episode });
    if (a.kind !== 'exhaust') return;
    expect(a.patch.metadata.annotations[Annotations.retryExhausted]).toBe(iso(last + 1));
    const spent = retried(3, last, { [Annotations.retryExhausted]: iso(last + 1) });
    expect(run(spent, last + 10 * limits.maxMs)).toMatchObject({ kind: 'exhausted' });
  });

  it('a new episode (new chart version) starts with a fresh budget', () => {
    const last = T0 + 500_000;
    const spent = retried(3, last, { [Annotations.retryExhausted]: iso(last) });
    const newChart = release(
      { ...failed, lastAttemptedRevision: '6.6.0', lastHandledReconcileAt: iso(last) },
      spent.metadata.annotations,
    );
    const a = run(newChart, T0 + 10 * limits.maxMs);
    expect(a).toMatchObject({ kind: 'retry', attempt: 1 });
    if (a.kind === 'retry') expect(a.patch.metadata.annotations[Annotations.retryExhausted]).toBeNull();
  });

  it('Ready clears our state (once), and leaves a release we never touched alone', () => {
    const ok = released(o);
    const a = run(release(ok, retried(2, T0).metadata.annotations), T0);
    expect(a.kind).toBe('clear');
    if (a.kind === 'clear') {
      expect(Object.keys(a.patch.metadata.annotations).sort()).toEqual(
        [Annotations.retryAttempts, Annotations.retryEpisode, Annotations.retryLastAttempt].sort(),
      );
    }
    expect(run(release(ok), T0)).toMatchObject({ kind: 'none' });
  });

  it('maxAttempts 0: exhausted at once, never a write to Flux annotations', () => {
    const hr = release(failed);
    const a = decideRetry(
      { ...retryInput(hr, policy), state: { attempts: 0 } },
      { ...limits, maxAttempts: 0 },
      T0 + 1e9,
    );
    expect(a.kind).toBe('exhaust');
  });

  it.each([
    ['non-transient', release(stalledFailure(o, 'upgrade', 'YAML parse error on podinfo/templates/x.yaml'))],
    [
      'suspended',
      (() => {
        const hr = release(failed);
        return { ...hr, suspend: true };
      })(),
    ],
  ])('%s: nothing, however long it waits', (_n, hr) => {
    expect(run(hr, T0 + 1e9)).toMatchObject({ kind: 'none' });
  });
});
