// The trigger benchmark's results as Markdown: the machine and its load, one row per figure the issue and
// DESIGN.md ask for (with the target at this scale), then every number as JSON.

type Results = Record<string, unknown>;

/** The value at a dotted path of the results, or undefined. */
export function at(r: Results, path: string): unknown {
  let v: unknown = r;
  for (const k of path.split('.')) v = v !== null && typeof v === 'object' ? (v as Results)[k] : undefined;
  return v;
}

const fmt = (v: unknown, unit = '') =>
  v === undefined || v === null
    ? 'n/a'
    : `${typeof v === 'number' ? v.toLocaleString('en-US') : String(v)}${unit}`;

/** The storm's settle time counted from its last change (the benchmark needs ~1.5 s to send 1,000 PATCHes). */
function afterLast(r: Results): string {
  const settle = at(r, 'storms.once.settleMs');
  const issued = at(r, 'storms.once.issuedMs');
  return typeof settle === 'number' && typeof issued === 'number' ? fmt(settle - issued, ' ms') : 'n/a';
}

/** [figure, value, target at 10,000, target at 50,000] */
type Row = [string, string, string, string];

export function headlineRows(r: Results): Row[] {
  const g = (p: string, unit = ' ms') => fmt(at(r, p), unit);
  return [
    [
      'bare process (no objects): RSS / heap used',
      `${g('bareProcess.rssMB', ' MB')} / ${g('bareProcess.heapUsedMB', ' MB')}`,
      '—',
      '—',
    ],
    ['start-up → synced (/readyz)', g('startup.syncedMs'), '—', '—'],
    [
      'start-up → first pass done',
      `${g('startup.firstPassMs')} (${g('startup.firstPassSignal', '')})`,
      '≤ 10 s',
      '≤ 60 s',
    ],
    [
      'change 1 s after start → triggered',
      `${g('startup.changeTriggerLatencyMs')} (beyond the 2 s debounce: ${g('startup.changeLatencyBeyondDebounceMs')})`,
      '≤ 2 s',
      '—',
    ],
    [
      'writes during start-up to unchanged releases',
      `${g('startup.writesToUnchangedReleases', '')}; restart with nothing changed: ${g('steadyState.restartWrites', '')}`,
      '0',
      '0',
    ],
    ['failover: leader SIGKILL → Lease acquired', g('failover.killToLeaseAcquiredMs'), '—', '—'],
    [
      'failover: change at the kill → triggered (from the kill / from the Lease)',
      `${g('failover.killToTriggerMs')} / ${g('failover.leaseAcquiredToTriggerMs')}`,
      '≤ 2 s',
      '—',
    ],
    ["failover: kill → new leader's first pass done", g('failover.killToFirstPassDoneMs'), '—', '—'],
    ['failover: writes to unchanged releases', g('failover.writesToUnchangedReleases', ''), '0', '0'],
    [
      'steady state (debounce 0): trigger latency p50 / p99',
      `${g('steadyState.triggerLatencyMs.p50')} / ${g('steadyState.triggerLatencyMs.p99')}`,
      'p99 ≤ 100 ms',
      '—',
    ],
    [
      'API server watch floor, same run: p50 / p99',
      `${g('steadyState.apiWatchFloorMs.p50')} / ${g('steadyState.apiWatchFloorMs.p99')}`,
      '—',
      '—',
    ],
    ['steady-state p50 above the floor', g('steadyState.p50AboveFloorMs'), '≤ 12 ms', '—'],
    [
      'storm: 1,000 ConfigMaps at once → all triggered, from the first change / from the last (queue empty); max writes per release',
      `${g('storms.once.settleMs')} / ${afterLast(r)} (${g('storms.once.queueEmptyMs')}); ${g('storms.once.maxWritesPerRelease', '')}`,
      '≤ 15 s; 1',
      '—',
    ],
    ['a change 3 s into that storm → triggered', g('storms.once.lateChangeLatencyMs'), '—', '—'],
    [
      'storm: 1,000 changes on 100 ConfigMaps → all triggered (queue empty); max writes per release',
      `${g('storms.repeated.settleMs')} (${g('storms.repeated.queueEmptyMs')}); ${g('storms.repeated.maxWritesPerRelease', '')} (one ConfigMap's 10 changes spread over up to ${g('storms.repeated.longestChangeSpanMs')})`,
      '1 per window',
      '—',
    ],
    [
      'RSS of the operator: peak / after settle (start-up, process A)',
      `${g('startup.peakRssMB', ' MB')} / ${g('startup.rssMB', ' MB')}`,
      '≤ 150 MB',
      '≤ 500 MB',
    ],
    [
      'RSS: follower synced; new leader after storms (peak)',
      `${g('failover.followerRssMB', ' MB')}; ${g('stormLeaderMemory.rssMB', ' MB')} (${g('stormLeaderMemory.peakRssMB', ' MB')})`,
      '≤ 150 MB',
      '≤ 500 MB',
    ],
  ];
}

