import { describe, expect, it } from 'vitest';
import { type HelmRelease, parseHelmRelease } from '../src/flux/helmrelease.ts';
import { Flux } from '../src/names.ts';
import { helmReleaseObject, inProgress, released } from '../test/support/flux-status.ts';
import { RolloutLine } from './rollout.ts';

const AT = '2026-01-01T00:00:00Z';
const clock = { now: () => Date.parse(AT) + 1000, setTimeout: () => 0, clearTimeout: () => {} };

function release(
  name: string,
  requestedAt: string | undefined,
  status: Record<string, unknown>,
): HelmRelease {
  const p = parseHelmRelease({
    ...helmReleaseObject('ns', name, requestedAt ? { annotations: { [Flux.requestedAt]: requestedAt } } : {}),
    status,
  });
  if (!p.ok) throw new Error(p.error);
  return p.value;
}
const o = (name: string) => ({ namespace: 'ns', name, generation: 1, at: AT });

describe('RolloutLine: at most max in flight, the rest in line, first come first served', () => {
  it('reserves up to max slots, then lines up the others and wakes them in order as slots free', () => {
    const line = new RolloutLine(2, clock);
    const woken: string[] = [];
    const wake = (k: string) => () => woken.push(k);
    expect(line.acquire('a', 'triggers', wake('a'))).toBe(true);
    expect(line.acquire('b', 'triggers', wake('b'))).toBe(true);
    expect(line.acquire('c', 'triggers', wake('c'))).toBe(false);
    expect(line.acquire('d', 'retries', wake('d'))).toBe(false);
    expect([line.inFlight, line.waiting]).toEqual([2, 2]);
    line.wrote('a', 'T-a');
    // d may not overtake c: one slot frees, c is woken, d is not yet.
    line.release('b');
    expect(woken).toEqual(['c']);
    expect(line.acquire('d', 'retries', wake('d'))).toBe(false);
    expect(line.acquire('c', 'triggers', wake('c'))).toBe(true);
    expect([line.inFlight, line.waiting]).toEqual([2, 1]);
  });

  it('a release in flight writes nothing more (a reconcile from a stale read), and its slot stays', () => {
    const line = new RolloutLine(2, clock);
    expect(line.acquire('a', 'triggers', () => {})).toBe(true);
    line.wrote('a', 'T-a');
    expect(line.acquire('a', 'triggers', () => {})).toBe(false);
    expect(line.acquire('a', 'retries', () => {})).toBe(false);
    expect([line.inFlight, line.waiting]).toEqual([1, 0]);
  });

  it('a waiter that no longer needs to write leaves, and the next one is woken', () => {
    const line = new RolloutLine(1, clock);
    const woken: string[] = [];
    line.acquire('a', 'triggers', () => {});
    line.acquire('b', 'triggers', () => woken.push('b'));
    line.acquire('c', 'triggers', () => woken.push('c'));
    line.release('a');
    expect(woken).toEqual(['b']);
    line.leave('b', 'triggers');
    expect(woken).toEqual(['b', 'c']);
    expect(line.acquire('c', 'triggers', () => {})).toBe(true);
  });

  it.each<[string, HelmRelease | undefined, boolean]>([
    ['our request not handled yet', release('a', 'T-a', released({ ...o('a'), handled: 'T-0' })), false],
    [
      'handled, an upgrade still running',
      release('a', 'T-a', { ...inProgress(o('a')), lastHandledReconcileAt: 'T-a' }),
      false,
    ],
    ['handled and done', release('a', 'T-a', released({ ...o('a'), handled: 'T-a' })), true],
    [
      'superseded by a later request, handled and done',
      release('a', 'T-b', released({ ...o('a'), handled: 'T-b' })),
      true,
    ],
    ['deleted', undefined, true],
  ])('a slot is freed when the release shows: %s -> %s', (_name, hr, freed) => {
    const line = new RolloutLine(1, clock);
    line.acquire('ns/a', 'triggers', () => {});
    line.wrote('ns/a', 'T-a');
    // The cache shows our token first (so a later request means ours was replaced).
    line.observe('ns/a', release('a', 'T-a', released({ ...o('a'), handled: 'T-0' })));
    line.observe('ns/a', hr);
    expect(line.inFlight).toBe(freed ? 0 : 1);
  });

  it('a stale read from before our write (an older request, handled) does not free the slot', () => {
    const line = new RolloutLine(1, clock);
    line.acquire('ns/a', 'triggers', () => {});
    line.wrote('ns/a', 'T-a');
    line.observe('ns/a', release('a', 'T-0', released({ ...o('a'), handled: 'T-0' })));
    expect(line.inFlight).toBe(1);
  });
});
