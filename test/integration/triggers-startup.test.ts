// A change made right after a start is triggered as fast as in steady state: the start-up pass over every
// release neither waits for write tokens (it writes nothing) nor holds up a change seen during it (changes go
// first in the queue). A real operator process at the default flags but --debounce=0, a few thousand stamped
// releases; the latencies are printed.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KubeClient } from '../../src/kube/client.ts';
import { appName, changeValues, createValuesReleases, stampAll, watchReleases } from '../support/bulk.ts';
import { adminClient, createNamespace, eventually } from '../support/cluster.ts';
import { startOperator, waitForLog } from '../support/operator.ts';

const RELEASES = 2000;

describe('start-up at scale', () => {
  let client: KubeClient;
  beforeAll(async () => {
    client = await adminClient();
  });
  afterAll(() => client.close());

  it(`a change made right after a start with ${RELEASES} releases is triggered within 2 s, and the pass writes nothing`, async () => {
    const ns = await createNamespace(client, 'startup');
    const t0 = Date.now();
    await createValuesReleases(client, ns, { count: RELEASES });
    const created = Date.now() - t0;
    const releases = await watchReleases(client, ns);
    try {
      await stampAll(ns, releases, RELEASES);

      // The restart, at the default write budget (50/s, burst 300). The change is made as soon as the values
      // are warm (the pass is enqueued right then), to the release the pass reaches last (listed by name).
      const writesBefore = releases.writes.length;
      const started = Date.now();
      const op = startOperator(ns, ['--debounce=0']);
      try {
        const warm = await waitForLog(op, 'values warmed up');
        const last = RELEASES - 1;
        const changedAt = Date.now();
        await changeValues(client, ns, last, 1);
        const enqueued = await waitForLog(op, 'trigger controller started');
        const triggered = await eventually(() => releases.triggeredAt(appName(last), changedAt), {
          what: 'the change during the pass triggered',
        });
        const pass = await waitForLog(op, 'start-up pass done');
        // Steady state, for comparison: the same kind of change after the pass.
        const steadyAt = Date.now();
        await changeValues(client, ns, 0, 1);
        const steady = await eventually(() => releases.triggeredAt(appName(0), steadyAt), {
          what: 'the change after the pass triggered',
        });
        await new Promise((r) => setTimeout(r, 1000)); // a spurious write would show up here
        const latencyMs = triggered - changedAt;
        const steadyMs = steady - steadyAt;
        const writes = releases.writes.slice(writesBefore);
        console.log(
          JSON.stringify({
            releases: RELEASES,
            createMs: created,
            startToWarmMs: warm.time - started,
            startToPassEnqueuedMs: enqueued.time - started,
            passMs: pass.ms,
            changeDuringPass: changedAt < pass.time,
            triggeredBeforePassDone: triggered < pass.time,
            changeLatencyMs: latencyMs,
            steadyLatencyMs: steadyMs,
            writesDuringRestart: writes.length,
          }),
        );
        expect(latencyMs).toBeLessThan(2000);
        // Two changes, two writes: the pass over the other releases wrote nothing.
        expect(writes.map((w) => w.name).sort()).toEqual([appName(0), appName(last)]);
      } finally {
        op.proc.kill('SIGTERM');
        await op.exit;
      }
    } finally {
      await releases.stop();
    }
  }, 180_000);
});
