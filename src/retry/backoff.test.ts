import { describe, expect, it } from 'vitest';
import { backoffDelay, jitterFraction } from './backoff.ts';

const noJitter = { baseMs: 30_000, factor: 2, maxMs: 600_000, jitter: 0 };

describe('backoffDelay', () => {
  it.each([
    [0, 30_000],
    [1, 60_000],
    [2, 120_000],
    [3, 240_000],
    [4, 480_000],
    [5, 600_000],
    [50, 600_000],
    [5000, 600_000],
  ])('after %i retries the next waits %i ms (no jitter)', (attempt, ms) => {
    expect(backoffDelay(attempt, noJitter, 'seed')).toBe(ms);
  });

  it('jitter adds at most the given fraction, and is the same for the same seed', () => {
    const p = { ...noJitter, jitter: 0.2 };
    for (let i = 0; i < 200; i++) {
      const d = backoffDelay(1, p, `uid-${i}`);
      expect(d).toBeGreaterThanOrEqual(60_000);
      expect(d).toBeLessThan(72_000);
      expect(backoffDelay(1, p, `uid-${i}`)).toBe(d);
    }
  });

  it('spreads releases that failed together', () => {
    const fractions = Array.from({ length: 1000 }, (_, i) => jitterFraction(`uid-${i}/e/0`));
    const buckets = [0, 0, 0, 0];
    for (const f of fractions) buckets[Math.floor(f * 4)] = (buckets[Math.floor(f * 4)] ?? 0) + 1;
    for (const b of buckets) expect(b).toBeGreaterThan(150);
  });
});
