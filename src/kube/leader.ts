// Leader election on a coordination.k8s.io/v1 Lease, with client-go's rules: a follower takes over only
// when the record has not changed for a whole lease duration *as observed by its own clock* (no trust in
// other machines' clocks); the leader renews every retry period and gives up leadership — stopping its
// reconcilers at once — when it could not renew within the renew deadline; on shutdown it releases the
// Lease so a follower takes over without waiting. Every write carries the resourceVersion it read, so two
// candidates cannot both win.

import type { Logger } from '../log.ts';
import { errorMessage } from '../util/errors.ts';
import { isObject, num, str } from '../util/narrow.ts';
import { sleep } from '../util/sleep.ts';
import { ApiError, isNotFound, type KubeClient } from './client.ts';
import { collectionPath, Leases, objectPath } from './resources.ts';

export interface LeaderElectorOptions {
  client: KubeClient;
  namespace: string;
  name: string;
  identity: string;
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
  log: Logger;
  /** Called when this process becomes leader. */
  onStartedLeading: () => void | Promise<void>;
  /** Called when leadership ends (lost, or released on stop); must stop the reconcilers. */
  onStoppedLeading: () => void | Promise<void>;
  now?: () => number;
}

type Outcome = 'held' | 'other' | 'failed';

interface LeaseRecord {
  holder: string;
  durationSeconds: number;
  acquireTime?: string;
  renewTime?: string;
  transitions: number;
  resourceVersion: string;
}

function parseLease(raw: unknown): LeaseRecord {
  const o = isObject(raw) ? raw : {};
  const spec = isObject(o.spec) ? o.spec : {};
  const meta = isObject(o.metadata) ? o.metadata : {};
  const acquireTime = str(spec.acquireTime);
  const renewTime = str(spec.renewTime);
  return {
    holder: str(spec.holderIdentity) ?? '',
    durationSeconds: num(spec.leaseDurationSeconds) ?? 0,
    transitions: num(spec.leaseTransitions) ?? 0,
    resourceVersion: str(meta.resourceVersion) ?? '',
    ...(acquireTime ? { acquireTime } : {}),
    ...(renewTime ? { renewTime } : {}),
  };
}

/** MicroTime as the API server writes it. */
function microTime(ms: number): string {
  return new Date(ms).toISOString().replace('Z', '000Z');
}

export class LeaderElector {
  private readonly o: LeaderElectorOptions;
  private readonly now: () => number;
  private leading = false;
  private stopped = false;
  private loop: Promise<void> | undefined;
  private readonly abort = new AbortController();
  /** The last record seen, and when (our clock) it last changed. */
  private observed: { record: LeaseRecord; at: number } | undefined;
  private lastRenew = 0;

  constructor(options: LeaderElectorOptions) {
    this.o = options;
    this.now = options.now ?? Date.now;
  }

  isLeader(): boolean {
    return this.leading;
  }

  start(): void {
    this.loop ??= this.run();
  }

