import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { TriggerIndex } from './index.ts';

describe('TriggerIndex', () => {
  const ref = (kind: 'ConfigMap' | 'Secret', name: string) => ({
    kind,
    name,
    valuesKey: 'values.yaml',
    targetPath: '',
    optional: false,
  });

  it('finds consumers and link targets of a source, and forgets them', () => {
    const ix = new TriggerIndex();
    ix.setRelease('ns', 'a', [ref('ConfigMap', 'cm'), ref('Secret', 's')]);
    ix.setRelease('ns', 'b', [ref('ConfigMap', 'cm')]);
    ix.setLinks('ConfigMap', 'other', 'cm', [{ namespace: 'ns', name: 'c' }]);
    expect(ix.releasesOf('ConfigMap', 'ns', 'cm')).toEqual(new Set(['ns/a', 'ns/b']));
    expect(ix.releasesOf('Secret', 'ns', 's')).toEqual(new Set(['ns/a']));
    expect(ix.releasesOf('ConfigMap', 'other', 'cm')).toEqual(new Set(['ns/c']));
    expect(ix.linkedSources('ns', 'c')).toEqual(['ConfigMap/other/cm']);

    ix.setRelease('ns', 'a', [ref('Secret', 's')]);
    expect(ix.releasesOf('ConfigMap', 'ns', 'cm')).toEqual(new Set(['ns/b']));
    ix.deleteRelease('ns', 'b');
    expect(ix.releasesOf('ConfigMap', 'ns', 'cm')).toEqual(new Set());
    expect(ix.setLinks('ConfigMap', 'other', 'cm', [])).toEqual(['ns/c']);
    expect(ix.linkedSources('ns', 'c')).toEqual([]);
    expect(ix.stats).toEqual({ releases: 1, linkingSources: 0 });
  });

  it('answers as a plain model of the relation after any sequence of changes (one, two, many consumers)', () => {
    const names = ['a', 'b', 'c', 'd'];
    const sources = ['cm1', 'cm2', 'cm3'];
    const op = fc.oneof(
      fc.record({
        release: fc.constantFrom(...names),
        consumes: fc.array(fc.constantFrom(...sources), { maxLength: 4 }),
      }),
      fc.record({ deleted: fc.constantFrom(...names) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 40 }), (ops) => {
        const ix = new TriggerIndex();
        const model = new Map<string, Set<string>>();
        for (const o of ops) {
          if ('deleted' in o) {
            ix.deleteRelease('ns', o.deleted);
            model.delete(o.deleted);
          } else {
            ix.setRelease(
              'ns',
              o.release,
              o.consumes.map((n) => ref('ConfigMap', n)),
            );
            model.set(o.release, new Set(o.consumes));
          }
        }
        for (const src of sources) {
          const want = new Set([...model].filter(([, s]) => s.has(src)).map(([r]) => `ns/${r}`));
          expect(ix.releasesOf('ConfigMap', 'ns', src)).toEqual(want);
        }
        expect(ix.stats.releases).toBe([...model.values()].filter((s) => s.size > 0).length);
      }),
    );
  });
});
