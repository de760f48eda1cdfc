// The README's reference tables agree with the code (one place for each name).
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { README, renderReadme } from '../../hack/docs.ts';
import { FLAGS } from '../../src/config.ts';
import { Annotations, CompatLinkAnnotations, Flux, Labels } from '../../src/names.ts';

const readme = readFileSync(README, 'utf8');

describe('README', () => {
  it('has the flags table generated from src/config.ts (run npm run docs after changing a flag)', () => {
    expect(readme).toBe(renderReadme(readme));
  });

  it.each(Object.keys(FLAGS))('documents --%s', (flag) => {
    expect(readme).toContain(`\`--${flag}`);
  });

  const names = [
    ...Object.values(Labels),
    ...Object.values(Annotations),
    ...CompatLinkAnnotations.flatMap((c) => [c.releases, c.namespace]),
    Flux.requestedAt,
    Flux.forceAt,
    Flux.resetAt,
    Flux.watchLabel,
    Flux.shardKey,
  ];
  it.each(names)('explains %s', (name) => {
    expect(readme).toContain(`\`${name}\``);
  });
});
