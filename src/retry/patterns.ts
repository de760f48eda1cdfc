// Transient-failure patterns: regular expressions, matched case-insensitively against the Helm error
// that Flux wrote into the failing condition's message. Flag patterns are checked at start-up (a bad one
// stops the process with a message naming it); per-release patterns come from an annotation and are
// checked on every read (a bad one is reported and ignored, never fatal).
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
/** Only the start of a message is matched: condition messages may be 32 kB, and Flux puts the Helm error right
 * after a short prefix ("Helm upgrade failed for release ns/name with chart c@v: <error>"). */
export const MAX_MATCHED_MESSAGE = 4096;
/** Per-release annotation: at most this many patterns. */
export const MAX_RELEASE_PATTERNS = 32;

export type Compiled = { ok: true; patterns: RegExp[] } | { ok: false; error: string };

/** Compiles patterns; the first invalid one is named in the error, with where it came from. */
export function compilePatterns(sources: readonly string[], origin: string): Compiled {
  const patterns: RegExp[] = [];
  for (const source of sources) {
    if (source.length > MAX_PATTERN_LENGTH) {
      return {
        ok: false,
        error: `${origin}: pattern "${source.slice(0, 40)}..." is longer than ${MAX_PATTERN_LENGTH} characters`,
      };
    }
    try {
      patterns.push(new RegExp(source, 'i'));
    } catch (err) {
      return {
        ok: false,
        error: `${origin}: "${source}" is not a valid regular expression (${reason(err)})`,
      };
    }
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
  return compilePatterns(sources, origin);
}

/** The first pattern that matches message, if any. */
export function firstMatch(patterns: readonly RegExp[], message: string): RegExp | undefined {
  const text = message.length > MAX_MATCHED_MESSAGE ? message.slice(0, MAX_MATCHED_MESSAGE) : message;
  return patterns.find((p) => p.test(text));
}

function reason(err: unknown): string {
  const msg = errorMessage(err);
  // V8: "Invalid regular expression: /(/i: Unterminated group" -> "Unterminated group"
  return msg.replace(/^Invalid regular expression: \/.*\/[a-z]*: /s, '');
}
