import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config.ts';
import { type HelmRelease, parseHelmRelease } from '../../src/flux/helmrelease.ts';
import { ApiError } from '../../src/kube/client.ts';
import type { EventSpec } from '../../src/kube/events.ts';
import { Annotations } from '../../src/names.ts';
import { episodeFingerprint } from '../../src/retry/state.ts';
import { FakeClock, flushPromises } from '../../test/support/clock.ts';
import {
  HelmErrors,
  helmReleaseObject,
  inProgress,
  released,
  stalledFailure,
} from '../../test/support/flux-status.ts';
import { testLogger } from '../../test/support/log.ts';
import { FakeTokens } from '../../test/support/tokens.ts';
import { DEFAULT_BACKOFF, WorkQueue } from '../queue.ts';
import { createRetryMetrics } from './metrics.ts';
import { RetryConflict, RetryReconciler } from './reconciler.ts';

const T0 = Date.parse('2026-01-01T00:00:00Z');
const o = { namespace: 'apps', name: 'podinfo', generation: 1, at: new Date(T0).toISOString() };

function release(
  status: Record<string, unknown>,
  resourceVersion = '5',
  annotations: Record<string, string> = {},
): HelmRelease {
  const obj = helmReleaseObject(o.namespace, o.name, { annotations });
  const p = parseHelmRelease({
    ...obj,
    metadata: { ...obj.metadata, uid: 'u-1', resourceVersion, generation: 1 },
    status,
  });
  if (!p.ok) throw new Error(p.error);
  return p.value;
}

const failedRelease = (resourceVersion = '5', annotations: Record<string, string> = {}) =>
  release(stalledFailure(o, 'upgrade', HelmErrors.legacyTimeout), resourceVersion, annotations);

/**
 * A reconciler over one cached release (cache.hr, replaceable) whose writes answer with `answers` in turn
 * (then succeed); write tokens from `tokens` (granted at once by default).
 */
function setup(
  answers: (Error | undefined)[],
  o2: { tokens?: FakeTokens; now?: number; hr?: HelmRelease; argv?: string[] } = {},
) {
  const registry = new Registry();
  const clock = new FakeClock(o2.now ?? T0 + 3_600_000); // default: long past the first retry's due time
  const cache: { hr: HelmRelease | undefined } = { hr: o2.hr ?? failedRelease() };
  const tokens = o2.tokens ?? new FakeTokens({ auto: true });
  let stopping = false;
  const writes: { metadata: { resourceVersion: string } }[] = [];
  const events: EventSpec[] = [];
  const reconciler = new RetryReconciler({
    client: {
      mergePatch: async (_path, patch) => {
        writes.push(patch as (typeof writes)[number]);
        const answer = answers.shift();
        if (answer) throw answer;
        return {};
      },
    },
    caches: {
      helmReleases: {
        get: () => cache.hr && { ...o, resourceVersion: cache.hr.metadata.resourceVersion, value: cache.hr },
      },
    },
    config: parseConfig(o2.argv ?? [], {}),
    clock,
    log: testLogger(),
    events: { emit: async (_target, e) => void events.push(e) },
    writeLimiter: tokens,
    metrics: createRetryMetrics(registry),
    stopped: () => stopping,
  });
  const outcomes = async () => {
    const metric = await registry.getSingleMetric('helmrelease_autopilot_retries_total')?.get();
    return Object.fromEntries((metric?.values ?? []).map((v) => [v.labels.outcome, v.value]));
  };
  const stop = () => {
    stopping = true;
  };
  return { reconciler, clock, writes, events, outcomes, cache, tokens, stop };
}

const conflict = new ApiError(409, 'Conflict', 'the object has been modified');
const unavailable = new ApiError(503, 'ServiceUnavailable', 'etcd is down');
const gone = new ApiError(404, 'NotFound', 'not found');

