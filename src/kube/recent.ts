// What changed lately, as the caches saw it: a short, bounded journal of object events after sync (every
// replica keeps one). A replica that becomes leader replays it before its start-up pass, so a change made
// while no one led (the old leader was killed, the Lease not yet expired) is acted on first instead of
// wherever the pass over every release would reach it. Only a hint: the pass still examines everything.
import { type Clock, systemClock } from '../util/clock.ts';

export type ChangedKind = 'HelmRelease' | 'ConfigMap' | 'Secret';

export interface RecentChange {
  /** When the event was seen (clock ms). */
  at: number;
  kind: ChangedKind;
  namespace: string;
  name: string;
}

export interface RecentChangesOptions {
  /** Older entries are dropped. */
  maxAgeMs: number;
  /** At most this many entries (the oldest are dropped first). */
  maxEntries: number;
  clock?: Clock;
}

/** Default: a minute (four default lease durations), at most 10,000 events (~1 MB). */
export const DEFAULT_RECENT: RecentChangesOptions = { maxAgeMs: 60_000, maxEntries: 10_000 };

export class RecentChanges {
  private entries: RecentChange[] = [];
  private head = 0;
  private readonly o: Required<RecentChangesOptions>;

  constructor(o: RecentChangesOptions = DEFAULT_RECENT) {
    this.o = { clock: systemClock, ...o };
  }

  note(kind: ChangedKind, namespace: string, name: string): void {
    this.entries.push({ at: this.o.clock.now(), kind, namespace, name });
    this.prune();
  }

  /** The changes of the last maxAgeMs, oldest first. */
  list(): RecentChange[] {
    this.prune();
    return this.entries.slice(this.head);
  }

  get size(): number {
    return this.entries.length - this.head;
  }

  private prune(): void {
    const oldest = this.o.clock.now() - this.o.maxAgeMs;
    while (this.head < this.entries.length) {
      const e = this.entries[this.head] as RecentChange;
      if (e.at >= oldest && this.entries.length - this.head <= this.o.maxEntries) break;
      this.head++;
    }
    if (this.head > 1024 && this.head * 2 > this.entries.length) {
      this.entries = this.entries.slice(this.head);
      this.head = 0;
    }
  }
}
