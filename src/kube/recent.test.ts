import { describe, expect, it } from 'vitest';
import { FakeClock } from '../../test/support/clock.ts';
import { RecentChanges } from './recent.ts';

describe('RecentChanges', () => {
  it('keeps the events of the last maxAgeMs, oldest first', async () => {
    const clock = new FakeClock();
    const r = new RecentChanges({ maxAgeMs: 1000, maxEntries: 100, clock });
    r.note('ConfigMap', 'ns', 'a');
    await clock.advance(600);
    r.note('Secret', 'ns', 'b');
    await clock.advance(600);
    r.note('HelmRelease', 'ns', 'c');
    expect(r.list().map((c) => c.name)).toEqual(['b', 'c']);
    await clock.advance(2000);
    expect(r.list()).toEqual([]);
  });

  it('holds at most maxEntries, dropping the oldest', () => {
    const r = new RecentChanges({ maxAgeMs: 60_000, maxEntries: 3, clock: new FakeClock() });
    for (let i = 0; i < 5000; i++) r.note('ConfigMap', 'ns', `cm-${i}`);
    expect(r.size).toBe(3);
    expect(r.list().map((c) => c.name)).toEqual(['cm-4997', 'cm-4998', 'cm-4999']);
  });
});