describe('RetryReconciler: what a write answer makes of the reconcile', () => {
  it.each<[string, Error | undefined, 'done' | 'conflict' | 'error', Record<string, number>, string[]]>([
    ['written: done, counted as triggered', undefined, 'done', { triggered: 1 }, ['RetryTriggered']],
    [
      '409: throws RetryConflict (the queue backs off), counted as conflict',
      conflict,
      'conflict',
      { conflict: 1 },
      [],
    ],
    ['another error: thrown as it is, counted as error', unavailable, 'error', { error: 1 }, []],
    ['404: done, nothing counted (the release is gone)', gone, 'done', {}, []],
  ])('%s', async (_case, answer, result, counted, reasons) => {
    const r = setup([answer]);
    const run = r.reconciler.reconcile('apps/podinfo');
    if (result === 'done') await expect(run).resolves.toBeUndefined();
    if (result === 'conflict') await expect(run).rejects.toBeInstanceOf(RetryConflict);
    if (result === 'error') await expect(run).rejects.toBe(unavailable);
    expect(r.writes).toHaveLength(1);
    expect(await r.outcomes()).toEqual(counted);
    expect(r.events.map((e) => e.reason)).toEqual(reasons);
  });

  it('a 409 is re-examined after the queue’s base backoff, like a trigger conflict', async () => {
    const r = setup([conflict]);
    const start = r.clock.now();
    const runs: number[] = [];
    const q = new WorkQueue(
      (key) => {
        runs.push(r.clock.now() - start);
        return r.reconciler.reconcile(key);
      },
      { concurrency: 1, debounceMs: 0, clock: r.clock },
    );
    q.start();
    q.add('apps/podinfo');
    await r.clock.advance(10_000);
    expect(runs).toEqual([0, DEFAULT_BACKOFF.baseMs]);
    expect(await r.outcomes()).toEqual({ conflict: 1, triggered: 1 });
    await q.stop();
  });
});

describe('RetryReconciler: --no-release-retry-patterns', () => {
  it('says once per release that the annotation is ignored, and again after it was removed and put back', async () => {
    const annotated = failedRelease('5', { [Annotations.retryPatterns]: 'connection reset' });
    const r = setup([], { argv: ['--no-release-retry-patterns'], hr: annotated });
    const told = () => r.events.filter((e) => e.reason === 'RetrySettingsIgnored').length;
    await r.reconciler.reconcile('apps/podinfo');
    await r.reconciler.reconcile('apps/podinfo');
    expect(told()).toBe(1);
    r.cache.hr = failedRelease();
    await r.reconciler.reconcile('apps/podinfo');
    r.cache.hr = annotated;
    await r.reconciler.reconcile('apps/podinfo');
    expect(told()).toBe(2);
    expect(r.events.find((e) => e.reason === 'RetrySettingsIgnored')).toMatchObject({ type: 'Warning' });
  });

  it('says nothing without the flag', async () => {
    const r = setup([], { hr: failedRelease('5', { [Annotations.retryPatterns]: 'connection reset' }) });
    await r.reconciler.reconcile('apps/podinfo');
    expect(r.events.map((e) => e.reason)).not.toContain('RetrySettingsIgnored');
  });
});

describe('RetryReconciler: write tokens are for writes only', () => {
  it.each<[string, () => HelmRelease, number]>([
    ['Ready, no retry state: none', () => release(released(o)), T0 + 3_600_000],
    ['in progress: none', () => release(inProgress(o)), T0 + 3_600_000],
    ['failed, retry not due yet: wait', () => failedRelease(), T0 + 1000],
    [
      'budget spent and recorded: exhausted',
      () =>
        release(stalledFailure(o, 'upgrade', HelmErrors.legacyTimeout), '5', {
          [Annotations.retryEpisode]: episodeFingerprint(failedRelease()),
          [Annotations.retryAttempts]: '5',
          [Annotations.retryExhausted]: new Date(T0).toISOString(),
        }),
      T0 + 3_600_000,
    ],
  ])('%s: never takes a token', async (_case, hr, now) => {
    const tokens = new FakeTokens();
    const r = setup([], { tokens, now, hr: hr() });
    await r.reconciler.reconcile('apps/podinfo');
    expect(tokens.taken).toBe(0);
    expect(r.writes).toEqual([]);
  });

  it('a write takes its token, then reads the release again: the patch carries the fresh resourceVersion', async () => {
    const tokens = new FakeTokens();
    const r = setup([], { tokens });
    const run = r.reconciler.reconcile('apps/podinfo');
    await flushPromises();
    expect(tokens.waiters).toBe(1);
    r.cache.hr = failedRelease('6'); // Flux wrote status while we waited
    tokens.grant();
    await run;
    expect(tokens.taken).toBe(1);
    expect(r.writes.map((w) => w.metadata.resourceVersion)).toEqual(['6']);
    expect(await r.outcomes()).toEqual({ triggered: 1 });
  });

  it('a write re-decided after its token acts on the new decision (the release became Ready: nothing)', async () => {
    const tokens = new FakeTokens();
    const r = setup([], { tokens });
    const run = r.reconciler.reconcile('apps/podinfo');
    await flushPromises();
    r.cache.hr = release(released(o), '7');
    tokens.grant();
    await expect(run).resolves.toBeUndefined();
    expect(r.writes).toEqual([]);
    expect(await r.outcomes()).toEqual({});
  });

  it('stopping while it waits for its token: writes nothing', async () => {
    const tokens = new FakeTokens();
    const r = setup([], { tokens });
    const run = r.reconciler.reconcile('apps/podinfo');
    await flushPromises();
    r.stop();
    tokens.grant();
    await run;
    expect(r.writes).toEqual([]);
  });
});
