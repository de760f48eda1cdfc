import { describe, expect, it } from 'vitest';
import { helmReleaseObject, stalledFailure } from '../../test/support/flux-status.ts';
import { type HelmRelease, parseHelmRelease } from '../flux/helmrelease.ts';
import { Annotations, Flux } from '../names.ts';
import {
  clearPatch,
  episodeFingerprint,
  freshToken,
  parseTime,
  pendingRestart,
  readRetryState,
  restartPatch,
  retryPatch,
} from './state.ts';

const o = { namespace: 'apps', name: 'podinfo', generation: 2, at: '2026-01-01T00:00:00Z' };

function release(
  status: Record<string, unknown>,
  annotations: Record<string, string> = {},
  generation = 2,
): HelmRelease {
  const obj = helmReleaseObject(o.namespace, o.name, { annotations });
  const p = parseHelmRelease({
    ...obj,
    metadata: { ...obj.metadata, uid: 'u', resourceVersion: '9', generation },
    status,
  });
  if (!p.ok) throw new Error(p.error);
  return p.value;
}

describe('readRetryState', () => {
  it('reads what retryPatch wrote', () => {
    const hr = release({});
    const patch = retryPatch(hr, '2026-01-01T00:01:00.000Z', 3, 'abc');
    const annotations = Object.fromEntries(
      Object.entries(patch.metadata.annotations).filter((e): e is [string, string] => e[1] !== null),
    );
    expect(readRetryState(annotations)).toEqual({
      state: {
        attempts: 3,
        lastAttempt: '2026-01-01T00:01:00.000Z',
        lastAttemptMs: Date.parse('2026-01-01T00:01:00Z'),
        episode: 'abc',
      },
      problems: [],
    });
  });

  it.each([
    [{ [Annotations.retryAttempts]: 'three' }, 'is not a non-negative integer'],
    [{ [Annotations.retryAttempts]: '-1' }, 'is not a non-negative integer'],
    [{ [Annotations.retryAttempts]: '1e3' }, 'is not a non-negative integer'],
    [{ [Annotations.retryLastAttempt]: 'yesterday' }, 'is not an RFC3339 time'],
  ])('malformed %j: reported, and treated as absent', (annotations, problem) => {
    const r = readRetryState(annotations);
    expect(r.state.attempts).toBe(0);
    expect(r.state.lastAttemptMs).toBeUndefined();
    expect(r.problems).toEqual([expect.stringContaining(problem)]);
  });

  it.each([
    ['2026-01-01T00:00:00Z', true],
    ['2026-01-01T00:00:00.123456789Z', true],
    ['2026-01-01T01:00:00+01:00', true],
    ['2026-01-01', false],
    ['', false],
  ])('parseTime(%s) ok=%s', (s, ok) => {
    expect(parseTime(s) !== undefined).toBe(ok);
  });
});

describe('episodeFingerprint', () => {
  const failed = stalledFailure(o, 'upgrade', 'context deadline exceeded');
  const fp = episodeFingerprint(release(failed));

  it('is stable for the same desired state, whatever the failure details', () => {
    const installFailed = stalledFailure(o, 'install', 'timed out waiting for the condition');
    expect(episodeFingerprint(release(installFailed))).toBe(fp);
    expect(episodeFingerprint(release({ ...failed, lastHandledReconcileAt: 'x' }))).toBe(fp);
  });

  it.each([
    ['a new generation', { ...failed, lastAttemptedGeneration: 3 }],
    ['a new chart version', { ...failed, lastAttemptedRevision: '6.5.1' }],
    ['new values', { ...failed, lastAttemptedConfigDigest: 'sha256:0000' }],
  ])('changes with %s', (_what, status) => {
    expect(episodeFingerprint(release(status))).not.toBe(fp);
  });
});

describe('patches', () => {
  it('a retry sets requestedAt and forceAt to one token (never resetAt: Flux keeps counting), conditional on resourceVersion', () => {
    const p = retryPatch(release({}), 'T', 1, 'e');
    expect(p.metadata.resourceVersion).toBe('9');
    expect(p.metadata.annotations[Flux.requestedAt]).toBe('T');
    expect(p.metadata.annotations[Flux.forceAt]).toBe('T');
    expect(p.metadata.annotations[Flux.resetAt]).toBeUndefined();
  });

  it('a restart by hand clears our state, records the token, and keeps Flux annotations unless it retries', () => {
    const hr = release(
      {},
      {
        [Annotations.retryAttempts]: '5',
        [Annotations.retryExhausted]: 'X',
        [Annotations.retryResetAt]: 'mine',
        [Flux.requestedAt]: 'R',
      },
    );
    expect(pendingRestart(hr.metadata.annotations)).toBe('mine');
    expect(restartPatch(hr, 'mine').metadata.annotations).toEqual({
      [Annotations.retryAttempts]: null,
      [Annotations.retryExhausted]: null,
      [Annotations.retryResetHandled]: 'mine',
    });
    expect(restartPatch(hr, 'mine', { token: 'T', episode: 'e' }).metadata.annotations).toEqual({
      [Annotations.retryAttempts]: '0',
      [Annotations.retryExhausted]: null,
      [Annotations.retryResetHandled]: 'mine',
      [Annotations.retryLastAttempt]: 'T',
      [Annotations.retryEpisode]: 'e',
      [Flux.requestedAt]: 'T',
      [Flux.resetAt]: 'T',
    });
  });

  it.each<[string, Record<string, string>, string | undefined]>([
    ['no token', {}, undefined],
    ['an empty token', { [Annotations.retryResetAt]: '' }, undefined],
    ['a new token', { [Annotations.retryResetAt]: 'b', [Annotations.retryResetHandled]: 'a' }, 'b'],
    ['a handled token', { [Annotations.retryResetAt]: 'a', [Annotations.retryResetHandled]: 'a' }, undefined],
  ])('a restart is pending for %s: %s', (_n, annotations, expected) => {
    expect(pendingRestart(annotations)).toBe(expected);
  });

  it('clearing removes only our annotations that are there', () => {
    const hr = release(
      {},
      { [Annotations.retryAttempts]: '2', [Annotations.retryEpisode]: 'e', [Flux.requestedAt]: 'T' },
    );
    expect(clearPatch(hr).metadata.annotations).toEqual({
      [Annotations.retryAttempts]: null,
      [Annotations.retryEpisode]: null,
    });
  });

  it('a fresh token differs from every token Flux has seen', () => {
    const now = Date.parse('2026-01-01T00:00:00Z');
    const hr = release(
      { lastHandledReconcileAt: '2026-01-01T00:00:00.001Z', lastHandledResetAt: '2026-01-01T00:00:00.002Z' },
      { [Flux.requestedAt]: '2026-01-01T00:00:00.000Z' },
    );
    expect(freshToken(hr, now)).toBe('2026-01-01T00:00:00.003Z');
    expect(freshToken(release({}), now)).toBe('2026-01-01T00:00:00.000Z');
  });
});
