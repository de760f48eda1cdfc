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
});
