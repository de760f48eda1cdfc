// Shared by the benchmarks: percentiles of latency samples, a description of the machine, its load, the commit.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { totalmem } from 'node:os';

/** Nearest-rank percentile of sorted samples. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number;
}

export const round = (n: number, digits = 3) => Number(n.toFixed(digits));

/** n, p50, p90, p99 and max of the samples, rounded to `digits` decimals. */
export function summary(samples: readonly number[], digits = 3) {
  const s = [...samples].sort((a, b) => a - b);
  return {
    n: s.length,
    p50: round(percentile(s, 50), digits),
    p90: round(percentile(s, 90), digits),
    p99: round(percentile(s, 99), digits),
    max: round(s[s.length - 1] ?? Number.NaN, digits),
  };
}

/** CPU model and count (from /proc/cpuinfo), memory and Node version, for the results files. */
export function machine() {
  const models = readFileSync('/proc/cpuinfo', 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('model name'))
    .map((l) => l.split(':')[1]?.trim());
  return {
    cpu: models[0] ?? 'unknown',
    cores: models.length,
    memoryGB: round(totalmem() / 2 ** 30, 1),
    node: process.version,
  };
}

/** The machine's load now (`uptime`), for results files. */
export const uptime = (): string => execFileSync('uptime', { encoding: 'utf8' }).trim();

/** The commit benchmarked, marked when the operator's code differs from it. */
export function commit(): string {
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
    const dirty = execFileSync(
      'git',
      ['status', '--porcelain', '--', 'src', 'cmd', 'controller', 'webhook'],
      {
        encoding: 'utf8',
      },
    ).trim();
    return dirty ? `${head} (with uncommitted changes)` : head;
  } catch {
    return 'unknown';
  }
}
