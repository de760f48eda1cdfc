import { describe, expect, it } from 'vitest';
import { Annotations } from '../names.ts';
import { linkTargets, sourceAllowed, splitNames } from './links.ts';

describe('explicit links', () => {
  it.each([
    [undefined, []],
    ['', []],
    ['a', ['a']],
    [' a , b ,, a ', ['a', 'b']],
  ])('splitNames(%j)', (raw, want) => {
    expect(splitNames(raw)).toEqual(want);
  });

  it.each([
    ['our keys, own namespace', { [Annotations.linkReleases]: 'a, b' }, false, ['src/a', 'src/b']],
    [
      'our keys, another namespace',
      { [Annotations.linkReleases]: 'a', [Annotations.linkNamespace]: 'apps' },
      false,
      ['apps/a'],
    ],
    ['compat keys ignored without the flag', { 'nebius.ai/helmreleases-name': 'a' }, false, []],
    [
      'nebius keys default to flux-system',
      { 'nebius.ai/helmreleases-name': 'a,b' },
      true,
      ['flux-system/a', 'flux-system/b'],
    ],
    [
      'uburro keys with a namespace',
      { 'uburro.github.com/helmreleases-name': 'a', 'uburro.github.com/helmreleases-namespace': 'x' },
      true,
      ['x/a'],
    ],
    [
      'duplicates across key sets once',
      {
        [Annotations.linkReleases]: 'a',
        'nebius.ai/helmreleases-name': 'a',
        'nebius.ai/helmreleases-namespace': 'src',
      },
      true,
      ['src/a'],
    ],
  ])('linkTargets: %s', (_name, annotations, compat, want) => {
    expect(linkTargets('src', annotations, compat).map((t) => `${t.namespace}/${t.name}`)).toEqual(want);
  });

  it.each([
    ['same namespace', 'apps', {}, true],
    ['other namespace, no opt-in', 'other', {}, false],
    ['other namespace, listed', 'other', { [Annotations.allowSourceNamespaces]: 'x, other' }, true],
    ['other namespace, wildcard', 'other', { [Annotations.allowSourceNamespaces]: '*' }, true],
    ['other namespace, someone else listed', 'other', { [Annotations.allowSourceNamespaces]: 'x' }, false],
  ])('sourceAllowed: %s', (_name, sourceNs, annotations, want) => {
    expect(sourceAllowed('apps', annotations, sourceNs)).toBe(want);
  });

  it.each([
    ['same namespace: still allowed', 'apps', {}, true],
    ['other namespace, listed: refused', 'other', { [Annotations.allowSourceNamespaces]: 'other' }, false],
    ['other namespace, wildcard: refused', 'other', { [Annotations.allowSourceNamespaces]: '*' }, false],
    ['other namespace, no opt-in: refused', 'other', {}, false],
  ])('sourceAllowed with --no-cross-namespace-links: %s', (_name, sourceNs, annotations, want) => {
    expect(sourceAllowed('apps', annotations, sourceNs, true)).toBe(want);
  });
});