  /** Stops campaigning; a leader stops its work first, then releases the Lease. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.abort.abort();
    await this.loop;
    if (this.leading) {
      await this.stepDown('shutdown');
      await this.release();
    }
  }

  private get path(): string {
    return objectPath(Leases, this.o.namespace, this.o.name);
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      let outcome: Outcome = 'failed';
      try {
        outcome = await this.tryAcquireOrRenew();
      } catch (err) {
        this.o.log.warn({ err: errorMessage(err), lease: this.o.name }, 'lease request failed');
      }
      if (this.stopped) break;
      if (outcome === 'held') {
        this.lastRenew = this.now();
        if (!this.leading) {
          this.leading = true;
          this.o.log.info({ lease: this.o.name, identity: this.o.identity }, 'became leader');
          await this.o.onStartedLeading();
        }
      } else if (outcome === 'other') {
        await this.stepDown('another process holds the lease');
      } else if (this.leading && this.now() - this.lastRenew >= this.o.renewDeadlineMs) {
        await this.stepDown('could not renew the lease within the renew deadline');
      }
      await sleep(this.o.retryPeriodMs, this.abort.signal);
    }
  }

  private async stepDown(why: string): Promise<void> {
    if (!this.leading) return;
    this.leading = false;
    const fields = { lease: this.o.name, identity: this.o.identity, why };
    if (why === 'shutdown') this.o.log.info(fields, 'stopped leading');
    else this.o.log.warn(fields, 'stopped leading');
    await this.o.onStoppedLeading();
  }

  /** One round: whether this process holds the Lease afterwards, another one does, or the round failed. */
  private async tryAcquireOrRenew(): Promise<Outcome> {
    const now = this.now();
    const durationSeconds = Math.ceil(this.o.leaseDurationMs / 1000);
    // A leader's round ends by its renew deadline (client-go's rule): however slow the API server, it
    // steps down before a follower may take over, never after.
    const deadline = this.leading ? this.lastRenew + this.o.renewDeadlineMs : now + this.o.renewDeadlineMs;
    const remaining = () => deadline - this.now();
    if (remaining() <= 0) return 'failed';
    const timeoutMs = Math.max(100, Math.min(remaining(), Math.floor(this.o.renewDeadlineMs / 2)));
    let current: LeaseRecord;
    try {
      current = parseLease(
        await this.o.client.request({ path: this.path, signal: this.abort.signal, timeoutMs }),
      );
    } catch (err) {
      if (!isNotFound(err)) throw err;
      await this.o.client.create(collectionPath(Leases, this.o.namespace), {
        apiVersion: 'coordination.k8s.io/v1',
        kind: 'Lease',
        metadata: { name: this.o.name, namespace: this.o.namespace },
        spec: {
          holderIdentity: this.o.identity,
          leaseDurationSeconds: durationSeconds,
          acquireTime: microTime(now),
          renewTime: microTime(now),
          leaseTransitions: 0,
        },
      });
      return 'held';
    }
    const prev = this.observed?.record;
    if (
      !prev ||
      prev.holder !== current.holder ||
      prev.renewTime !== current.renewTime ||
      prev.resourceVersion !== current.resourceVersion
    ) {
      this.observed = { record: current, at: now };
    }
    const mine = current.holder === this.o.identity;
    const expired =
      current.holder === '' ||
      (this.observed as { at: number }).at + Math.max(current.durationSeconds, 1) * 1000 <= now;
    if (!mine && !expired) return 'other';
    const spec = {
      holderIdentity: this.o.identity,
      leaseDurationSeconds: durationSeconds,
      acquireTime: mine ? (current.acquireTime ?? microTime(now)) : microTime(now),
      renewTime: microTime(now),
      leaseTransitions: mine ? current.transitions : current.transitions + 1,
    };
    if (remaining() <= 0) return 'failed';
    try {
      await this.put(current.resourceVersion, spec, {
        signal: this.abort.signal,
        timeoutMs: Math.max(100, remaining()),
      });
    } catch (err) {
      // Someone else wrote the Lease since we read it: they won this round.
      if (err instanceof ApiError && err.status === 409) return 'other';
      throw err;
    }
    return 'held';
  }

  /** Replaces the Lease, on the condition that it is still at the resourceVersion we read. */
  private async put(
    resourceVersion: string,
    spec: Record<string, unknown>,
    o: { signal?: AbortSignal; timeoutMs?: number } = {},
  ): Promise<void> {
    await this.o.client.request({
      method: 'PUT',
      path: this.path,
      body: {
        apiVersion: 'coordination.k8s.io/v1',
        kind: 'Lease',
        metadata: { name: this.o.name, namespace: this.o.namespace, resourceVersion },
        spec,
      },
      ...o,
    });
  }

  /** Gives the Lease up so a follower need not wait for it to expire. */
  private async release(): Promise<void> {
    try {
      const current = parseLease(await this.o.client.get(this.path));
      if (current.holder !== this.o.identity) return;
      await this.put(current.resourceVersion, {
        holderIdentity: '',
        leaseDurationSeconds: 1,
        acquireTime: current.acquireTime,
        renewTime: microTime(this.now()),
        leaseTransitions: current.transitions,
      });
      this.o.log.info({ lease: this.o.name }, 'released the lease');
    } catch (err) {
      this.o.log.warn({ err: errorMessage(err) }, 'could not release the lease');
    }
  }
}
