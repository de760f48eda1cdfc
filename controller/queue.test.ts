import { describe, expect, it } from 'vitest';
import { FakeClock, flushPromises } from '../test/support/clock.ts';
import { DEFAULT_BACKOFF, type ReconcileResult, TokenBucket, WorkQueue } from './queue.ts';

function recorder() {
  const calls: { key: string; at: number }[] = [];
  return calls;
}

describe('WorkQueue', () => {
  it('coalesces adds inside the debounce window into one run', async () => {
    const clock = new FakeClock();
    const calls = recorder();
    const q = new WorkQueue(async (key) => void calls.push({ key, at: clock.now() }), {
      concurrency: 2,
      debounceMs: 1000,
      clock,
    });
    q.start();
    for (let i = 0; i < 10; i++) {
      q.add('ns/a');
      await clock.advance(50);
    }
    expect(calls).toEqual([]);
    await clock.advance(1000);
    expect(calls.map((c) => c.key)).toEqual(['ns/a']);
  });

  it('does not let a stream of adds postpone a key beyond one window', async () => {
    const clock = new FakeClock();
    const start = clock.now();
    const calls = recorder();
    const q = new WorkQueue(async (key) => void calls.push({ key, at: clock.now() }), {
      concurrency: 1,
      debounceMs: 1000,
      clock,
    });
    q.start();
    for (let i = 0; i < 30; i++) {
      q.add('k');
      await clock.advance(100);
    }
    expect(calls[0]?.at).toBe(start + 1000);
    expect(calls.length).toBe(3);
  });

  it('runs a key once more when it is added while being processed, never concurrently', async () => {
    const clock = new FakeClock();
    let active = 0;
    let maxActive = 0;
    let runs = 0;
    let release: () => void = () => {};
    const q = new WorkQueue(
      async () => {
        active++;
        runs++;
        maxActive = Math.max(maxActive, active);
        await new Promise<void>((r) => {
          release = r;
        });
        active--;
        return undefined;
      },
      { concurrency: 4, debounceMs: 0, clock },
    );
    q.start();
    q.add('k');
    await flushPromises();
    q.add('k');
    q.add('k');
    await flushPromises();
    expect(runs).toBe(1);
    release();
    await flushPromises();
    expect(runs).toBe(2);
    release();
    await flushPromises();
    expect(runs).toBe(2);
    expect(maxActive).toBe(1);
  });

  it('requeues a failing key with exponential backoff and resets it on success', async () => {
    const clock = new FakeClock();
    const start = clock.now();
    const calls: number[] = [];
    let failuresLeft = 3;
    const q = new WorkQueue(
      async () => {
        calls.push(clock.now() - start);
        if (failuresLeft-- > 0) throw new Error('boom');
        return undefined;
      },
      { concurrency: 1, debounceMs: 0, clock, backoff: { baseMs: 100, maxMs: 250 } },
    );
    q.start();
    q.add('k');
    await clock.advance(2000);
    expect(calls).toEqual([0, 100, 300, 550]);
  });

  it('honours concurrency', async () => {
    const clock = new FakeClock();
    let active = 0;
    let maxActive = 0;
    const q = new WorkQueue(
      async () => {
        active++;
        maxActive = Math.max(maxActive, active);
        await new Promise<void>((r) => clock.setTimeout(r, 10));
        active--;
        return undefined;
      },
      { concurrency: 3, debounceMs: 0, clock },
    );
    q.start();
    for (let i = 0; i < 20; i++) q.add(`k${i}`);
    await clock.advance(1000);
    expect(maxActive).toBe(3);
    expect(q.depth).toBe(0);
  });

  it('addAfter keeps the earliest due time and handler results requeue', async () => {
    const clock = new FakeClock();
    const start = clock.now();
    const calls: number[] = [];
    const q = new WorkQueue(
      async () => {
        calls.push(clock.now() - start);
        return calls.length === 1 ? { requeueAfterMs: 500 } : undefined;
      },
      { concurrency: 1, debounceMs: 0, clock },
    );
    q.start();
    q.addAfter('k', 300);
    q.addAfter('k', 1000);
    await clock.advance(5000);
    expect(calls).toEqual([300, 800]);
  });

  it('stop() waits for running handlers and takes no more keys', async () => {
    const clock = new FakeClock();
    let done = 0;
    const q = new WorkQueue(
      async () => {
        await flushPromises();
        done++;
        return undefined;
      },
      { concurrency: 1, debounceMs: 0, clock },
    );
    q.start();
    q.add('a');
    q.add('b');
    await Promise.resolve();
    await q.stop();
    expect(done).toBe(1);
    await clock.advance(1000);
    expect(done).toBe(1);
  });
});

