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

export function renderExplanation(e: Explanation, now: number): string {
  const out: string[] = [];
  const r = e.release;
  const flags = [r.suspended ? 'suspended' : '', r.managed ? 'labelled' : 'not labelled'].filter(Boolean);
  out.push(`HelmRelease ${r.namespace}/${r.name}  (generation ${r.generation}; ${flags.join(', ')})`);
  out.push(
    `Operator:  ${e.operator.source}; acts in ${e.operator.scope}${e.operator.inScope ? '' : ' (not this release)'}`,
    `           ${e.operator.settings.join(' ')}`,
  );

  out.push('', 'Values sources (spec.valuesFrom):');
  if (e.sources.length === 0) out.push('  none');
  out.push(
    ...table(
      e.sources.map((s) => [
        s.kind,
        s.name,
        `key ${s.valuesKey}${s.optional ? ' (optional)' : ''}`,
        s.note ??
          [
            yesNo(s.present, 'present', 'MISSING'),
            s.present ? yesNo(s.keyPresent, 'key present', 'KEY MISSING') : '',
            yesNo(
              s.watchedByFlux,
              'watched by Flux itself (reconcile.fluxcd.io/watch=Enabled)',
              'not watched by Flux',
            ),
          ]
            .filter(Boolean)
            .join(', '),
      ]),
      '  ',
    ),
  );

  out.push('', ...digestLines(e));

  out.push('', `Trigger:   ${renderTrigger(e.trigger)}`);
  for (const a of e.trigger.assumes ?? []) out.push(`           assumes ${a}`);

  out.push('', 'Explicit links:');
  if (e.links.length === 0) out.push('  none');
  out.push(
    ...table(
      e.links.map((l) => [
        l.source,
        l.state,
        `recorded ${l.recordedDigest ? shortDigest(l.recordedDigest) : '-'}`,
        `now ${l.digestNow ? shortDigest(l.digestNow) : '-'}`,
      ]),
      '  ',
    ),
  );
  for (const id of e.refusedLinks)
    out.push(`  refused: ${id} (cross-namespace; the release does not allow that namespace)`);

  out.push('', `Retry:     ${renderRetry(e.retry, now)}`);
  for (const p of e.retry.problems ?? []) out.push(`           ignored setting: ${p}`);

  out.push('', 'Flux:');
  out.push(
    ...table(
      e.flux.conditions.map((c) => [
        c.type,
        c.status,
        c.reason,
        c.lastTransitionTime ?? '',
        c.message.length > 160 ? `${c.message.slice(0, 157)}...` : c.message,
      ]),
      '  ',
    ),
  );
  const tok = (v: string | undefined) => v ?? '-';
  out.push(
    ...table(
      [
        [
          'requestedAt',
          tok(e.flux.requests.requestedAt),
          'lastHandledReconcileAt',
          tok(e.flux.handled.lastHandledReconcileAt),
        ],
        [
          'forceAt',
          tok(e.flux.requests.forceAt),
          'lastHandledForceAt',
          tok(e.flux.handled.lastHandledForceAt),
        ],
        [
          'resetAt',
          tok(e.flux.requests.resetAt),
          'lastHandledResetAt',
          tok(e.flux.handled.lastHandledResetAt),
        ],
      ],
      '  ',
    ),
  );
  const h = e.flux.history;
  out.push(
    `  history  ${h.length === 0 ? '(none)' : h.map((x) => `v${x.version} ${x.status} (${x.chartVersion})`).join(', ')}`,
    `  failures ${e.flux.failures.failures} (install ${e.flux.failures.installFailures}, upgrade ${e.flux.failures.upgradeFailures})`,
  );

  out.push('', 'Events (ours, newest last):');
  if (e.events.length === 0) out.push('  none');
  out.push(
    ...table(
      e.events.map((ev) => [ev.time, ev.type, ev.reason, ev.note]),
      '  ',
    ),
  );

  if (e.notes.length > 0) {
    out.push('', 'Could not read:');
    for (const n of e.notes) out.push(`  - ${n}`);
  }
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
