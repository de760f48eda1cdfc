// Reconcile tokens: RFC3339 times with nanosecond digits, strictly increasing within the process, so two
// triggers of one release in the same millisecond still carry different requestedAt values.
import type { Clock } from '../util/clock.ts';

export function tokenSource(clock: Clock): () => string {
  let last = 0n;
  return () => {
    const now = BigInt(clock.now()) * 1_000_000n + (process.hrtime.bigint() % 1_000_000n);
    last = now > last ? now : last + 1n;
    return formatNanos(last);
  };
}

export function formatNanos(nanos: bigint): string {
  const ms = Number(nanos / 1_000_000n);
  const iso = new Date(ms).toISOString(); // 2026-01-01T00:00:00.123Z
  const subMs = (nanos % 1_000_000n).toString().padStart(6, '0');
  return `${iso.slice(0, -1)}${subMs}Z`;
}
