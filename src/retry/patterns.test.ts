import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../config.ts';
import {
  DEFAULT_TRANSIENT_PATTERNS,
  firstMatch,
  parseReleasePatterns,
  transientPatterns,
} from './patterns.ts';

describe('transient patterns', () => {
  it('the defaults compile and are case-insensitive', () => {
    const c = transientPatterns([]);
    expect(c.ok && c.patterns.length).toBe(DEFAULT_TRANSIENT_PATTERNS.length);
    expect(c.ok && firstMatch(c.patterns, 'Context Deadline Exceeded')).toBeTruthy();
  });

  it.each([
    ['(unclosed', 'Unterminated group'],
    ['[a-', 'Unterminated character class'],
    ['x{2,1}', 'numbers out of order'],
  ])('an invalid flag pattern %s stops start-up, naming it', (pattern, why) => {
    expect(() => parseConfig(['--retry-patterns', pattern], {})).toThrow(ConfigError);
    expect(() => parseConfig(['--retry-patterns', pattern], {})).toThrow(
      `--retry-patterns: "${pattern}" is not a valid regular expression`,
    );
    expect(() => parseConfig([], { AUTOPILOT_RETRY_PATTERNS: `ok\n${pattern}` })).toThrow(why);
  });

  it('valid flag patterns are accepted', () => {
    expect(
      parseConfig(['--retry-patterns', 'connection reset', '--retry-patterns', '50[23] '], {})[
        'retry-patterns'
      ],
    ).toEqual(['connection reset', '50[23]']);
  });

  it.each([
    [['--retry-base-delay', '0'], 'must be greater than 0'],
    [['--retry-base-delay', '20m'], 'must not exceed --retry-max-delay'],
    [['--retry-factor', '0.5'], '--retry-factor'],
    [['--retry-jitter', '2'], '--retry-jitter'],
  ])('invalid backoff settings stop start-up: %j', (argv, message) => {
    expect(() => parseConfig(argv, {})).toThrow(message);
  });

  it.each<[string | undefined, number]>([
    [undefined, 0],
    ['', 0],
    ['a\n\n  b  \n', 2],
  ])('per-release annotation %j has %i patterns', (raw, n) => {
    const c = parseReleasePatterns(raw, 'annotation');
    expect(c.ok && c.patterns.length).toBe(n);
  });

  it('refuses overlong patterns and too many of them', () => {
    expect(parseReleasePatterns('x'.repeat(600), 'a')).toMatchObject({ ok: false });
    expect(parseReleasePatterns(Array.from({ length: 40 }, (_, i) => `p${i}`).join('\n'), 'a')).toMatchObject(
      { ok: false },
    );
  });
});
