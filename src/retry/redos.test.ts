// Property: no per-release pattern can make one classification slow. Known catastrophic patterns (for a
// backtracking engine), and patterns that fill the per-release program budget, against 1–10 kB failure
// messages of the shapes that hurt them, with a 53-character release name (the longest Kubernetes allows a
// HelmRelease, whose name Helm uses as a release name): each classification — the annotation compiled, as
// on every read, and matched — stays under 5 ms of CPU (the median of 5 runs, this thread's CPU time: on a
// shared 2-core machine wall time also counts other processes' time slices; it is printed beside it).
import { describe, expect, it } from 'vitest';
import { HelmErrors, helmReleaseObject, stalledFailure } from '../../test/support/flux-status.ts';
import { type HelmRelease, parseHelmRelease } from '../flux/helmrelease.ts';
import { Annotations } from '../names.ts';
import { classifyFailure } from './classify.ts';
import { MAX_RELEASE_PATTERNS, parseReleasePatterns, transientPatterns } from './patterns.ts';

const BUDGET_MS = 5;
const NAME = 'a'.repeat(53);
const SIZES = [1024, 2048, 5120, 10240];
/** Message bodies that drive each pattern family to its worst: long runs, runs that almost match, mixed text. */
const BODIES: Record<string, (n: number) => string> = {
  'a-run': (n) => `${'a'.repeat(n - 1)}!`,
  'x-run': (n) => 'x'.repeat(n),
  'a-space': (n) => 'a '.repeat(n / 2),
  mixed: (n) => Array.from({ length: n }, (_, i) => String.fromCharCode(32 + ((i * 7919) % 95))).join(''),
};

const CATASTROPHIC = [
  '^.*(a+)+$',
  '^(a+)+$',
  '(a|aa)+$',
  '(a|a?)+$',
  '(.*a){20}',
  '^(\\w+\\s?)*$',
  '(x+x+)+y',
  '((a+)|(b+))+$',
  '(\\w|\\d)+$',
  '^(([a-z])+.)+[A-Z]([a-z])+$',
  '(a|b|ab)*c',
  '^(a?){25}a{25}$',
  '(.*){1,32000}[bc]',
];
/** Accepted sets that fill the per-release budget with the costliest shapes found. */
const BUDGET_FILLERS = [
  ['(.*a){20}', '(.*b){20}', '(.*c){9}'],
  ['.{126}', '\\w{126}'],
  ['[acegikmoqsuwy02468]{126}', '(.*[acegikmoqsuwy]){25}'],
  Array.from({ length: MAX_RELEASE_PATTERNS }, (_, i) => `(a+)+${'$'.repeat(i % 2)}`),
].map((set) => set.join('\n'));

const flagPatterns = transientPatterns([]);
if (!flagPatterns.ok) throw new Error(flagPatterns.error);
const policy = { patterns: flagPatterns.patterns };

/** A release named NAME whose upgrade failed with `body` in the Helm error, carrying `patterns`. */
function failedRelease(patterns: string, body: string): HelmRelease {
  const o = { namespace: 'tenant-a', name: NAME, generation: 1, at: '2026-01-01T00:00:00Z' };
  const obj = helmReleaseObject(o.namespace, o.name, {
    annotations: { [Annotations.retryPatterns]: patterns },
  });
  const parsed = parseHelmRelease({
    ...obj,
    metadata: { ...obj.metadata, uid: 'u-1', resourceVersion: '1', generation: 1 },
    status: stalledFailure(o, 'upgrade', `${HelmErrors.connectionReset}: ${body}`),
  });
  if (!parsed.ok) throw new Error(parsed.error);
  return parsed.value;
}

/**
 * Median wall-clock and median CPU time (this thread's, so other processes on a shared machine do not count)
 * of `runs` classifications, each timed alone.
 */
function time(hr: HelmRelease, runs: number): { wall: number; wallMin: number; cpu: number } {
  const wall: number[] = [];
  const cpu: number[] = [];
  for (let i = 0; i < runs; i++) {
    const c0 = process.threadCpuUsage();
    const t0 = performance.now();
    classifyFailure(hr, policy);
    wall.push(performance.now() - t0);
    const c = process.threadCpuUsage(c0);
    cpu.push((c.user + c.system) / 1000);
  }
  const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(runs / 2)] as number;
  return { wall: median(wall), wallMin: Math.min(...wall), cpu: median(cpu) };
}

describe('per-release retry patterns cannot stall the process', () => {
  it(`classifies every catastrophic pattern against 1-10 kB messages in < ${BUDGET_MS} ms`, () => {
    // Warm the engine up (JIT) as a running process is.
    for (let i = 0; i < 50; i++) classifyFailure(failedRelease('(a|aa)+$', 'a'.repeat(500)), policy);
    const rows: string[] = [];
    const slow: string[] = [];
    for (const set of BUDGET_FILLERS)
      expect(parseReleasePatterns(set, 'budget filler')).toMatchObject({ ok: true });
    for (const pattern of [...CATASTROPHIC, ...BUDGET_FILLERS]) {
      for (const size of SIZES) {
        for (const [body, make] of Object.entries(BODIES)) {
          const hr = failedRelease(pattern, make(size));
          const { wall, wallMin, cpu } = time(hr, 5);
          const label = pattern.includes('\n')
            ? `${pattern.split('\n').length} patterns: ${pattern.split('\n')[0]}…`
            : pattern;
          rows.push(
            `| \`${label}\` | ${size} | ${body} | ${cpu.toFixed(3)} | ${wallMin.toFixed(3)} | ${wall.toFixed(3)} |`,
          );
          if (cpu >= BUDGET_MS) slow.push(`${label} ${size} ${body}: ${cpu.toFixed(1)} ms`);
        }
      }
    }
    process.stdout.write(
      `\n| pattern (annotation) | message bytes | message body | CPU ms (median of 5) | wall ms (min of 5) | wall ms (median of 5) |\n|---|---|---|---|---|---|\n${rows.join('\n')}\n`,
    );
    expect(slow).toEqual([]);
    // ~1,400 classifications: the bound is on each one, not on the table (the machine may be shared).
  }, 120_000);
});
