import { describe, expect, it } from 'vitest';
import type { HelmRelease } from '../flux/helmrelease.ts';
import { Labels } from '../names.ts';
import { UnstampedCreations } from './created.ts';

function release(uid: string, o: { stamped?: boolean; valuesFrom?: boolean } = {}): HelmRelease {
  return {
    metadata: {
      name: `app-${uid}`,
      namespace: 'ns',
      uid,
      resourceVersion: '1',
      generation: 1,
      labels: o.stamped ? { [Labels.managed]: 'true' } : {},
      annotations: {},
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
  ])('%s', (_name, hr, remembered) => {
    const c = new UnstampedCreations();
    c.created(hr);
    expect(c.has(hr)).toBe(remembered);
    expect(c.size).toBe(remembered ? 1 : 0);
  });

  it('forgets a release once it is stamped, and one that is deleted', () => {
    const c = new UnstampedCreations();
    c.created(release('a'));
    c.created(release('b'));
    c.updated(release('a')); // still unstamped: kept
    expect(c.has(release('a'))).toBe(true);
    c.updated(release('a', { stamped: true }));
    c.deleted(release('b'));
    expect(c.has(release('a'))).toBe(false);
    expect(c.has(release('b'))).toBe(false);
    expect(c.size).toBe(0);
  });

  it('is bounded: the oldest is forgotten first', () => {
    const c = new UnstampedCreations(2);
    for (const uid of ['a', 'b', 'c']) c.created(release(uid));
    expect(c.size).toBe(2);
    expect(['a', 'b', 'c'].map((uid) => c.has(release(uid)))).toEqual([false, true, true]);
  });
});
