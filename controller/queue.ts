// A work queue keyed by release, in the shape of controller-runtime's: events only add keys; a key is
// processed by one worker at a time; adds while it is being processed run it once more afterwards.
// add() debounces over a fixed window that starts at the first add, so a stream of changes cannot
// postpone a key forever.
//
// Two priorities: a user's change now (watch events: add(), high) is served ahead of the start-up and
// resync pass (addAfter(key, 0, 'low')), without starving it: while both have keys due, one low key is
// served after every `lowEvery` high ones. A key pending at both is served once, at the higher priority
// and the earlier due time, except that a low add leaves a scheduled high key as it is: a change seen just
// before a pass keeps its debounce window.
//
// The queue alone decides requeues (controller-runtime's reconcileHandler), from what the handler did:
//   returned undefined (done)   -> forget the key's failures
//   returned { requeueAfterMs } -> forget its failures, run it again after that delay
//   threw                       -> run it again after its per-key backoff (base, doubling, capped)
// A requeued key keeps the priority it ran at.
import { type Clock, systemClock } from '../src/util/clock.ts';

/** What a reconcile asks of the queue: nothing more (undefined), or to run again after a delay. */
export type ReconcileResult = undefined | { requeueAfterMs: number };
/** Reconciles one key, at the priority it was due at; throwing asks the queue to retry it with backoff. */
export type Handler = (key: string, priority: Priority) => Promise<ReconcileResult>;
/** high: a change seen now (watch events); low: the start-up or resync pass over every key. */
export type Priority = 'high' | 'low';

/** Per-key backoff after a failure: 100 ms, doubling with each further failure, at most 60 s. */
export const DEFAULT_BACKOFF: Readonly<{ baseMs: number; maxMs: number }> = { baseMs: 100, maxMs: 60_000 };
/** Work run back to back before the queue returns to the event loop. */
const YIELD_EVERY_MS = 2;
/** While high and low keys are both due, one low key is served after this many high ones. */
export const DEFAULT_LOW_EVERY = 10;

export interface QueueOptions {
  concurrency: number;
  /** Window after the first add() during which further adds coalesce; 0: due at once. */
  debounceMs: number;
  /** Default: DEFAULT_BACKOFF. */
  backoff?: { baseMs: number; maxMs: number };
  /** Default: DEFAULT_LOW_EVERY. */
  lowEvery?: number;
  clock?: Clock;
  /** Called when the handler throws (after the key is requeued with backoff). */
  onError?: (key: string, err: unknown, retryInMs: number) => void;
}

interface Entry {
  due: number;
  seq: number;
  key: string;
}

/** A binary min-heap of (due, seq). Stale entries are skipped when popped (lazy deletion). */
class DueHeap {
  private readonly a: Entry[] = [];
  get size(): number {
    return this.a.length;
  }
  peek(): Entry | undefined {
    return this.a[0];
  }
  push(e: Entry): void {
    const a = this.a;
    a.push(e);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (less(a[p] as Entry, e)) break;
      a[i] = a[p] as Entry;
      i = p;
    }
    a[i] = e;
  }
  pop(): Entry | undefined {
    const a = this.a;
    const top = a[0];
    const last = a.pop();
    if (a.length > 0 && last) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= a.length) break;
        const r = l + 1;
        const c = r < a.length && less(a[r] as Entry, a[l] as Entry) ? r : l;
        if (less(last, a[c] as Entry)) break;
        a[i] = a[c] as Entry;
        i = c;
      }
      a[i] = last;
    }
    return top;
  }
}
const less = (x: Entry, y: Entry) => x.due < y.due || (x.due === y.due && x.seq < y.seq);

/** A FIFO with O(1) shift (Array#shift copies: 50,000 keys due at start would cost O(n^2)). */
class Fifo {
  private a: string[] = [];
  private head = 0;
  push(key: string): void {
    this.a.push(key);
  }
  shift(): string | undefined {
    if (this.head >= this.a.length) return undefined;
    const key = this.a[this.head++];
    if (this.head > 1024 && this.head * 2 > this.a.length) {
      this.a = this.a.slice(this.head);
      this.head = 0;
    }
    return key;
  }
}

const higher = (a: Priority | undefined, b: Priority): Priority =>
  a === 'high' || b === 'high' ? 'high' : 'low';

