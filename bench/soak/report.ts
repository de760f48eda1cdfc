// The soak's results: a JSON record and a Markdown page (bench/results/soak-<date>.{json,md}).
import type { Verdict } from './oracle.ts';

export interface SoakResult {
  environment: Record<string, unknown>;
  load: { releases: number; namespaces: number; rate: number; seed: number; durationMs: number };
  changes: { byKind: Record<string, number>; consumed: number; failedWrites: number; readBack: number };
  faults: {
    byKind: Record<string, number>;
    log: { kind: string; atS: number; ms: number; detail: string }[];
  };
  verdict: {
    lost: number;
    spurious: number;
    raced: number;
    unstampedCreationTriggers: number;
    unsettled: number;
    triggers: number;
    operatorWrites: number;
    writesPerChange: number;
    triggersPerChange: number;
    coveredByResume: number;
    reverted: number;
    droppedByDelete: number;
    suspendedChanges: number;
    suspendedTriggeredAfterResume: number;
    latencyMs: { n: number; p50: number; p90: number; p99: number; max: number };
    lostDetail: unknown[];
    spuriousDetail: unknown[];
  };
  watch: Record<string, number>;
  replicas: { name: string; starts: number; unexpectedExits: number }[];
  passed: boolean;
}

export function detail(v: Verdict) {
  return {
    lostDetail: v.lost.slice(0, 50).map((c) => ({
      release: c.key,
      source: c.source,
      rv: c.rv,
      at: new Date(c.at).toISOString(),
      suspended: c.suspended,
      ...(c.beforeBackfillOfUnstamped
        ? { finding: 'b: created unstamped, changed before the backfill' }
        : {}),
    })),
    spuriousDetail: v.spurious
      .slice(0, 50)
      .map((t) => ({ release: t.key, rv: t.rv, at: new Date(t.at).toISOString(), why: t.why })),
  };
}

export function markdown(r: SoakResult): string {
  const e = r.environment;
  const v = r.verdict;
  const rows = (o: Record<string, number>) =>
    Object.entries(o)
      .map(([k, n]) => `| ${k} | ${n} |`)
      .join('\n');
  return `# Soak: ${r.passed ? 'PASSED' : 'FAILED'} — lost ${v.lost}, spurious ${v.spurious}, unsettled ${v.unsettled}

- date: ${e.date}
- machine: ${e.cpu}, ${e.cores} cores, ${e.memoryGB} GB, node ${e.node}; kube-apiserver ${e.kubeApiserver} (watch cache off)
- load: before \`${e.uptimeBefore}\`; after \`${e.uptimeAfter}\`
- commit: ${e.commit}
- command: \`${e.command}\`
- set: ${r.load.releases} releases in ${r.load.namespaces} namespaces, two operator processes (default flags, Lease 3 s), the shipped webhook registration on loopback; ${r.load.rate} changes/s for ${Math.round(r.load.durationMs / 1000)} s of changes, seed ${r.load.seed}

## Verdict

| figure | value |
| --- | --- |
| consumed changes | ${r.changes.consumed} |
| lost (not followed by a trigger with newer data) | ${v.lost} |
| spurious (a trigger with no consumed change since the last one) | ${v.spurious} |
| unsettled at the end (requests not handled, changes not covered) | ${v.unsettled} |
| raced (caught up a change made just before its previous trigger's write; not spurious) | ${v.raced} |
| first trigger of a release created unstamped or without a digest (allowed: the operator triggers those once) | ${v.unstampedCreationTriggers} |
| triggers | ${v.triggers} |
| operator writes to releases | ${v.operatorWrites} |
| writes per consumed change | ${v.writesPerChange} |
| triggers per consumed change | ${v.triggersPerChange} |
| changes covered by a resume | ${v.coveredByResume} |
| changes undone within 15 s, back to the data of the last reconcile (nothing due) | ${v.reverted} |
| changes dropped with their deleted release | ${v.droppedByDelete} |
| changes while suspended (of them triggered after the resume) | ${v.suspendedChanges} (${v.suspendedTriggeredAfterResume}) |
| latency change → trigger, ms (n / p50 / p90 / p99 / max) | ${v.latencyMs.n} / ${v.latencyMs.p50} / ${v.latencyMs.p90} / ${v.latencyMs.p99} / ${v.latencyMs.max} |

## Changes by kind

| kind | count |
| --- | --- |
${rows(r.changes.byKind)}

Writes that failed: ${r.changes.failedWrites}; answers lost and read back: ${r.changes.readBack}.

## Faults by kind

| kind | count |
| --- | --- |
${rows(r.faults.byKind)}

${r.faults.log.map((f) => `- ${f.atS} s: ${f.kind} (${f.ms} ms)${f.detail ? ` — ${f.detail}` : ''}`).join('\n')}

## Operator processes

${r.replicas.map((p) => `- ${p.name}: started ${p.starts} times; exited unasked ${p.unexpectedExits} times (leadership lost ends the process; restarted after 1 s, as a kubelet would)`).join('\n')}

## The harness's release watch

${Object.entries(r.watch)
  .map(([k, n]) => `${k} ${n}`)
  .join(', ')}
${v.lostDetail.length > 0 ? `\n## Lost\n\n\`\`\`json\n${JSON.stringify(v.lostDetail, null, 1)}\n\`\`\`\n` : ''}${
  v.spuriousDetail.length > 0
    ? `\n## Spurious\n\n\`\`\`json\n${JSON.stringify(v.spuriousDetail, null, 1)}\n\`\`\`\n`
    : ''
}`;
}
