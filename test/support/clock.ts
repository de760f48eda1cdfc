// A clock that moves only when told: advance(ms) fires the timers that fall due, in order.
import type { Clock } from '../../src/util/clock.ts';

interface Timer {
  at: number;
  seq: number;
  fn: () => void;
}

export class FakeClock implements Clock {
  private t: number;
  private seq = 0;
  private timers = new Map<number, Timer>();

  constructor(start = Date.parse('2026-01-01T00:00:00Z')) {
    this.t = start;
  }

  now(): number {
    return this.t;
  }

  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.seq;
    this.timers.set(id, { at: this.t + Math.max(0, ms), seq: id, fn });
    return id;
  }

  clearTimeout(handle: unknown): void {
    this.timers.delete(handle as number);
  }

  /** The wall clock steps back (NTP, a VM resumed); timers, monotonic in Node, still fire after their delay. */
  stepBack(ms: number): void {
    this.t -= ms;
    for (const x of this.timers.values()) x.at -= ms;
  }

  /** Number of timers waiting. */
  get pending(): number {
    return this.timers.size;
  }

  /** Moves time forward by ms, firing due timers in order (and letting promises run between them). */
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    for (;;) {
      await flushPromises();
      const next = [...this.timers.values()]
        .filter((x) => x.at <= end)
        .sort((a, b) => a.at - b.at || a.seq - b.seq)[0];
      if (!next) break;
      this.timers.delete(next.seq);
      this.t = Math.max(this.t, next.at);
      next.fn();
    }
    this.t = end;
    await flushPromises();
  }
}

export async function flushPromises(): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise<void>((r) => setImmediate(r));
}