export class WorkQueue {
  private readonly handler: Handler;
  private readonly o: Required<Omit<QueueOptions, 'onError'>> & Pick<QueueOptions, 'onError'>;
  /** Earliest due time of every scheduled (not yet due) key. */
  private readonly scheduled = new Map<string, number>();
  /** The scheduled keys whose priority is low (the others are high). */
  private readonly scheduledLow = new Set<string>();
  private readonly heap = new DueHeap();
  /** Keys due now, each at most once, with its priority; the FIFOs hold them in order (lazily pruned). */
  private readonly ready = new Map<string, Priority>();
  private readonly readyHigh = new Fifo();
  private readonly readyLow = new Fifo();
  private readyLowCount = 0;
  /** High keys served in a row while low keys were waiting. */
  private highStreak = 0;
  /** Keys being processed, with the priority they run at. */
  private readonly processing = new Map<string, Priority>();
  private runningLow = 0;
  /** Keys that became due while being processed: run again when the current run ends. */
  private readonly again = new Map<string, Priority>();
  private readonly failures = new Map<string, number>();
  private timer: unknown;
  private timerDue = Number.POSITIVE_INFINITY;
  private seq = 0;
  private running = false;
  private readonly inflight = new Set<Promise<void>>();
  private idleWaiters: (() => void)[] = [];
  private lowWaiters: (() => void)[] = [];
  /** When the queue last returned to the event loop (real time: this is about the CPU, not the clock). */
  private sliceStart = performance.now();

  constructor(handler: Handler, options: QueueOptions) {
    this.handler = handler;
    this.o = { backoff: DEFAULT_BACKOFF, lowEvery: DEFAULT_LOW_EVERY, clock: systemClock, ...options };
  }

  get debounceMs(): number {
    return this.o.debounceMs;
  }

  /** A change seen now: enqueues key at high priority after the debounce window (coalescing). */
  add(key: string): void {
    this.schedule(key, this.o.clock.now() + this.o.debounceMs, 'high');
  }

  /** Enqueues key after delayMs, unless it is already due earlier; `low` for the start-up and resync pass. */
  addAfter(key: string, delayMs: number, priority: Priority = 'high'): void {
    this.schedule(key, this.o.clock.now() + Math.max(0, delayMs), priority);
  }

  /** Forgets the failure count of key (its next failure starts the backoff anew). */
  forget(key: string): void {
    this.failures.delete(key);
  }

  /** Keys waiting (scheduled or ready), not counting those being processed. */
  get depth(): number {
    return this.scheduled.size + this.ready.size;
  }

  /** Keys due now at low priority (the rest of the start-up or resync pass). */
  get depthLow(): number {
    return this.readyLowCount;
  }

  /** Low keys not done yet: scheduled, due or running (a pass is over when this reaches 0). */
  get pendingLow(): number {
    return this.scheduledLow.size + this.readyLowCount + this.runningLow;
  }

  get busy(): number {
    return this.processing.size;
  }

  start(): void {
    this.running = true;
    this.pump();
  }

  /** Stops taking keys and waits for the handlers that are running. */
  async stop(): Promise<void> {
    this.running = false;
    if (this.timer !== undefined) this.o.clock.clearTimeout(this.timer);
    this.timer = undefined;
    this.timerDue = Number.POSITIVE_INFINITY;
    await Promise.allSettled([...this.inflight]);
  }

  /** Resolves once no low key is pending (pendingLow is 0): the start-up or resync pass is over. */
  whenLowDone(): Promise<void> {
    if (this.pendingLow === 0) return Promise.resolve();
    return new Promise((resolve) => this.lowWaiters.push(resolve));
  }

