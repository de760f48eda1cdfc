// Scenario "start-up": the operator (default flags) starts over the whole set; one release's ConfigMap
// changes 1 s after the process was spawned. Measures spawn → synced (/readyz), spawn → end of the first
// pass, the changed release's trigger latency, writes to every other release (0 expected: nothing else
// changed) and RSS. The process keeps running as the leader of the failover scenario.
import { sleep } from '../../src/util/sleep.ts';
import { type BenchContext, SETTLE_MS, span, startOperator } from './context.ts';
import { changeValues } from './objects.ts';
import type { OperatorProcess } from './operator-process.ts';

/** The default --debounce: a change is acted on no earlier than this after it is seen. */
const DEFAULT_DEBOUNCE_MS = 2000;

export async function startupPhase(ctx: BenchContext): Promise<{ op: OperatorProcess; result: object }> {
  const [changed] = ctx.pool.take(1);
  if (!changed) throw new Error('no release left');
  const op = await startOperator(ctx, 'A');
  const ready = op.waitReady(ctx.slowMs);
  const firstPass = op.waitFirstPass(ctx.slowMs);
  await sleep(Math.max(0, op.startedAt + 1000 - performance.now()));
  const triggered = ctx.releases.nextTrigger(changed.key, ctx.slowMs);
  const changedAt = performance.now();
  await changeValues(ctx.client, changed, 1);
  process.stderr.write(`  changed ${changed.configMapKey} ${span(op.startedAt, changedAt)} ms after start\n`);
  const readyAt = await ready;
  process.stderr.write(`  synced (/readyz) after ${span(op.startedAt, readyAt)} ms\n`);
  const [pass, triggeredAt] = await Promise.all([firstPass, triggered]);
  await sleep(SETTLE_MS);
  const end = performance.now();
  const others = ctx.releases.writesBetween(op.startedAt, end, new Set([changed.key]));
  const own = ctx.releases.writesBetween(op.startedAt, end).filter((w) => w.key === changed.key);
  const latency = span(changedAt, triggeredAt);
  const leader = op.lines.find((l) => /became leader/.test(l.msg));
  const result = {
    syncedMs: span(op.startedAt, readyAt),
    becameLeaderMs: leader ? span(op.startedAt, leader.at) : null,
    firstPassMs: pass ? span(op.startedAt, pass.at) : null,
    firstPassSignal: pass?.signal ?? 'none (timed out)',
    changeMadeMs: span(op.startedAt, changedAt),
    changeTriggerLatencyMs: latency,
    changeLatencyBeyondDebounceMs: latency === null ? null : latency - DEFAULT_DEBOUNCE_MS,
    changedReleaseWrites: own.length,
    changedReleaseTriggers: own.filter((w) => w.trigger).length,
    writesToUnchangedReleases: others.length,
    ...op.memory(),
    ...(await op.heap()),
  };
  return { op, result };
}
