// Polling with failure messages that say what helm-controller and the operator were doing.
import { sleep } from '../../../src/util/sleep.ts';
import type { E2eEnv } from './env.ts';
import { describe, type Observed, observe } from './flux.ts';

/** Polls HelmRelease ns/name until pred holds; fails with its state and the processes' logs. */
export async function until(
  env: E2eEnv,
  ns: string,
  name: string,
  pred: (o: Observed) => boolean,
  what: string,
  timeoutMs = 90_000,
): Promise<Observed> {
  const deadline = Date.now() + timeoutMs;
  let last: Observed | undefined;
  let error: unknown;
  for (;;) {
    try {
      last = await observe(env.client, ns, name);
      if (pred(last)) return last;
    } catch (err) {
      error = err;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${ns}/${name}: ${what}\n` +
          `last seen: ${last ? describe(last) : String(error)}\n${env.logs()}`,
      );
    }
    await sleep(250);
  }
}

/**
 * Watches HelmRelease ns/name for `ms` and fails if `bad` ever holds: for facts that are absences
 * (no new revision, no retry). There is no event that says "nothing happened", so a bounded window is
 * the only way; callers size it well above the reaction time they rule out.
 */
export async function holds(
  env: E2eEnv,
  ns: string,
  name: string,
  ms: number,
  bad: (o: Observed) => string | undefined,
): Promise<Observed> {
  const deadline = Date.now() + ms;
  for (;;) {
    const o = await observe(env.client, ns, name);
    const why = bad(o);
    if (why) throw new Error(`${ns}/${name}: ${why}\nstate: ${describe(o)}\n${env.logs()}`);
    if (Date.now() > deadline) return o;
    await sleep(250);
  }
}

let last = 0;
/** A fresh reconcile-request token (RFC3339 with milliseconds, strictly increasing in this process). */
export function token(): string {
  last = Math.max(last + 1, Date.now());
  return new Date(last).toISOString();
}
