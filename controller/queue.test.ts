import { describe, expect, it } from 'vitest';
import { FakeClock, flushPromises } from '../test/support/clock.ts';
import { TokenBucket, WorkQueue } from './queue.ts';

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
});