/** A queue whose handler plays `script` (one outcome per run; then done), recording when each run started. */
function scripted(script: ('error' | 'done' | number)[], backoff?: { baseMs: number; maxMs: number }) {
  const clock = new FakeClock();
  const start = clock.now();
  const runs: number[] = [];
  const delays: number[] = [];
  const q = new WorkQueue(
    async (): Promise<ReconcileResult> => {
      runs.push(clock.now() - start);
      const next = script.shift() ?? 'done';
      if (next === 'error') throw new Error('boom');
      return next === 'done' ? undefined : { requeueAfterMs: next };
    },
    {
      concurrency: 1,
      debounceMs: 0,
      clock,
      ...(backoff ? { backoff } : {}),
      onError: (_key, _err, retryInMs) => delays.push(retryInMs),
    },
  );
  q.start();
  return { q, clock, start, runs, delays };
}

describe('WorkQueue requeue policy: the queue alone maps what a reconcile did to when it runs again', () => {
  it('throws -> per-key backoff, 100 ms doubling to 60 s by default', async () => {
    expect(DEFAULT_BACKOFF).toEqual({ baseMs: 100, maxMs: 60_000 });
    const { q, clock, delays } = scripted(Array(12).fill('error'));
    q.add('k');
    await clock.advance(10 * 60_000);
    expect(delays).toEqual([100, 200, 400, 800, 1600, 3200, 6400, 12_800, 25_600, 51_200, 60_000, 60_000]);
  });

  it('throws -> each key backs off on its own count', async () => {
    const { q, clock, runs, delays } = scripted(['error', 'error', 'error']);
    q.add('a');
    await clock.advance(150);
    q.add('b');
    await clock.advance(5000);
    expect(delays).toEqual([100, 200, 100]);
    expect(runs).toEqual([0, 100, 150, 250, 300]);
  });

  it('done -> the failures are forgotten: a later failure backs off from the base again', async () => {
    const { q, clock, delays } = scripted(['error', 'error', 'done', 'error']);
    q.add('k');
    await clock.advance(1000);
    q.add('k');
    await clock.advance(1000);
    expect(delays).toEqual([100, 200, 100]);
  });

  it('requeueAfter -> the failures are forgotten and the key runs again after that delay', async () => {
    const { q, clock, runs, delays } = scripted(['error', 'error', 1000, 'error', 'done']);
    q.add('k');
    await clock.advance(5000);
    expect(runs).toEqual([0, 100, 300, 1300, 1400]);
    expect(delays).toEqual([100, 200, 100]);
  });
});

/** A queue (concurrency 1, no debounce) whose handler records the keys it ran, each taking `ms`. */
function prioritized(ms = 10, lowEvery?: number) {
  const clock = new FakeClock();
  const ran: string[] = [];
  const q = new WorkQueue(
    async (key) => {
      ran.push(key);
      await new Promise<void>((r) => clock.setTimeout(r, ms));
      return undefined;
    },
    { concurrency: 1, debounceMs: 0, clock, ...(lowEvery ? { lowEvery } : {}) },
  );
  return { q, clock, ran };
}

