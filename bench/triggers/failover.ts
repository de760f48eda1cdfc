// Scenario "failover": a second operator process (default flags) starts as a follower beside the leader of
// the start-up scenario; once it is synced, the leader is SIGKILLed and one release's ConfigMap changes at
// that moment. Measures kill → the follower holds the Lease (a watch of the Lease), kill → the change
// triggered by the new leader, kill → the new leader's first pass done, writes to every other release (0
// expected) and the follower's RSS. The new leader keeps running for the storm scenarios.
import { sleep } from '../../src/util/sleep.ts';
import { type BenchContext, SETTLE_MS, span, startOperator } from './context.ts';
import { changeValues } from './objects.ts';
import { LeaseWatch } from './observers.ts';
import { OPERATOR_NAMESPACE, type OperatorProcess } from './operator-process.ts';

/** The default --lease-name. */
const LEASE = 'helmrelease-autopilot';

export async function failoverPhase(
  ctx: BenchContext,
  leader: OperatorProcess,
): Promise<{ op: OperatorProcess; result: object }> {
  const [changed] = ctx.pool.take(1);
  if (!changed) throw new Error('no release left');
  const leases = await new LeaseWatch(ctx.client, OPERATOR_NAMESPACE, LEASE).start();
  const leaderId = leases.holder;
  if (!leaderId) throw new Error('nobody holds the Lease: the start-up scenario left no leader');
  const follower = await startOperator(ctx, 'B');
  const followerReady = await follower.waitReady(ctx.slowMs);
  await sleep(SETTLE_MS);
  const followerMemory = follower.memory();
  const followerHeap = await follower.heap();
  process.stderr.write(
    `  follower synced after ${span(follower.startedAt, followerReady)} ms, RSS ${followerMemory.rssMB} MB; killing the leader\n`,
  );

  const triggered = ctx.releases.nextTrigger(changed.key, ctx.slowMs);
  const acquired = leases.nextHolder(leaderId, ctx.slowMs);
  const killAt = performance.now();
  const dead = leader.kill();
  await changeValues(ctx.client, changed, 1);
  const changedAt = performance.now();
  await dead;
  const leaseAt = await acquired;
  process.stderr.write(`  Lease acquired ${span(killAt, leaseAt)} ms after the kill\n`);
  const [triggeredAt, pass] = await Promise.all([triggered, follower.waitFirstPass(ctx.slowMs, killAt)]);
  await sleep(SETTLE_MS);
  const end = performance.now();
  const others = ctx.releases.writesBetween(killAt, end, new Set([changed.key]));
  const own = ctx.releases.writesBetween(killAt, end).filter((w) => w.key === changed.key);
  const newHolder = leases.holder;
  await leases.stop();
  const newLeader = follower.memory();
  const result = {
    followerSyncedMs: span(follower.startedAt, followerReady),
    followerRssMB: followerMemory.rssMB,
    followerHeapUsedMB: followerHeap.heapUsedMB,
    changeSentMsAfterKill: span(killAt, changedAt),
    killToLeaseAcquiredMs: span(killAt, leaseAt),
    newLeaseHolderIsFollower: newHolder === (await follower.identity(1000)),
    killToTriggerMs: span(killAt, triggeredAt),
    leaseAcquiredToTriggerMs: Number.isNaN(leaseAt) ? null : span(leaseAt, triggeredAt),
    killToFirstPassDoneMs: pass ? span(killAt, pass.at) : null,
    firstPassSignal: pass?.signal ?? 'none (timed out)',
    changedReleaseTriggers: own.filter((w) => w.trigger).length,
    writesToUnchangedReleases: others.length,
    newLeaderRssMB: newLeader.rssMB,
    newLeaderPeakRssMB: newLeader.peakRssMB,
  };
  return { op: follower, result };
}
