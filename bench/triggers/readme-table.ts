// The README's trigger rows of "Performance", from the newest bench/results/triggers-*.json at 10,000 and at
// 50,000 releases: `node bench/triggers/readme-table.ts` prints the table; each value names its file and date.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { at, headlineRows } from './markdown.ts';

const DIR = join(import.meta.dirname, '..', 'results');

type Results = Record<string, unknown>;

/** The newest results file (names sort by date) of a run over exactly `releases` releases. */
function newest(releases: number): { file: string; results: Results } | undefined {
  const files = readdirSync(DIR)
    .filter((f) => /^triggers-.*\.json$/.test(f))
    .sort()
    .reverse();
  for (const file of files) {
    const results = JSON.parse(readFileSync(join(DIR, file), 'utf8')) as Results;
    if (at(results, 'set.releases') === releases) return { file, results };
  }
  return undefined;
}

export function readmeTable(): string {
  const runs = [newest(10_000), newest(50_000)];
  const rows = runs.map((r) => (r ? headlineRows(r.results) : undefined));
  const base = rows.find((r) => r !== undefined);
  if (!base) throw new Error(`no results at 10,000 or 50,000 releases in ${DIR}`);
  const head = runs.map((r, i) =>
    r
      ? `${i === 0 ? '10,000' : '50,000'} releases (${String(at(r.results, 'environment.date')).slice(0, 10)})`
      : 'not run',
  );
  const lines = [
    `| what | ${head[0]} | ${head[1]} | target at 10,000 / 50,000 |`,
    '| --- | --- | --- | --- |',
    ...base.map((row, i) => {
      const cell = (k: number) => rows[k]?.[i]?.[1] ?? '—';
      return `| ${row[0]} | ${cell(0)} | ${cell(1)} | ${row[2]} / ${row[3]} |`;
    }),
    '',
    `From ${runs
      .filter((r) => r !== undefined)
      .map(
        (r) =>
          `\`bench/results/${r.file}\` (\`${at(r.results, 'environment.command')}\`, load before/after: ${loads(r.results)})`,
      )
      .join('; ')}.`,
  ];
  return lines.join('\n');
}

/** The 1-minute load averages before and after, from the `uptime` lines. */
function loads(r: Results): string {
  const one = (s: unknown) => /load average: ([\d.]+)/.exec(String(s))?.[1] ?? '?';
  return `${one(at(r, 'environment.uptimeBefore'))} / ${one(at(r, 'environment.uptimeAfter'))}`;
}

if (process.argv[1] === import.meta.filename) process.stdout.write(`${readmeTable()}\n`);
