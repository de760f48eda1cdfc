// Scenario "steady state" (debounce 0, every other flag at its default): a fresh operator process starts over
// the whole set (nothing changed: it must write nothing), then ConfigMaps change one at a time, at a steady
// pace; each change is timed from the PATCH sent to the new requestedAt seen by a release watch, beside the
// API server's own floor: the same PATCH seen by a ConfigMap watch.
import { sleep } from '../../src/util/sleep.ts';
import { summary } from '../stats.ts';
import { type BenchContext, SETTLE_MS, span, startOperator } from './context.ts';
import { changeValues } from './objects.ts';
import { ConfigMapWatch } from './observers.ts';

export async function steadyStatePhase(ctx: BenchContext, samples: number, intervalMs: number) {
  const op = await startOperator(ctx, 'C', ['--debounce=0']);
  const ready = await op.waitReady(ctx.slowMs);
  const pass = await op.waitFirstPass(ctx.slowMs);
  await sleep(SETTLE_MS);
  const startupWrites = ctx.releases.writesBetween(op.startedAt, performance.now()).length;
  process.stderr.write(
    `  synced ${span(op.startedAt, ready)} ms, first pass ${pass ? span(op.startedAt, pass.at) : 'timed out'} ms, ${startupWrites} writes; ${samples} changes, one every ${intervalMs} ms\n`,
  );
  const cms = await new ConfigMapWatch(ctx.client).start();
  const trigger: number[] = [];
  const floor: number[] = [];
  let missed = 0;
  const t0 = performance.now();
  for (const r of ctx.pool.take(samples)) {
    const seenCm = cms.next(r.configMapKey, 30_000);
    const seenTrigger = ctx.releases.nextTrigger(r.key, 30_000);
    const start = performance.now();
    await changeValues(ctx.client, r, 1);
    const [cmAt, trAt] = await Promise.all([seenCm, seenTrigger]);
    if (!Number.isNaN(cmAt)) floor.push(cmAt - start);
    if (Number.isNaN(trAt)) missed++;
    else trigger.push(trAt - start);
    await sleep(Math.max(0, start + intervalMs - performance.now()));
  }
  await sleep(SETTLE_MS);
  const writes = ctx.releases.writesBetween(t0, performance.now()).length;
  await cms.stop();
  const t = summary(trigger, 1);
  const f = summary(floor, 1);
  const result = {
    debounceMs: 0,
    restartSyncedMs: span(op.startedAt, ready),
    restartFirstPassMs: pass ? span(op.startedAt, pass.at) : null,
    restartWrites: startupWrites,
    intervalMs,
    triggerLatencyMs: t,
    apiWatchFloorMs: f,
    p50AboveFloorMs: Math.round((t.p50 - f.p50) * 10) / 10,
    missed,
    writesPerChange: Math.round((writes / samples) * 100) / 100,
    ...op.memory(),
    ...(await op.heap()),
  };
  await op.stop();
  return result;
}