export function markdown(r: Results): string {
  const env = (r.environment ?? {}) as Results;
  const releases = Number(at(r, 'set.releases') ?? 0);
  const col = releases >= 50_000 ? 3 : 2;
  const lines = [
    `# Trigger reconciler at ${releases.toLocaleString('en-US')} releases — ${env.date}`,
    '',
    `Machine: ${env.cpu} × ${env.cores}, ${env.memoryGB} GB; Node ${env.node}; kube-apiserver ${env.kubeApiserver}; commit ${env.commit}.`,
    `Operator: cmd/helmrelease-autopilot/main.ts at its default flags, as \`npm start\` runs it: \`${env.operatorLaunch}\`.`,
    `Command: \`${env.command}\` (${Math.round(Number(env.runMs) / 1000)} s end to end).`,
    '',
    `Load before: \`${env.uptimeBefore}\``,
    `Load after: \`${env.uptimeAfter}\``,
    "The machine is shared (2 cores, other engineers' test suites): figures are taken under that load.",
    '',
    `| figure | measured | target at ${releases.toLocaleString('en-US')} |`,
    '| --- | --- | --- |',
    ...headlineRows(r).map((row) => `| ${row[0]} | ${row[1]} | ${row[col]} |`),
    '',
    '## Every number',
    '',
    '```json',
    JSON.stringify(r, null, 2),
    '```',
    '',
  ];
  return lines.join('\n');
}

/** The bare-process scenario alone (--bare): memory of the code, and the modules it loads by package. */
export function bareMarkdown(r: Results): string {
  const env = (r.environment ?? {}) as Results;
  const bare = (r.bareProcess ?? {}) as Results;
  const modules = (bare.modulesByPackage ?? {}) as Record<string, number>;
  return [
    `# The operator process with no object — ${env.date}`,
    '',
    `Machine: ${env.cpu} × ${env.cores}, ${env.memoryGB} GB; Node ${env.node}; kube-apiserver ${env.kubeApiserver}; commit ${env.commit}.`,
    ...(env.note ? [`Note: ${env.note}.`] : []),
    `Launch (as \`npm start\`): \`${env.operatorLaunch}\`; command: \`${env.command}\`.`,
    `Load before: \`${env.uptimeBefore}\`; after: \`${env.uptimeAfter}\`.`,
    '',
    `RSS ${fmt(bare.rssMB, ' MB')} (peak ${fmt(bare.peakRssMB, ' MB')}), heap used ${fmt(bare.heapUsedMB, ' MB')} of ${fmt(bare.heapTotalMB, ' MB')}, external ${fmt(bare.externalMB, ' MB')}; /readyz after ${fmt(bare.readyMs, ' ms')}.`,
    '',
    `${fmt(bare.modules, '')} modules loaded:`,
    '',
    '| package | modules |',
    '| --- | --- |',
    ...Object.entries(modules).map(([k, v]) => `| ${k} | ${v} |`),
    '',
  ].join('\n');
}
