// The rollout budget (--max-upgrades-in-flight N): at most N releases reconciling at once because of our
// writes (triggers and retries together, per leader), the rest waiting in line, first come first served.
//
// A release is in flight from the moment a reconciler reserves a slot for its write until Flux has settled
// the request (requestSettled: it handled our token, or a later request, and shows no action running). A
// reconciler asks before it writes (acquire); a release that must wait is put in line with a wake-up that
// re-enqueues it when its turn comes. Slots are freed by the HelmRelease informer's events (observe), and by
// a periodic sweep for conditions that expire without an event (a controller that died mid-action).
import type { Logger } from 'pino';
import { Gauge, type Registry } from 'prom-client';
import { requestSettled } from '../src/flux/activity.ts';
import { type HelmRelease, parseReleaseKey, releaseKey } from '../src/flux/helmrelease.ts';
import type { OperatorCaches } from '../src/kube/caches.ts';
import type { MergePatch } from '../src/kube/patch.ts';
import { Flux, Labels } from '../src/names.ts';
import { type Clock, systemClock } from '../src/util/clock.ts';

/** Who is waiting: one line for both reconcilers, each waiter with its own wake-up. */
export type Waiter = 'triggers' | 'retries';

interface Slot {
  /** The requestedAt we wrote; undefined while the write is on its way (reserved). */
  token?: string;
  /** The cache has shown our token on the release (so a later, handled request means ours was superseded). */
  seen: boolean;
}

export interface RolloutBudget {
  /** 0: no limit. */
  readonly max: number;
  /**
   * True when `key` may write now: a slot is reserved for it. Otherwise it is put in line (once) and `wake` is
   * called when its turn may have come — except a release already in flight: it writes nothing more until Flux
   * settled it (a reconcile from a stale read must not write, nor free the slot when its write fails), and the
   * cache update that settles it enqueues it again.
   */
  acquire(key: string, who: Waiter, wake: () => void): boolean;
  /** The reserved write happened: the release is in flight with `token` until Flux settles it. */
  wrote(key: string, token: string): void;
  /** The reserved write did not happen (nothing to write after all, a 409, an error): the slot is free. */
  release(key: string): void;
  /** `who` no longer needs to write `key` (its line position is given up). */
  leave(key: string, who: Waiter): void;
  readonly inFlight: number;
  readonly waiting: number;
}

/** A budget without a limit: every acquire succeeds and nothing is tracked. */
export const UNLIMITED: RolloutBudget = {
  max: 0,
  acquire: () => true,
  wrote: () => {},
  release: () => {},
  leave: () => {},
  inFlight: 0,
  waiting: 0,
};

/** The budget's state machine, without I/O: the informer and the sweep call observe(). */
export class RolloutLine implements RolloutBudget {
  readonly max: number;
  private readonly slots = new Map<string, Slot>();
  /** `${who}:${key}` -> wake-up, in arrival order. */
  private readonly line = new Map<string, { key: string; wake: () => void }>();
  private readonly clock: Clock;

  constructor(max: number, clock: Clock = systemClock) {
    this.max = max;
    this.clock = clock;
  }

  get inFlight(): number {
    return this.slots.size;
  }

  get waiting(): number {
    return this.line.size;
  }

  acquire(key: string, who: Waiter, wake: () => void): boolean {
    if (this.slots.has(key)) return false;
    const id = `${who}:${key}`;
    const free = this.max - this.slots.size;
    const position = this.line.has(id) ? [...this.line.keys()].indexOf(id) : this.line.size;
    if (position < free) {
      this.line.delete(id);
      this.slots.set(key, { seen: false });
      return true;
    }
    this.line.set(id, { key, wake });
    return false;
  }

  wrote(key: string, token: string): void {
    this.slots.set(key, { token, seen: false });
  }

  release(key: string): void {
    if (this.slots.delete(key)) this.wakeNext();
  }

  leave(key: string, who: Waiter): void {
    if (this.line.delete(`${who}:${key}`)) this.wakeNext();
  }

  /** Counts a release that is in flight without a write of ours in this process (a start, a failover). */
  adopt(key: string, token: string): void {
    this.slots.set(key, { token, seen: true });
  }

