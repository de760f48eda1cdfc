import { describe, expect, it } from 'vitest';
import type { ValuesSourceKind } from '../../src/flux/helmrelease.ts';
import type { OperatorCaches } from '../../src/kube/caches.ts';
import { passOrder } from './controller.ts';
import { TriggerIndex } from './index.ts';

type Source = { kind: ValuesSourceKind; namespace: string; name: string; rv: string };

/** Caches over releases (namespace/name consuming ConfigMaps by name) and sources with resourceVersions. */
function caches(releases: { ns: string; name: string; consumes: string[] }[], sources: Source[]) {
  const find = (kind: ValuesSourceKind) => ({
    get: (namespace: string, name: string) => {
      const s = sources.find((x) => x.kind === kind && x.namespace === namespace && x.name === name);
      return s && { namespace, name, resourceVersion: s.rv, value: { links: {} } };
    },
  });
  return {
    helmReleases: {
      list: () =>
        releases.map((r) => ({
          namespace: r.ns,
          name: r.name,
          resourceVersion: '1',
          value: { valuesFrom: r.consumes.map((name) => ({ kind: 'ConfigMap', name })) },
        })),
    },
    configMaps: find('ConfigMap'),
    secrets: find('Secret'),
  } as unknown as OperatorCaches;
}

describe('passOrder: the start-up pass serves the release with the newest source first', () => {
  it('orders by the highest resourceVersion among consumed and linking sources, numerically', () => {
    const index = new TriggerIndex();
    index.setLinks('Secret', 'other', 'link', [{ namespace: 'ns', name: 'linked' }]);
    const order = passOrder({
      caches: caches(
        [
          { ns: 'ns', name: 'old', consumes: ['a'] },
          { ns: 'ns', name: 'changed-at-start', consumes: ['a', 'b'] },
          { ns: 'ns', name: 'linked', consumes: ['a'] },
          { ns: 'ns', name: 'no-source', consumes: ['missing'] },
          { ns: 'ns', name: 'middle', consumes: ['c'] },
          { ns: 'skipped', name: 'out-of-scope', consumes: ['z'] },
        ],
        [
          { kind: 'ConfigMap', namespace: 'ns', name: 'a', rv: '90' },
          { kind: 'ConfigMap', namespace: 'ns', name: 'b', rv: '100000' },
          { kind: 'ConfigMap', namespace: 'ns', name: 'c', rv: '950' },
          { kind: 'Secret', namespace: 'other', name: 'link', rv: '99999' },
          { kind: 'ConfigMap', namespace: 'skipped', name: 'z', rv: '999999' },
        ],
      ),
      index,
      inScope: (ns) => ns !== 'skipped',
    });
    expect(order).toEqual(['ns/changed-at-start', 'ns/linked', 'ns/middle', 'ns/old', 'ns/no-source']);
  });

  it('keeps every release when resourceVersions are not integers (they sort last, in list order)', () => {
    const order = passOrder({
      caches: caches(
        [
          { ns: 'ns', name: 'x', consumes: ['opaque'] },
          { ns: 'ns', name: 'y', consumes: ['n'] },
        ],
        [
          { kind: 'ConfigMap', namespace: 'ns', name: 'opaque', rv: 'abc' },
          { kind: 'ConfigMap', namespace: 'ns', name: 'n', rv: '7' },
        ],
      ),
      index: new TriggerIndex(),
      inScope: () => true,
    });
    expect(order).toEqual(['ns/y', 'ns/x']);
  });
});
