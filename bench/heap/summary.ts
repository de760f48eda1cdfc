// What a V8 heap snapshot (.heapsnapshot, JSON) holds, summed: self sizes by kind of node (objects by their
// constructor), and strings by shape (digits as #, long hex runs as HEX), so "what is 20,000 times in the heap"
// shows at a glance. Self sizes only: an ArrayBuffer's backing store is outside the V8 heap.
import { readFileSync } from 'node:fs';

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[]] } };
  nodes: number[];
  strings: string[];
}

export interface Bucket {
  what: string;
  count: number;
  bytes: number;
}

export interface HeapSummary {
  totalBytes: number;
  byKind: Bucket[];
  stringsByShape: Bucket[];
}

const STRING_TYPES = new Set(['string', 'concatenated string', 'sliced string']);

function add(m: Map<string, Bucket>, what: string, bytes: number): void {
  const b = m.get(what) ?? { what, count: 0, bytes: 0 };
  b.count++;
  b.bytes += bytes;
  m.set(what, b);
}

const top = (m: Map<string, Bucket>, n: number) =>
  [...m.values()].sort((a, b) => b.bytes - a.bytes).slice(0, n);

/** Reads a snapshot file and sums it; `n` rows per table. */
export function summarize(path: string, n = 25): HeapSummary {
  const snap = JSON.parse(readFileSync(path, 'utf8')) as Snapshot;
  const fields = snap.snapshot.meta.node_fields;
  const types = snap.snapshot.meta.node_types[0];
  const [iType, iName, iSize] = ['type', 'name', 'self_size'].map((f) => fields.indexOf(f)) as [
    number,
    number,
    number,
  ];
  const byKind = new Map<string, Bucket>();
  const byShape = new Map<string, Bucket>();
  let totalBytes = 0;
  for (let i = 0; i < snap.nodes.length; i += fields.length) {
    const type = types[snap.nodes[i + iType] as number] ?? '?';
    const name = snap.strings[snap.nodes[i + iName] as number] ?? '';
    const bytes = snap.nodes[i + iSize] as number;
    totalBytes += bytes;
    if (STRING_TYPES.has(type)) {
      add(byKind, 'string', bytes);
      const shape =
        type === 'concatenated string'
          ? '(concatenation)'
          : name
              .replace(/\d+/g, '#')
              .replace(/[a-f#]{20,}/g, 'HEX')
              .slice(0, 60);
      add(byShape, shape, bytes);
    } else add(byKind, type === 'object' || type === 'closure' ? `${type} ${name}` : type, bytes);
  }
  return { totalBytes, byKind: top(byKind, n), stringsByShape: top(byShape, n) };
}

const mb = (bytes: number) => (bytes / 1e6).toFixed(2);

export function summaryMarkdown(s: HeapSummary): string {
  const table = (title: string, rows: Bucket[]) => [
    `| ${title} | count | MB |`,
    '| --- | --- | --- |',
    ...rows.map(
      (r) =>
        `| ${JSON.stringify(r.what).slice(1, -1).replaceAll('|', '\\|')} | ${r.count} | ${mb(r.bytes)} |`,
    ),
  ];
  return [
    `Live heap in the snapshot: ${mb(s.totalBytes)} MB (self sizes, after the full GC the snapshot makes).`,
    '',
    ...table('kind (objects by constructor)', s.byKind),
    '',
    ...table('string shape (# digits, HEX hex runs)', s.stringsByShape),
    '',
  ].join('\n');
}