  /** Resolves when nothing is ready or being processed (scheduled keys in the future may remain). */
  whenIdle(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private isIdle(): boolean {
    return this.ready.size === 0 && this.processing.size === 0 && this.nextDue() > this.o.clock.now();
  }

  private nextDue(): number {
    this.dropStale();
    return this.heap.peek()?.due ?? Number.POSITIVE_INFINITY;
  }

  private dropStale(): void {
    for (let top = this.heap.peek(); top && this.scheduled.get(top.key) !== top.due; top = this.heap.peek()) {
      this.heap.pop();
    }
  }

  /** Pending at most once: the earlier due time and the higher priority of what is pending and what is added. */
  private schedule(key: string, due: number, priority: Priority): void {
    if (this.ready.has(key)) {
      this.makeReady(key, priority);
      return;
    }
    const current = this.scheduled.get(key);
    let at = due;
    let p = priority;
    if (current !== undefined) {
      const currentPriority: Priority = this.scheduledLow.has(key) ? 'low' : 'high';
      // A pass never brings a change forward: the change keeps its debounce (and the pass is served by it).
      if (currentPriority === 'high' && priority === 'low') return;
      at = Math.min(current, due);
      p = higher(currentPriority, priority);
      if (at === current && p === currentPriority) return;
    }
    if (at <= this.o.clock.now()) {
      this.unschedule(key);
      this.makeReady(key, p);
    } else {
      this.scheduled.set(key, at);
      if (p === 'low') this.scheduledLow.add(key);
      else this.scheduledLow.delete(key);
      if (at !== current) this.heap.push({ due: at, seq: this.seq++, key });
    }
    this.pump();
  }

  private unschedule(key: string): void {
    this.scheduled.delete(key);
    this.scheduledLow.delete(key);
  }

  /** A key is due: ready at its priority (a ready low key is promoted), or run again after its current run. */
  private makeReady(key: string, priority: Priority): void {
    if (this.processing.has(key)) {
      this.again.set(key, higher(this.again.get(key), priority));
      return;
    }
    const current = this.ready.get(key);
    if (current === 'high' || current === priority) return;
    if (current === 'low') this.readyLowCount--;
    this.ready.set(key, priority);
    if (priority === 'high') this.readyHigh.push(key);
    else {
      this.readyLow.push(key);
      this.readyLowCount++;
    }
  }

  /** The next key to run: high first, but a low one after lowEvery highs in a row while lows wait. */
  private takeReady(): [string, Priority] | undefined {
    if (this.readyLowCount === 0) this.highStreak = 0;
    const order: Priority[] = this.highStreak >= this.o.lowEvery ? ['low', 'high'] : ['high', 'low'];
    for (const p of order) {
      const fifo = p === 'high' ? this.readyHigh : this.readyLow;
      for (let key = fifo.shift(); key !== undefined; key = fifo.shift()) {
        // Entries of keys served or promoted since they were queued are skipped.
        if (this.ready.get(key) !== p) continue;
        this.ready.delete(key);
        if (p === 'low') {
          this.readyLowCount--;
          this.highStreak = 0;
        } else this.highStreak++;
        return [key, p];
      }
    }
    return undefined;
  }

  /** Moves due keys to ready, starts workers, and arms the timer for the next due key. */
  private pump(): void {
    if (!this.running) return;
    const now = this.o.clock.now();
    for (let top = this.heap.peek(); top; top = this.heap.peek()) {
      if (this.scheduled.get(top.key) !== top.due) {
        this.heap.pop();
        continue;
      }
      if (top.due > now) break;
      this.heap.pop();
      const priority: Priority = this.scheduledLow.has(top.key) ? 'low' : 'high';
      this.unschedule(top.key);
      this.makeReady(top.key, priority);
    }
    while (this.processing.size < this.o.concurrency) {
      const next = this.takeReady();
      if (!next) break;
      this.run(next[0], next[1]);
    }
    this.arm();
    if (this.isIdle()) for (const w of this.idleWaiters.splice(0)) w();
    if (this.pendingLow === 0) for (const w of this.lowWaiters.splice(0)) w();
  }

  private arm(): void {
    const due = this.nextDue();
    if (due === this.timerDue) return;
    if (this.timer !== undefined) this.o.clock.clearTimeout(this.timer);
    this.timer = undefined;
    this.timerDue = due;
    if (due === Number.POSITIVE_INFINITY) return;
    this.timer = this.o.clock.setTimeout(
      () => {
        this.timer = undefined;
        this.timerDue = Number.POSITIVE_INFINITY;
        this.pump();
      },
      Math.max(0, due - this.o.clock.now()),
    );
  }

  /** Counts a failure of key and returns its delay: base * 2^(failures - 1), at most max. */
  private backoff(key: string): number {
    const n = (this.failures.get(key) ?? 0) + 1;
    this.failures.set(key, n);
    const { baseMs, maxMs } = this.o.backoff;
    return Math.min(maxMs, baseMs * 2 ** Math.min(n - 1, 30));
  }

  private run(key: string, priority: Priority): void {
    this.processing.set(key, priority);
    if (priority === 'low') this.runningLow++;
    const p = (async () => {
      try {
        const result = await this.handler(key, priority);
        this.forget(key);
        if (result) this.addAfter(key, result.requeueAfterMs, priority);
      } catch (err) {
        const delay = this.backoff(key);
        this.addAfter(key, delay, priority);
        this.o.onError?.(key, err, delay);
      } finally {
        this.processing.delete(key);
        if (priority === 'low') this.runningLow--;
        const again = this.again.get(key);
        if (again) {
          this.again.delete(key);
          this.schedule(key, this.o.clock.now(), again);
        }
      }
    })();
    this.inflight.add(p);
    void p.finally(() => {
      this.inflight.delete(p);
      // Back to the event loop every YIELD_EVERY_MS: a pass whose reconciles finish from the caches alone
      // (microtasks only) would otherwise keep out watch events, the changes they bring and admission
      // requests until its end. (A turn per key would cost ~12 us each: 0.6 s over 50,000 releases.)
      if (performance.now() - this.sliceStart < YIELD_EVERY_MS) this.pump();
      else
        setImmediate(() => {
          this.sliceStart = performance.now();
          this.pump();
        });
    });
  }
}

/** What waits for a write token: a reconcile's take(), at the priority its key runs at. */
export interface WriteTokens {
  take(priority?: Priority): Promise<void>;
}

/**
 * A token bucket (qps sustained, burst at most) with two lines of waiters: a write for a change seen now
 * (high) gets the next token before the start-up or resync pass's (low), without starving it: while both
 * wait, one low waiter is served after every `lowEvery` high ones. Each line is served in order.
 */
export class TokenBucket implements WriteTokens {
  private tokens: number;
  private last: number;
  private readonly qps: number;
  private readonly burst: number;
  private readonly clock: Clock;
  private readonly lowEvery: number;
  private readonly waiting: Record<Priority, (() => void)[]> = { high: [], low: [] };
  private highStreak = 0;
  private timer: unknown;

