// The layout shows the architecture (README "Layout"): entry points in cmd/ may import every layer;
// controller/ and webhook/ import only src/ (and themselves); src/ imports nothing above it. Tests are
// exempt (they import test/support/).
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '..', '..');

const allowed: Record<string, readonly string[]> = {
  cmd: ['cmd', 'src', 'controller', 'webhook'],
  controller: ['controller', 'src'],
  webhook: ['webhook', 'src'],
  src: ['src'],
};

function sources(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts'))
    .map((f) => join(dir, f));
}

/** The top-level folders a file's relative imports reach into. */
function reached(file: string): string[] {
  const text = readFileSync(join(ROOT, file), 'utf8');
  const specifiers = [...text.matchAll(/(?:from|import)\s*\(?\s*'(\.\.?\/[^']+)'/g)].map(
    (m) => m[1] as string,
  );
  return specifiers.map((s) => relative(ROOT, resolve(ROOT, dirname(file), s)).split('/')[0] as string);
}

describe('layout: which layer imports which', () => {
  it.each(Object.keys(allowed))('%s/ imports only what its layer may', (layer) => {
    const violations = sources(layer).flatMap((file) =>
      reached(file)
        .filter((top) => !allowed[layer]?.includes(top))
        .map((top) => `${file} imports ${top}/`),
    );
    expect(violations).toEqual([]);
  });
});
