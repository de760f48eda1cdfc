// Scenario "bare process": the operator at its default flags against the control plane before any release,
// ConfigMap or Secret exists: RSS and heap of the code alone, the floor under every other memory figure.
import { sleep } from '../../src/util/sleep.ts';
import { type BenchContext, SETTLE_MS, span, startOperator } from './context.ts';

export async function bareProcess(ctx: BenchContext) {
  const op = await startOperator(ctx, 'bare');
  const ready = await op.waitReady(60_000);
  await op.waitFirstPass(60_000);
  await sleep(SETTLE_MS);
  const result = { readyMs: span(op.startedAt, ready), ...op.memory(), ...(await op.heap()) };
  await op.stop();
  return result;
}