describe('WorkQueue priorities: a change now goes ahead of the start-up pass, which still progresses', () => {
  it('serves high keys ahead of low keys due earlier', async () => {
    const { q, clock, ran } = prioritized();
    for (let i = 0; i < 5; i++) q.addAfter(`low-${i}`, 0, 'low');
    q.start();
    await clock.advance(15); // low-0 ran, low-1 is running
    q.add('change');
    await clock.advance(1000);
    expect(ran).toEqual(['low-0', 'low-1', 'change', 'low-2', 'low-3', 'low-4']);
    expect(q.depth).toBe(0);
  });

  it('serves a key pending at both priorities once, at high, at the earlier due time', async () => {
    const clock = new FakeClock();
    const ran: string[] = [];
    const q = new WorkQueue(async (key) => void ran.push(`${key}@${clock.now() - start}`), {
      concurrency: 1,
      debounceMs: 2000,
      clock,
    });
    const start = clock.now();
    for (let i = 0; i < 3; i++) q.addAfter(`k${i}`, 0, 'low');
    q.add('k2'); // a change to k2 while its start-up run is pending: promoted, not run twice
    q.addAfter('k2', 0, 'low'); // and not demoted again
    q.addAfter('later', 500, 'low');
    q.add('later'); // high, debounced to 2000: the pending low at 500 is earlier and is promoted
    expect(q.depth).toBe(4);
    expect(q.depthLow).toBe(2);
    q.start();
    await clock.advance(5000);
    expect(ran).toEqual(['k2@0', 'k0@0', 'k1@0', 'later@500']);
  });

  it('leaves a debounced change as it is when the pass adds its key: run once, after the debounce', async () => {
    const clock = new FakeClock();
    const start = clock.now();
    const ran: string[] = [];
    const q = new WorkQueue(async (key) => void ran.push(`${key}@${clock.now() - start}`), {
      concurrency: 1,
      debounceMs: 2000,
      clock,
    });
    q.add('changed'); // seen just before the pass (replayed or live): due at 2000
    q.addAfter('changed', 0, 'low'); // the start-up pass reaches it: not brought forward
    q.addAfter('other', 0, 'low');
    q.start();
    await clock.advance(5000);
    expect(ran).toEqual(['other@0', 'changed@2000']);
  });

  it('does not starve low keys: one low after every lowEvery highs while both wait', async () => {
    const { q, clock, ran } = prioritized(10, 3);
    for (let i = 0; i < 4; i++) q.addAfter(`low-${i}`, 0, 'low');
    // A storm of changes: a new high key every 5 ms, faster than the 10 ms each run takes.
    let n = 0;
    const storm = () => {
      q.add(`high-${n++}`);
      if (n < 200) clock.setTimeout(storm, 5);
    };
    storm();
    q.start();
    await clock.advance(200 * 10 + 1000);
    const lows = ran.flatMap((k, i) => (k.startsWith('low') ? [i] : []));
    expect(lows).toEqual([3, 7, 11, 15]);
    expect(ran.length).toBe(204);
  });

  it('serves low keys at full speed when no high key waits', async () => {
    const { q, clock, ran } = prioritized(10);
    for (let i = 0; i < 100; i++) q.addAfter(`low-${i}`, 0, 'low');
    q.start();
    await clock.advance(1000);
    expect(ran.length).toBe(100);
  });

  it('lets I/O in between keys: a change seen during a pass of cache-only reconciles is served early', async () => {
    const ran: string[] = [];
    // Handlers that finish without I/O (microtasks only), like a pass over releases whose values are cached.
    const q = new WorkQueue(async (key) => void ran.push(key), { concurrency: 4, debounceMs: 0 });
    for (let i = 0; i < 2000; i++) q.addAfter(`low-${i}`, 0, 'low');
    q.start();
    setImmediate(() => q.add('change')); // a watch event, delivered by the event loop
    await q.whenLowDone();
    await q.whenIdle();
    expect(ran.length).toBe(2001);
    // Without yielding it would run last (index 2000); slices of 2 ms of wall time serve it within the first
    // few slices. The bound leaves room for a loaded machine (132 seen at load 6), not for no yielding.
    expect(ran.indexOf('change')).toBeLessThan(1000);
    await q.stop();
  });

  it('whenLowDone resolves once every low key has run, high keys waiting or not', async () => {
    const { q, clock, ran } = prioritized(10);
    for (let i = 0; i < 3; i++) q.addAfter(`low-${i}`, 0, 'low');
    q.addAfter('later', 5000);
    let doneAt: number | undefined;
    const start = clock.now();
    void q.whenLowDone().then(() => {
      doneAt = clock.now() - start;
    });
    expect(q.pendingLow).toBe(3);
    q.start();
    await clock.advance(25);
    expect(doneAt).toBeUndefined(); // low-2 is still running
    expect(q.pendingLow).toBe(1);
    await clock.advance(10);
    expect(doneAt).toBe(30);
    expect(ran).toEqual(['low-0', 'low-1', 'low-2']);
  });

  it('requeues a key at the priority it ran at', async () => {
    const clock = new FakeClock();
    const ran: string[] = [];
    const results = new Map<string, ReconcileResult>([['low-a', { requeueAfterMs: 100 }]]);
    const q = new WorkQueue(
      async (key) => {
        ran.push(key);
        const r = results.get(key);
        results.delete(key);
        await new Promise<void>((resolve) => clock.setTimeout(resolve, 50));
        return r;
      },
      { concurrency: 1, debounceMs: 0, clock },
    );
    q.addAfter('low-a', 0, 'low');
    for (let i = 0; i < 3; i++) q.addAfter(`low-${i}`, 0, 'low');
    q.start();
    await clock.advance(120); // low-a ran (requeued for t=150), low-0 runs until 100, low-1 until 150
    q.add('high');
    await clock.advance(1000);
    // At 150 low-a is due again, at low priority: 'high' (added later) goes first.
    expect(ran).toEqual(['low-a', 'low-0', 'low-1', 'high', 'low-2', 'low-a']);
  });

  it('runs a key again at high when a change arrives while its low run is in progress', async () => {
    const { q, clock, ran } = prioritized(10);
    q.addAfter('k', 0, 'low');
    for (let i = 0; i < 3; i++) q.addAfter(`low-${i}`, 0, 'low');
    q.start();
    await clock.advance(5); // k is running
    q.add('k');
    await clock.advance(1000);
    expect(ran).toEqual(['k', 'k', 'low-0', 'low-1', 'low-2']);
  });
});

