// Transient-failure patterns: regular expressions, matched case-insensitively against the Helm error
// that Flux wrote into the failing condition's message. Flag patterns are checked at start-up (a bad one
// stops the process with a message naming it); per-release patterns come from an annotation and are
// checked on every read (a bad one is reported and ignored, never fatal).
//
// Every pattern is compiled by RE2JS (a pure-JavaScript port of RE2): matching takes time linear in the
// message, whatever the pattern, so a tenant's annotation cannot stall the process the way a backtracking
// engine (V8's RegExp) can with `^.*(a+)+$`. RE2 syntax: no backreferences, no lookaround, no Unicode
// classes. Linear in the message is also linear in the program, so its size is capped, per pattern and per
// release (docs/adr/0009-linear-time-patterns-and-one-scope.md).
import { RE2JS } from 're2js';
import { errorMessage } from '../util/errors.ts';

/** The timeout family: what Helm and helm-controller say when a wait or an API call ran out of time. */
export const DEFAULT_TRANSIENT_PATTERNS: readonly string[] = [
  // Helm's legacy waiter and any client-go call cut short by its context.
  'context deadline exceeded',
  // Helm v3 wait (wait.PollImmediate) giving up.
  'timed out waiting for the condition',
  // helm-controller >= v1.5 (Helm v4, kstatus poller): "timeout waiting for: [Deployment/ns/name status: 'InProgress']".
  'timeout waiting for: \\[',
  // helm-controller v1.6 (seen in e2e): the kstatus wait's client-go rate limiter runs into the timeout first:
  // "client rate limiter Wait returned an error: rate: Wait(n=1) would exceed context deadline".
  'would exceed context deadline',
  // Network timeouts talking to the API server or a registry.
  'i/o timeout',
  'TLS handshake timeout',
];

/** Patterns longer than this are refused: they are error-message fragments, not programs. */
export const MAX_PATTERN_LENGTH = 512;
/** RE2 program size (instructions) of one pattern: an error-message fragment is about its length in
 * instructions ("connection reset by peer": 26), a counted repeat multiplies (`.{100}`: 102). */
export const MAX_PATTERN_PROGRAM = 128;
/** Only the start of a message is matched: condition messages may be 32 kB, and Flux puts the Helm error right
 * after a short prefix ("Helm upgrade failed for release ns/name with chart c@v: <error>"). */
export const MAX_MATCHED_MESSAGE = 4096;
/** Per-release annotation: at most this many patterns. */
export const MAX_RELEASE_PATTERNS = 32;
/** Per-release annotation: at most this many RE2 instructions in all. They are compiled on every read (a
 * compiled program's cache would keep memory per tenant), and a fresh program costs ~ its size per character. */
export const MAX_RELEASE_PROGRAM = 256;
/** Case-insensitive; no Unicode classes (\p{Greek}): they multiply what a fresh program costs, and Helm's errors
 * need none. */
const FLAGS = RE2JS.CASE_INSENSITIVE | RE2JS.DISABLE_UNICODE_GROUPS;

/** A compiled pattern: its source (for logs and events) and a linear-time, case-insensitive test. */
export interface TransientPattern {
  readonly source: string;
  /** Program size in RE2 instructions: what matching costs per character, roughly. */
  readonly size: number;
  test(text: string): boolean;
}

export type Compiled = { ok: true; patterns: TransientPattern[] } | { ok: false; error: string };

/** Compiles one pattern (RE2 syntax, case-insensitive); the error says why it was refused. */
export function compilePattern(
  source: string,
): { ok: true; pattern: TransientPattern } | { ok: false; why: string } {
  if (source.length > MAX_PATTERN_LENGTH) {
    return { ok: false, why: `longer than ${MAX_PATTERN_LENGTH} characters` };
  }
  let re: RE2JS;
  try {
    re = RE2JS.compile(source, FLAGS);
  } catch (err) {
    return { ok: false, why: `not a valid RE2 regular expression (${reason(err)})` };
  }
  const size = re.programSize();
  if (size > MAX_PATTERN_PROGRAM) {
    return { ok: false, why: `too complex (${size} RE2 instructions, at most ${MAX_PATTERN_PROGRAM})` };
  }
  return { ok: true, pattern: { source, size, test: (text) => re.test(text) } };
}

/** Compiles patterns; the first refused one is named in the error, with where it came from. */
export function compilePatterns(sources: readonly string[], origin: string): Compiled {
  const patterns: TransientPattern[] = [];
  for (const source of sources) {
    const c = compilePattern(source);
    if (!c.ok) return { ok: false, error: `${origin}: "${shorten(source)}" is ${c.why}` };
    patterns.push(c.pattern);
  }
  return { ok: true, patterns };
}

/** The defaults plus the --retry-patterns flag; the error names the flag and the bad pattern. */
export function transientPatterns(extra: readonly string[]): Compiled {
  const defaults = compilePatterns(DEFAULT_TRANSIENT_PATTERNS, 'default pattern');
  if (!defaults.ok) return defaults;
  const flag = compilePatterns(extra, '--retry-patterns');
  return flag.ok ? { ok: true, patterns: [...defaults.patterns, ...flag.patterns] } : flag;
}

/** Splits the per-release annotation (one pattern per line; blank lines ignored) and compiles it. */
export function parseReleasePatterns(raw: string | undefined, origin: string): Compiled {
  if (raw === undefined) return { ok: true, patterns: [] };
  const sources = raw
    .split('\n')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (sources.length > MAX_RELEASE_PATTERNS) {
    return { ok: false, error: `${origin}: more than ${MAX_RELEASE_PATTERNS} patterns` };
  }
  const compiled = compilePatterns(sources, origin);
  if (!compiled.ok) return compiled;
  const size = compiled.patterns.reduce((n, p) => n + p.size, 0);
  if (size > MAX_RELEASE_PROGRAM) {
    return {
      ok: false,
      error: `${origin}: too complex in all (${size} RE2 instructions, at most ${MAX_RELEASE_PROGRAM})`,
    };
  }
  return compiled;
}

/** The first pattern that matches the start of message (MAX_MATCHED_MESSAGE characters), if any. */
export function firstMatch(
  patterns: readonly TransientPattern[],
  message: string,
): TransientPattern | undefined {
  const text = message.length > MAX_MATCHED_MESSAGE ? message.slice(0, MAX_MATCHED_MESSAGE) : message;
  return patterns.find((p) => p.test(text));
}

function shorten(source: string): string {
  return source.length > 60 ? `${source.slice(0, 57)}...` : source;
}

function reason(err: unknown): string {
  // RE2JS: "error parsing regexp: missing closing ): `(?i)(`" -> "missing closing ): `(`"
  return errorMessage(err)
    .replace(/^error parsing regexp: /, '')
    .replace('`(?i)', '`');
}
