// explain's text output: one release in sections, or a table of the releases that need attention.
import type { Explanation } from './explain.ts';

const yesNo = (v: boolean | null, yes: string, no: string) => (v === null ? '?' : v ? yes : no);

/** "1m20s" for a duration in milliseconds (rounded to seconds). */
export function humanDuration(ms: number): string {
  let s = Math.max(0, Math.round(ms / 1000));
  const h = Math.floor(s / 3600);
  s -= h * 3600;
  const m = Math.floor(s / 60);
  s -= m * 60;
  return `${h ? `${h}h` : ''}${m ? `${m}m` : ''}${s || (!h && !m) ? `${s}s` : ''}`;
}

function table(rows: string[][], indent = ''): string[] {
  const widths: number[] = [];
  for (const r of rows) {
    for (const [i, c] of r.entries()) widths[i] = Math.max(widths[i] ?? 0, c.length);
  }
  return rows.map(
    (r) => indent + r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  '),
  );
}

export function renderTrigger(t: Explanation['trigger']): string {
  const head = t.verdict.toUpperCase().replace('-', ' ');
  const what = t.action ? `${t.action}: ${t.reason}` : t.reason;
  const writes = t.writes ? ` (writes ${t.writes.join(', ')})` : '';
  const links = t.changedLinks ? ` (changed: ${t.changedLinks.join(', ')})` : '';
  return `${head} — ${what}${writes}${links}`;
}

export function renderRetry(r: Explanation['retry'], now: number): string {
  const head = r.status.toUpperCase().replace('-', ' ');
  const why = r.verdict ? `${r.verdict}: ${r.reason}` : r.reason;
  const count = r.attempts !== undefined ? `${r.attempts}/${r.maxAttempts} retries made` : '';
  const when =
    r.status === 'pending' && r.nextRetryAt
      ? `next retry ${r.nextRetryAt} (in ${humanDuration(Date.parse(r.nextRetryAt) - now)})`
      : r.status === 'due'
        ? 'next retry now'
        : r.exhaustedAt
          ? `spent at ${r.exhaustedAt}`
          : '';
  const episode = r.episode ? `episode ${r.episode}` : '';
  const details = [count, when, episode].filter(Boolean).join('; ');
  return `${head} — ${why}${details ? `\n           ${details}` : ''}`;
}

function digestLines(e: Explanation): string[] {
  const d = e.digest;
  const stamped = `  stamped  ${d.stamped ? shortDigest(d.stamped) : '(none)'}`;
  if (e.sources.length === 0)
    return ['Values digest: none (the release consumes no valuesFrom data)', ...(d.stamped ? [stamped] : [])];
  const now = d.cannotCompute
    ? `cannot compute: ${d.cannotCompute}`
    : d.now
      ? `${shortDigest(d.now)}  ${d.now === d.stamped ? '(equal)' : '(differs)'}`
      : '(not computed: see Trigger)';
  return ['Values digest:', stamped, `  now      ${now}`];
}

function headerLines(e: Explanation): string[] {
  const r = e.release;
  const flags = [r.suspended ? 'suspended' : '', r.managed ? 'labelled' : 'not labelled'].filter(Boolean);
  return [
    `HelmRelease ${r.namespace}/${r.name}  (generation ${r.generation}; ${flags.join(', ')})`,
    `Operator:  ${e.operator.source}; acts in ${e.operator.scope}${e.operator.inScope ? '' : ' (not this release)'}`,
    `           ${e.operator.settings.join(' ')}`,
  ];
}

function sourceState(s: Explanation['sources'][number]): string {
  return [
    yesNo(s.present, 'present', 'MISSING'),
    s.present ? yesNo(s.keyPresent, 'key present', 'KEY MISSING') : '',
    yesNo(
      s.watchedByFlux,
      'watched by Flux itself (reconcile.fluxcd.io/watch=Enabled)',
      'not watched by Flux',
    ),
  ]
    .filter(Boolean)
    .join(', ');
}

function sourcesLines(e: Explanation): string[] {
  const rows = e.sources.map((s) => [
    s.kind,
    s.name,
    `key ${s.valuesKey}${s.optional ? ' (optional)' : ''}`,
    s.note ?? sourceState(s),
  ]);
  return [
    'Values sources (spec.valuesFrom):',
    ...(rows.length === 0 ? ['  none'] : []),
    ...table(rows, '  '),
  ];
}

function triggerLines(e: Explanation): string[] {
  return [
    `Trigger:   ${renderTrigger(e.trigger)}`,
    ...(e.trigger.assumes ?? []).map((a) => `           assumes ${a}`),
  ];
}

