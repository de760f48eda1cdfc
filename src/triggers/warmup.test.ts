import { describe, expect, it } from 'vitest';
import type { HelmRelease, ValuesReference } from '../flux/helmrelease.ts';
import { HELM_SECRET_EXCLUDE_SELECTOR, planWarmup } from './warmup.ts';

const ref = (kind: 'ConfigMap' | 'Secret', name: string, valuesKey = 'values.yaml'): ValuesReference => ({
  kind,
  name,
  valuesKey,
  targetPath: '',
  optional: false,
});

const hr = (namespace: string, valuesFrom: ValuesReference[]): HelmRelease => ({
  metadata: {
    name: 'x',
    namespace,
    uid: '',
    resourceVersion: '',
    generation: 1,
    labels: {},
    annotations: {},
  },
  suspend: false,
  valuesFrom,
  status: { conditions: [], failures: 0, installFailures: 0, upgradeFailures: 0 },
});

const many = (namespace: string, n: number, kind: 'ConfigMap' | 'Secret' = 'ConfigMap') =>
  Array.from({ length: n }, (_, i) => hr(namespace, [ref(kind, `o-${i}`)]));

describe('planWarmup', () => {
  it.each([
    ['few references: GETs', many('a', 5), 5, 0],
    ['many references, most of the namespace: LIST', many('a', 100), 150, 1],
    ['many references, a small share of the namespace: GETs', many('a', 100), 1000, 0],
  ])('%s', (_name, releases, listed, groups) => {
    expect(planWarmup(releases, () => listed, { minObjects: 20, minShare: 0.5 })).toHaveLength(groups);
  });

  it('groups by kind and namespace, merging the keys wanted of one object', () => {
    const releases = [
      hr('a', [ref('ConfigMap', 'shared'), ref('Secret', 's')]),
      hr('a', [ref('ConfigMap', 'shared', 'other.yaml')]),
      hr('b', [ref('ConfigMap', 'shared')]),
    ];
    const groups = planWarmup(releases, () => 1, { minObjects: 1, minShare: 0.5 });
    expect(groups.map((g) => [g.kind, g.namespace, [...g.wanted], g.labelSelector])).toEqual([
      ['ConfigMap', 'a', [['shared', ['values.yaml', 'other.yaml']]], undefined],
      ['Secret', 'a', [['s', ['values.yaml']]], HELM_SECRET_EXCLUDE_SELECTOR],
      ['ConfigMap', 'b', [['shared', ['values.yaml']]], undefined],
    ]);
  });
});
