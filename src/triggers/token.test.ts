import { describe, expect, it } from 'vitest';
import { FakeClock } from '../../test/support/clock.ts';
import { formatNanos, tokenSource } from './token.ts';

describe('reconcile tokens', () => {
  it('are RFC3339 with nine fractional digits', () => {
    expect(formatNanos(1_767_225_600_123_456_789n)).toBe('2026-01-01T00:00:00.123456789Z');
  });

  it('differ even when the clock does not move', () => {
    const next = tokenSource(new FakeClock());
    const tokens = Array.from({ length: 1000 }, next);
    expect(new Set(tokens).size).toBe(1000);
    expect([...tokens].sort()).toEqual(tokens);
  });
});