function linksLines(e: Explanation): string[] {
  const rows = e.links.map((l) => [
    l.source,
    l.state,
    `recorded ${l.recordedDigest ? shortDigest(l.recordedDigest) : '-'}`,
    `now ${l.digestNow ? shortDigest(l.digestNow) : '-'}`,
  ]);
  return [
    'Explicit links:',
    ...(rows.length === 0 ? ['  none'] : []),
    ...table(rows, '  '),
    ...e.refusedLinks.map(
      (id) => `  refused: ${id} (cross-namespace; the release does not allow that namespace)`,
    ),
  ];
}

function retryLines(e: Explanation, now: number): string[] {
  return [
    `Retry:     ${renderRetry(e.retry, now)}`,
    ...(e.retry.problems ?? []).map((p) => `           ignored setting: ${p}`),
  ];
}

function fluxLines(e: Explanation): string[] {
  const f = e.flux;
  const conditions = f.conditions.map((c) => [
    c.type,
    c.status,
    c.reason,
    c.lastTransitionTime ?? '',
    c.message.length > 160 ? `${c.message.slice(0, 157)}...` : c.message,
  ]);
  const tok = (v: string | undefined) => v ?? '-';
  const requests = [
    [
      'requestedAt',
      tok(f.requests.requestedAt),
      'lastHandledReconcileAt',
      tok(f.handled.lastHandledReconcileAt),
    ],
    ['forceAt', tok(f.requests.forceAt), 'lastHandledForceAt', tok(f.handled.lastHandledForceAt)],
    ['resetAt', tok(f.requests.resetAt), 'lastHandledResetAt', tok(f.handled.lastHandledResetAt)],
  ];
  const h = f.history;
  return [
    'Flux:',
    ...table(conditions, '  '),
    ...table(requests, '  '),
    `  history  ${h.length === 0 ? '(none)' : h.map((x) => `v${x.version} ${x.status} (${x.chartVersion})`).join(', ')}`,
    `  failures ${f.failures.failures} (install ${f.failures.installFailures}, upgrade ${f.failures.upgradeFailures})`,
  ];
}

function eventsLines(e: Explanation): string[] {
  const rows = e.events.map((ev) => [ev.time, ev.type, ev.reason, ev.note]);
  return ['Events (ours, newest last):', ...(rows.length === 0 ? ['  none'] : []), ...table(rows, '  ')];
}

function notesLines(e: Explanation): string[] {
  return e.notes.length === 0 ? [] : ['', 'Could not read:', ...e.notes.map((n) => `  - ${n}`)];
}

export function renderExplanation(e: Explanation, now: number): string {
  const sections = [
    sourcesLines(e),
    digestLines(e),
    triggerLines(e),
    linksLines(e),
    retryLines(e, now),
    fluxLines(e),
    eventsLines(e),
  ];
  const out = [...headerLines(e), ...sections.flatMap((lines) => ['', ...lines]), ...notesLines(e)];
  return `${out.join('\n')}\n`;
}

/** Releases that need attention: a trigger due, held or unknown, a retry pending, due or exhausted. */
export function needsAttention(e: Explanation): boolean {
  return (
    ['due', 'held', 'unknown'].includes(e.trigger.verdict) ||
    ['pending', 'due', 'exhausted'].includes(e.retry.status)
  );
}

export function renderTable(all: Explanation[], now: number): string {
  const rows = all.filter(needsAttention);
  if (rows.length === 0) return `No release needs attention (${all.length} examined).\n`;
  const lines = table([
    ['NAMESPACE', 'NAME', 'TRIGGER', 'RETRY', 'NEXT RETRY', 'WHY'],
    ...rows.map((e) => {
      const t = e.trigger;
      const r = e.retry;
      const next =
        r.status === 'pending' && r.nextRetryAt
          ? `in ${humanDuration(Date.parse(r.nextRetryAt) - now)}`
          : r.status === 'due'
            ? 'now'
            : r.status === 'exhausted'
              ? `${r.attempts ?? '?'}/${r.maxAttempts} spent`
              : '-';
      const why = [
        ['due', 'held', 'unknown'].includes(t.verdict) ? `trigger: ${t.reason}` : '',
        ['pending', 'due', 'exhausted'].includes(r.status) ? `retry: ${r.reason}` : '',
      ]
        .filter(Boolean)
        .join('; ');
      return [e.release.namespace, e.release.name, t.verdict, r.status, next, why];
    }),
  ]);
  const notes = [...new Set(all.flatMap((e) => e.notes))];
  return `${[...lines, `(${rows.length} of ${all.length} releases need attention)`, ...notes.map((n) => `note: ${n}`)].join('\n')}\n`;
}

/** The end of a digest, enough to tell two apart on screen ("hmac-sha256:v2:<keyid>:<hex>" or "sha256:<hex>"). */
function shortDigest(digest: string | undefined): string {
  if (!digest) return '(none)';
  const hex = digest.slice(digest.lastIndexOf(':') + 1);
  return hex.slice(0, 12);
}
