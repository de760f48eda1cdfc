// Exponential backoff with jitter, as a pure function of the attempt number. The jitter is derived from
// a hash of a seed (release uid, episode, attempt) instead of Math.random(): every evaluation of the same
// release and attempt yields the same delay, so re-examining a release (each watch event, a restart, a
// second replica) never moves its due time, while releases that failed together still spread out.
import { createHash } from 'node:crypto';

export interface BackoffPolicy {
  baseMs: number;
  factor: number;
  maxMs: number;
  /** Extra delay as a fraction of the delay, from 0 to 1. */
  jitter: number;
}

/** A number in [0, 1) determined by seed. */
export function jitterFraction(seed: string): number {
  const h = createHash('sha256').update(seed).digest();
  return h.readUInt32BE(0) / 2 ** 32;
}

/**
 * Delay before retry number attempt+1, given that `attempt` retries were made already:
 * min(max, base * factor^attempt), plus up to `jitter` of it (the maximum is exceeded by the jitter only,
 * so releases waiting at the cap stay spread out).
 */
export function backoffDelay(attempt: number, policy: BackoffPolicy, seed: string): number {
  const exp = policy.baseMs * policy.factor ** Math.max(0, attempt);
  const delay = Math.min(policy.maxMs, Number.isFinite(exp) ? exp : policy.maxMs);
  return Math.round(delay * (1 + policy.jitter * jitterFraction(seed)));
}
