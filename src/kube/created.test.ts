import { describe, expect, it } from 'vitest';
import type { HelmRelease } from '../flux/helmrelease.ts';
import { Annotations, Flux, Labels } from '../names.ts';
import { UnstampedCreations } from './created.ts';

function release(
  uid: string,
  o: { stamped?: boolean; valuesFrom?: boolean; optedOut?: boolean; createdAtMs?: number } = {},
): HelmRelease {
  return {
    metadata: {
      name: `app-${uid}`,
      namespace: 'ns',
      uid,
      resourceVersion: '1',
      generation: 1,
      labels: o.stamped ? { [Labels.managed]: 'true' } : {},
      annotations: o.optedOut ? { [Annotations.ignore]: 'true' } : {},
      ...(o.createdAtMs === undefined ? {} : { createdAtMs: o.createdAtMs }),
    },
    suspend: false,
    valuesFrom:
      o.valuesFrom === false
        ? []
        : [{ kind: 'ConfigMap', name: 'cm', valuesKey: 'values.yaml', targetPath: '', optional: false }],
    status: { conditions: [], failures: 0, installFailures: 0, upgradeFailures: 0 },
  };
}

describe('unstamped creations', () => {
  it.each<[string, HelmRelease, boolean]>([
    ['unstamped, consuming values: remembered', release('a'), true],
    ['stamped by the webhook: not remembered', release('a', { stamped: true }), false],
    ['consuming no values: not remembered', release('a', { valuesFrom: false }), false],
    ['without a uid: not remembered', release(''), false],
    ['opted out (never stamped): not remembered', release('a', { optedOut: true }), false],
  ])('%s', (_name, hr, remembered) => {
    const c = new UnstampedCreations();
    c.created(hr);
    expect(c.has(hr)).toBe(remembered);
    expect(c.size).toBe(remembered ? 1 : 0);
  });

  it('keeps a release stamped since by someone else, forgets it once the operator wrote for it', () => {
    const c = new UnstampedCreations();
    c.created(release('a'));
    c.updated(release('a', { stamped: true })); // the webhook, back, stamped it on an update: still owed
    expect(c.has(release('a', { stamped: true }))).toBe(true);
    c.handled(release('a', { stamped: true }));
    expect(c.has(release('a', { stamped: true }))).toBe(false);
  });

  it('forgets a release that is deleted, opts out or stops consuming values', () => {
    const c = new UnstampedCreations();
    for (const uid of ['a', 'b', 'c']) c.created(release(uid));
    c.deleted(release('a'));
    c.updated(release('b', { optedOut: true }));
    c.updated(release('c', { valuesFrom: false }));
    expect(['a', 'b', 'c'].map((uid) => c.has(release(uid)))).toEqual([false, false, false]);
    expect(c.size).toBe(0);
  });

  it('is bounded: the oldest is forgotten first', () => {
    const c = new UnstampedCreations(2);
    for (const uid of ['a', 'b', 'c']) c.created(release(uid));
    expect(c.size).toBe(2);
    expect(['a', 'b', 'c'].map((uid) => c.has(release(uid)))).toEqual([false, true, true]);
  });

  it('owes a trigger to an unstamped release created after the installation, seen live or not', () => {
    const installed = Date.parse('2026-12-01T00:00:00Z');
    const c = new UnstampedCreations(10, () => installed);
    const later = installed + 1000;
    expect(c.has(release('a', { createdAtMs: later }))).toBe(true); // first list, created while none ran
    expect(c.has(release('b', { createdAtMs: installed - 1000 }))).toBe(false); // before: migration
    expect(c.has(release('c', { createdAtMs: installed }))).toBe(false); // the same second: migration
    expect(c.has(release('a', { createdAtMs: later, stamped: true }))).toBe(false); // stamped by us since
    expect(c.has(release('a', { createdAtMs: later, optedOut: true }))).toBe(false);
    expect(c.has(release('d'))).toBe(false); // no creation time
    expect(new UnstampedCreations().has(release('a', { createdAtMs: later }))).toBe(false); // install unknown
  });

  it('owes nothing once the release carries a new reconcile request (a follower that saw the leader trigger it)', () => {
    const c = new UnstampedCreations();
    const hr = release('a');
    c.created(hr); // every replica's caches see the creation
    const triggered = {
      ...hr,
      metadata: {
        ...hr.metadata,
        labels: { [Labels.managed]: 'true' },
        annotations: { [Flux.requestedAt]: '2026-12-02T01:00:00.000000001Z' },
      },
    };
    expect(c.has(triggered)).toBe(false); // even before the update is seen
    c.updated(triggered); // the leader's write, seen by this replica
    expect(c.size).toBe(0);
  });
});