  /** A release as the cache shows it now (undefined: deleted): frees its slot once Flux settled our request. */
  observe(key: string, hr: HelmRelease | undefined): void {
    if (!hr) {
      for (const who of ['triggers', 'retries'] as const) this.line.delete(`${who}:${key}`);
      this.release(key);
      return;
    }
    const slot = this.slots.get(key);
    if (!slot?.token) return;
    if (hr.metadata.annotations[Flux.requestedAt] === slot.token) slot.seen = true;
    if (requestSettled(hr, slot.token, slot.seen, this.clock.now())) this.release(key);
  }

  /** Keys in flight (for the sweep). */
  keys(): string[] {
    return [...this.slots.keys()];
  }

  /** Wakes as many waiters, from the front of the line, as there are free slots. */
  private wakeNext(): void {
    const free = this.max - this.slots.size;
    let n = 0;
    for (const { wake } of this.line.values()) {
      if (n++ >= free) break;
      wake();
    }
  }
}

/** A write that holds a reserved slot of the rollout budget: in flight when written, freed otherwise. */
export async function budgetedWrite(
  budget: RolloutBudget,
  key: string,
  patch: MergePatch,
  write: () => Promise<boolean>,
): Promise<boolean> {
  try {
    const written = await write();
    if (written) budget.wrote(key, patch.metadata.annotations[Flux.requestedAt] as string);
    else budget.release(key);
    return written;
  } catch (err) {
    budget.release(key);
    throw err;
  }
}

export interface RolloutBudgetOptions {
  max: number;
  caches: Pick<OperatorCaches, 'helmReleases' | 'waitForSync'>;
  registry: Registry;
  logger: Logger;
  clock?: Clock;
  /** How often in-flight releases are looked at without an event (conditions that expire). */
  sweepMs?: number;
}

/** The budget for the reconcilers, kept current from the HelmRelease cache; UNLIMITED when max is 0. */
export function startRolloutBudget(o: RolloutBudgetOptions): { budget: RolloutBudget; stop(): void } {
  if (o.max === 0) return { budget: UNLIMITED, stop: () => {} };
  const clock = o.clock ?? systemClock;
  const line = new RolloutLine(o.max, clock);
  const registers = [o.registry];
  new Gauge({
    name: 'helmrelease_autopilot_rollout_in_flight',
    help: 'HelmReleases reconciling because of our triggers and retries (--max-upgrades-in-flight).',
    registers,
    collect() {
      this.set(line.inFlight);
    },
  });
  new Gauge({
    name: 'helmrelease_autopilot_rollout_waiting',
    help: 'Triggers and retries waiting for a slot of --max-upgrades-in-flight.',
    registers,
    collect() {
      this.set(line.waiting);
    },
  });
  const observe = (c: { namespace: string; name: string; value: HelmRelease }) =>
    line.observe(releaseKey(c.namespace, c.name), c.value);
  const off = o.caches.helmReleases.on({
    add: observe,
    update: (_old, c) => observe(c),
    delete: (c) => line.observe(releaseKey(c.namespace, c.name), undefined),
  });
  let stopped = false;
  void o.caches.waitForSync().then(() => {
    if (stopped) return;
    let adopted = 0;
    // Requests Flux has not handled on releases of ours: in flight already (a start, a failover).
    for (const c of o.caches.helmReleases.list()) {
      const token = c.value.metadata.annotations[Flux.requestedAt];
      if (c.value.metadata.labels[Labels.managed] !== 'true' || !token) continue;
      if (requestSettled(c.value, token, true, clock.now())) continue;
      line.adopt(releaseKey(c.namespace, c.name), token);
      adopted++;
    }
    if (adopted > 0) o.logger.info({ adopted, max: o.max }, 'rollout budget: releases already in flight');
  });
  const sweep = () => {
    if (stopped) return;
    for (const key of line.keys()) {
      const { namespace, name } = parseReleaseKey(key);
      line.observe(key, o.caches.helmReleases.get(namespace, name)?.value);
    }
    timer = clock.setTimeout(sweep, o.sweepMs ?? 5000);
  };
  let timer = clock.setTimeout(sweep, o.sweepMs ?? 5000);
  return {
    budget: line,
    stop: () => {
      stopped = true;
      off();
      clock.clearTimeout(timer);
    },
  };
}