  constructor(qps: number, burst: number, clock: Clock = systemClock, lowEvery = DEFAULT_LOW_EVERY) {
    this.qps = qps;
    this.burst = burst;
    this.clock = clock;
    this.lowEvery = lowEvery;
    this.tokens = burst;
    this.last = clock.now();
  }

  /** Waits for a token (high by default). */
  take(priority: Priority = 'high'): Promise<void> {
    return new Promise<void>((resolve) => {
      this.waiting[priority].push(resolve);
      this.serve();
    });
  }

  /** Waiters in each line (for tests and metrics). */
  get waiters(): Readonly<Record<Priority, number>> {
    return { high: this.waiting.high.length, low: this.waiting.low.length };
  }

  /** Hands out the tokens there are, then sleeps until the next one when someone still waits. */
  private serve(): void {
    if (this.timer !== undefined) return;
    for (;;) {
      const line = this.nextLine();
      if (!line) return;
      const now = this.clock.now();
      // A wall clock stepped back adds nothing (and takes nothing away).
      this.tokens = Math.min(this.burst, this.tokens + (Math.max(0, now - this.last) * this.qps) / 1000);
      this.last = now;
      if (this.tokens < 1) {
        const waitMs = Math.ceil(((1 - this.tokens) * 1000) / this.qps);
        this.timer = this.clock.setTimeout(() => {
          this.timer = undefined;
          this.serve();
        }, waitMs);
        return;
      }
      this.tokens -= 1;
      this.highStreak = line === 'high' && this.waiting.low.length > 0 ? this.highStreak + 1 : 0;
      this.waiting[line].shift()?.();
    }
  }

  private nextLine(): Priority | undefined {
    const { high, low } = this.waiting;
    if (high.length === 0) return low.length > 0 ? 'low' : undefined;
    return low.length > 0 && this.highStreak >= this.lowEvery ? 'low' : 'high';
  }
}