describe('TokenBucket', () => {
  it('allows a burst, then the sustained rate', async () => {
    const clock = new FakeClock();
    const bucket = new TokenBucket(10, 5, clock);
    const start = clock.now();
    const times: number[] = [];
    const all = Array.from({ length: 8 }, () => bucket.take().then(() => times.push(clock.now() - start)));
    await clock.advance(1000);
    await Promise.all(all);
    expect(times).toEqual([0, 0, 0, 0, 0, 100, 200, 300]);
  });

  it('gives the next token to a change seen now before the start-up pass, without starving the pass', async () => {
    const clock = new FakeClock();
    const bucket = new TokenBucket(10, 1, clock, 2);
    const served: string[] = [];
    const take = (p: 'high' | 'low', name: string) => bucket.take(p).then(() => served.push(name));
    await take('low', 'burst'); // the one burst token
    const all = [
      ...['l1', 'l2', 'l3'].map((n) => take('low', n)),
      ...['h1', 'h2', 'h3', 'h4', 'h5'].map((n) => take('high', n)),
    ];
    expect(bucket.waiters).toEqual({ high: 5, low: 3 });
    await clock.advance(1000);
    await Promise.all(all);
    // Two high waiters, then one low, while both lines wait; each line in order.
    expect(served).toEqual(['burst', 'h1', 'h2', 'l1', 'h3', 'h4', 'l2', 'h5', 'l3']);
  });

  it('serves a high waiter that comes while low ones wait at the next token', async () => {
    const clock = new FakeClock();
    const bucket = new TokenBucket(10, 1, clock);
    const start = clock.now();
    const served: { name: string; at: number }[] = [];
    const take = (p: 'high' | 'low', name: string) =>
      bucket.take(p).then(() => served.push({ name, at: clock.now() - start }));
    const lows = Array.from({ length: 5 }, (_, i) => take('low', `l${i}`));
    await clock.advance(150);
    const high = take('high', 'change');
    await clock.advance(1000);
    await Promise.all([...lows, high]);
    expect(served.slice(0, 3)).toEqual([
      { name: 'l0', at: 0 },
      { name: 'l1', at: 100 },
      { name: 'change', at: 200 },
    ]);
  });

  it('adds nothing for a wall clock stepped back, and takes nothing away', async () => {
    const clock = new FakeClock();
    const bucket = new TokenBucket(10, 2, clock);
    await bucket.take();
    await bucket.take(); // the burst is spent
    clock.stepBack(60_000); // the wall clock steps back a minute
    let got = false;
    void bucket.take().then(() => {
      got = true;
    });
    await clock.advance(100);
    expect(got).toBe(true); // one token after 1/qps, not after a minute
  });
});
