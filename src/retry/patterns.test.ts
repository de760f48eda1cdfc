import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../config.ts';
import {
  DEFAULT_TRANSIENT_PATTERNS,
  firstMatch,
  MAX_MATCHED_MESSAGE,
  MAX_PATTERN_LENGTH,
  MAX_RELEASE_PATTERNS,
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
    ['(unclosed', 'missing closing )'],
    ['[a-', 'missing closing ]'],
    ['x{2,1}', 'invalid repeat count'],
    ['(a)\\1', 'invalid escape sequence'],
    ['(?=lookahead)', 'unsupported Perl syntax'],
    ['(?<=lookbehind)x', 'invalid named capture'],
  ])('an invalid or unsupported flag pattern %s stops start-up, naming it', (pattern, why) => {
    expect(() => parseConfig(['--retry-patterns', pattern], {})).toThrow(ConfigError);
    expect(() => parseConfig(['--retry-patterns', pattern], {})).toThrow(
      `--retry-patterns: "${pattern}" is not a valid RE2 regular expression`,
    );
    expect(() => parseConfig([], { AUTOPILOT_RETRY_PATTERNS: `ok\n${pattern}` })).toThrow(why);
  });

  it('a flag pattern whose RE2 program is too large stops start-up', () => {
    expect(() => parseConfig(['--retry-patterns', '\\w{500}'], {})).toThrow(
      /too complex \(\d+ RE2 instructions/,
    );
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

  it.each<[string, string, string]>([
    ['overlong patterns', 'x'.repeat(MAX_PATTERN_LENGTH + 1), 'longer than 512 characters'],
    [
      'too many patterns',
      Array.from({ length: MAX_RELEASE_PATTERNS + 1 }, (_, i) => `p${i}`).join('\n'),
      'more than 32 patterns',
    ],
    ['one program too large', '.{250}', 'too complex (252 RE2 instructions'],
    [
      'programs too large together',
      Array.from({ length: 5 }, () => '.{99}').join('\n'),
      'too complex in all',
    ],
  ])('refuses %s', (_name, raw, why) => {
    const c = parseReleasePatterns(raw, 'a');
    expect(c).toMatchObject({ ok: false });
    expect(!c.ok && c.error).toContain(why);
  });

  it('matches only the first MAX_MATCHED_MESSAGE characters', () => {
    const c = transientPatterns([]);
    if (!c.ok) throw new Error(c.error);
    const late = `${'x'.repeat(MAX_MATCHED_MESSAGE)}context deadline exceeded`;
    expect(firstMatch(c.patterns, late)).toBeUndefined();
    expect(firstMatch(c.patterns, late.slice(30))?.source).toBe('context deadline exceeded');
  });

  it('RE2 syntax Go and Helm users write is accepted', () => {
    const c = parseReleasePatterns(
      '(?:connection|read) reset\n\\b50[234]\\b\n\\d+s elapsed\n[[:alpha:]]+ refused',
      'a',
    );
    expect(c.ok && c.patterns.map((p) => p.test('READ RESET by peer'))).toEqual([true, false, false, false]);
  });
});
