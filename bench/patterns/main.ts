// Benchmark of the transient-pattern engine (npm run bench:patterns): RE2JS (what src/retry/patterns.ts
// compiles with) beside V8's RegExp (what it compiled with before), in-process:
//  1. the default patterns, compiled once, against the failure messages Flux writes and against a 4 kB
//     message none matches: time per message (all patterns tried, as firstMatch does);
//  2. a realistic per-release annotation (4 patterns), compiled fresh as on every read, then matched;
//  3. the attack of issue 11: a release named n a's annotated `^.*(a+)+$`, one classification's matching —
//     V8 up to the name length where it passes BENCH_V8_LIMIT_MS, RE2JS up to 53 (the longest name).
// Prints numbers and writes bench/results/patterns-<date>.{json,md}; it asserts nothing.
import { mkdirSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import {
  DEFAULT_TRANSIENT_PATTERNS,
  MAX_MATCHED_MESSAGE,
  parseReleasePatterns,
} from '../../src/retry/patterns.ts';
import { HelmErrors } from '../../test/support/flux-status.ts';
import { machine, round, summary } from '../stats.ts';

const ITERATIONS = Number(process.env.BENCH_ITERATIONS ?? 20_000);
const V8_LIMIT_MS = Number(process.env.BENCH_V8_LIMIT_MS ?? 12_000);

type Tester = { test(s: string): boolean };
const v8 = (sources: readonly string[]): Tester[] => sources.map((s) => new RegExp(s, 'i'));
const re2 = (sources: readonly string[]): Tester[] => {
  const c = parseReleasePatterns(sources.join('\n'), 'bench');
  if (!c.ok) throw new Error(c.error);
  return c.patterns;
};
const first = (patterns: Tester[], message: string) =>
  patterns.find((p) => p.test(message.slice(0, MAX_MATCHED_MESSAGE)));
const fluxMessage = (name: string, helmError: string) =>
  `Helm upgrade failed for release apps/${name} with chart podinfo@6.5.0: ${helmError}`;

/** Microseconds per call of fn, over ITERATIONS calls after a warm-up. */
function perCall(fn: () => unknown, iterations = ITERATIONS) {
  for (let i = 0; i < Math.min(2000, iterations); i++) fn();
  const us: number[] = [];
  for (let i = 0; i < iterations; i++) {
    const t0 = performance.now();
    fn();
    us.push((performance.now() - t0) * 1000);
  }
  return summary(us, 2);
}

function defaults() {
  const messages = {
    'Flux messages (8 kinds)': Object.values(HelmErrors).map((e) => fluxMessage('podinfo', e)),
    '4 kB, no match': [fluxMessage('podinfo', 'x'.repeat(4000))],
  };
  const rows = [];
  for (const [kind, list] of Object.entries(messages)) {
    for (const [engine, patterns] of [
      ['V8 RegExp', v8(DEFAULT_TRANSIENT_PATTERNS)],
      ['RE2JS', re2(DEFAULT_TRANSIENT_PATTERNS)],
    ] as const) {
      let i = 0;
      rows.push({ kind, engine, us: perCall(() => first(patterns, list[i++ % list.length] as string)) });
    }
  }
  return rows;
}

function freshAnnotation() {
  const sources = [
    'connection reset by peer',
    'etcdserver: (request timed out|leader changed)',
    'http2: client connection lost',
    'unexpected EOF',
  ];
  const message = fluxMessage('podinfo', HelmErrors.invalidSpec);
  return [
    { engine: 'V8 RegExp', us: perCall(() => first(v8(sources), message), 5000) },
    { engine: 'RE2JS', us: perCall(() => first(re2(sources), message), 5000) },
  ];
}

function attack() {
  const rows: { engine: string; nameLength: number; ms: number }[] = [];
  const run = (engine: string, compile: (s: string[]) => Tester[], n: number) => {
    const name = 'a'.repeat(n);
    const message = fluxMessage(name, `${HelmErrors.connectionReset} (${name})`);
    const t0 = performance.now();
    first(compile(['^.*(a+)+$']), message);
    const ms = performance.now() - t0;
    rows.push({ engine, nameLength: n, ms: round(ms, 3) });
    process.stdout.write(`  ${engine} name length ${n}: ${ms.toFixed(3)} ms\n`);
    return ms;
  };
  for (let n = 16; n <= 53; n += 2) if (run('V8 RegExp', v8, n) > V8_LIMIT_MS) break;
  for (const n of [16, 20, 26, 40, 53]) run('RE2JS', re2, n);
  return rows;
}

function markdown(r: ReturnType<typeof collect>): string {
  const m = r.machine;
  const lines = [
    `# Transient-pattern engine benchmark — ${r.date}`,
    '',
    `CPU: ${m.cpu} × ${m.cores}; RAM ${m.memoryGB} GB; Node ${m.node}; load average before/after: \`${JSON.stringify(r.loadBefore)}\` / \`${JSON.stringify(r.loadAfter)}\`.`,
    "Other engineers' jobs share this 2-core machine. Command: `npm run bench:patterns`.",
    '',
    '## 1. Default patterns, compiled once: time to try them all on one message (µs)',
    '',
    '| messages | engine | p50 | p90 | p99 | max |',
    '|---|---|---|---|---|---|',
    ...r.defaults.map(
      (x) => `| ${x.kind} | ${x.engine} | ${x.us.p50} | ${x.us.p90} | ${x.us.p99} | ${x.us.max} |`,
    ),
    '',
    '## 2. A 4-pattern per-release annotation, compiled fresh and matched (µs)',
    '',
    '| engine | p50 | p90 | p99 | max |',
    '|---|---|---|---|---|',
    ...r.fresh.map((x) => `| ${x.engine} | ${x.us.p50} | ${x.us.p90} | ${x.us.p99} | ${x.us.max} |`),
    '',
    "## 3. Issue 11's attack: `^.*(a+)+$` on a release named n a's, one classification's matching (ms)",
    '',
    '| engine | name length | ms |',
    '|---|---|---|',
    ...r.attack.map((x) => `| ${x.engine} | ${x.nameLength} | ${x.ms} |`),
    '',
  ];
  return lines.join('\n');
}

function collect() {
  const loadBefore = loadavg().map((l) => round(l, 2));
  process.stdout.write('defaults...\n');
  const d = defaults();
  process.stdout.write('fresh annotation...\n');
  const fresh = freshAnnotation();
  process.stdout.write('attack...\n');
  const a = attack();
  return {
    date: new Date().toISOString(),
    machine: machine(),
    loadBefore,
    loadAfter: loadavg().map((l) => round(l, 2)),
    defaults: d,
    fresh,
    attack: a,
  };
}

const result = collect();
const dir = join(import.meta.dirname, '..', 'results');
mkdirSync(dir, { recursive: true });
const stamp = result.date.slice(0, 19).replace(/[T:]/g, '-');
writeFileSync(join(dir, `patterns-${stamp}.json`), `${JSON.stringify(result, null, 2)}\n`);
const md = markdown(result);
writeFileSync(join(dir, `patterns-${stamp}.md`), md);
process.stdout.write(`${md}\n`);
