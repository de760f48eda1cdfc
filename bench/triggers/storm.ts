// Scenario "storms", on the leader left by the failover scenario (default flags: debounce 2 s, 20 writes/s):
//  - 1,000 ConfigMaps changed once each, all at once (32 in flight), and one more change 3 s later: time to
//    settle (every release triggered, then the leader's queue empty), writes per release, and how long the late
//    change waited behind the storm;
//  - 1,000 changes on 100 ConfigMaps (10 each, back to back): one patch per release per change window.
import { sleep } from '../../src/util/sleep.ts';
import { type BenchContext, SETTLE_MS, span } from './context.ts';
import { changeValues, parallel, type Release } from './objects.ts';
import type { OperatorProcess } from './operator-process.ts';

const STORM = 1000;
const LATE_CHANGE_MS = 3000;

/**
 * Changes every target's ConfigMap `changesPer` times and waits until every release was triggered, then until
 * the leader's queue is empty (what is left after the last trigger: the evaluations of its own patches).
 */
async function storm(
  ctx: BenchContext,
  op: OperatorProcess,
  targets: Release[],
  changesPer: number,
  late?: Release,
) {
  await op.waitQueueEmpty(ctx.slowMs); // the previous storm's work is not this one's
  const t0 = performance.now();
  const seen = Promise.all(targets.map((r) => ctx.releases.nextTrigger(r.key, ctx.slowMs)));
  const lateSeen = late
    ? sleep(LATE_CHANGE_MS).then(async () => {
        const triggered = ctx.releases.nextTrigger(late.key, ctx.slowMs);
        const at = performance.now();
        await changeValues(ctx.client, late, 1);
        return span(at, await triggered);
      })
    : undefined;
  let maxSpanMs = 0; // the longest time over which one ConfigMap's changes were sent
  await parallel(targets, 32, async (r) => {
    const first = performance.now();
    for (let gen = 1; gen <= changesPer; gen++) await changeValues(ctx.client, r, gen);
    maxSpanMs = Math.max(maxSpanMs, performance.now() - first);
  });
  const issuedMs = span(t0, performance.now());
  const times = await seen;
  const lateChangeLatencyMs = lateSeen ? await lateSeen : undefined;
  const missed = times.filter(Number.isNaN).length;
  const settleMs =
    missed === targets.length ? null : span(t0, Math.max(...times.filter((t) => !Number.isNaN(t))));
  const queueEmptyMs = span(t0, await op.waitQueueEmpty(ctx.slowMs));
  await sleep(SETTLE_MS);
  const affected = new Set(targets.map((r) => r.key));
  const writes = ctx.releases.writesBetween(t0, performance.now());
  const per = new Map<string, { writes: number; triggers: number }>();
  for (const w of writes) {
    if (!affected.has(w.key)) continue;
    const c = per.get(w.key) ?? { writes: 0, triggers: 0 };
    c.writes++;
    if (w.trigger) c.triggers++;
    per.set(w.key, c);
  }
  const counts = [...per.values()];
  return {
    changes: targets.length * changesPer,
    // Changes of one ConfigMap spread over more than the debounce window (2 s) may rightly trigger twice.
    ...(changesPer > 1 ? { longestChangeSpanMs: Math.round(maxSpanMs) } : {}),
    configMaps: targets.length,
    issuedMs,
    settleMs,
    queueEmptyMs,
    missed,
    ...(lateChangeLatencyMs === undefined ? {} : { lateChangeAfterMs: LATE_CHANGE_MS, lateChangeLatencyMs }),
    releasesWritten: counts.length,
    totalWrites: counts.reduce((a, c) => a + c.writes, 0),
    maxWritesPerRelease: Math.max(0, ...counts.map((c) => c.writes)),
    releasesTriggeredMoreThanOnce: counts.filter((c) => c.triggers > 1).length,
    writesToOtherReleases: writes.filter((w) => !affected.has(w.key) && w.key !== late?.key).length,
  };
}

export async function stormPhase(ctx: BenchContext, op: OperatorProcess) {
  const targets = ctx.pool.take(STORM);
  const [late] = ctx.pool.take(1);
  process.stderr.write(`  ${STORM} ConfigMaps changed at once, one more ${LATE_CHANGE_MS} ms later\n`);
  const once = await storm(ctx, op, targets, 1, late);
  process.stderr.write(`  ${JSON.stringify(once)}\n  1,000 changes on 100 ConfigMaps\n`);
  const repeated = await storm(ctx, op, ctx.pool.take(100), 10);
  process.stderr.write(`  ${JSON.stringify(repeated)}\n`);
  return { once, repeated };
}
