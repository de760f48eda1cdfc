// (b) A real timeout: a Deployment that cannot become ready, `wait` on and a 10 s timeout. helm-controller
// stalls after the first failure (default retries 0); the operator retries with backoff (requestedAt =
// forceAt: one attempt each, Flux's failure counters keep counting); once the test makes the Deployment
// ready, the next attempt succeeds and the retry state is cleared. Run on the pinned helm-controller (Helm v4, kstatus: "timeout waiting for: [...]") and the
// legacy one (Helm v3 waiter: "context deadline exceeded").
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Annotations, Flux } from '../../src/names.ts';
import { parseTime } from '../../src/retry/state.ts';
import { num, str } from '../../src/util/narrow.ts';
import { publishChart } from './support/artifacts.ts';
import { deploymentChart } from './support/chart.ts';
import { type E2eEnv, RETRY_BASE_DELAY_MS, RETRY_FACTOR, startE2eEnv } from './support/env.ts';
import { createRelease, type Observed, describe as show } from './support/flux.ts';
import { helmControllerVersions } from './support/helm-controller.ts';
import { until } from './support/wait.ts';
import { readinessGate } from './support/workloads.ts';

const { current, legacy } = helmControllerVersions();
const versions = process.env.E2E_KUBECONFIG
  ? [process.env.E2E_HELM_CONTROLLER_VERSION ?? 'deployed']
  : [current, legacy];

/** The timeout wording each helm-controller writes; any of them for an unknown version. */
function timeoutWording(version: string): RegExp {
  // Helm v4's kstatus poller; or, when the deadline falls while the poller waits for client-go's rate
  // limiter (seen on upgrades), client-go's "client rate limiter Wait returned an error: rate: Wait(n=1)
  // would exceed context deadline".
  if (version === current)
    return /timeout waiting for: \[Deployment\/[^\]]*status: 'InProgress'\]|rate: Wait\(n=\d+\) would exceed context deadline/;
  if (version === legacy) return /context deadline exceeded/;
  return /timeout waiting for|context deadline exceeded|timed out waiting for the condition/;
}

const attempts = (o: Observed) => Number(o.annotations[Annotations.retryAttempts] ?? 0);
const readyFailedAt = (o: Observed) => parseTime(o.condition('Ready')?.lastTransitionTime ?? '') ?? 0;

describe.each(versions)('helm-controller %s: a timeout is retried until it succeeds', (version) => {
  let env: E2eEnv;
  beforeAll(async () => {
    env = await startE2eEnv({ helmControllerVersion: version });
  });
  afterAll(async () => {
    await env?.stop();
  });

  it('(b) times out for real, stalls, is retried with growing delays, succeeds once the Deployment is ready, and the budget resets', async () => {
    const ns = await env.namespace('e2e-timeout');
    await publishChart(env.client, env.artifacts, ns, 'chart', deploymentChart());
    const gate = readinessGate(env.mode);
    await createRelease(env.client, ns, 'app', { chart: 'chart', values: gate.values, timeout: '10s' });

    const first = await until(
      env,
      ns,
      'app',
      (o) => o.stalled,
      'Stalled after the install timed out',
      120_000,
    );
    expect(first.condition('Stalled')?.reason).toBe('RetriesExceeded');
    expect(first.condition('Ready')?.reason).toBe('InstallFailed');
    expect(first.condition('Ready')?.message).toMatch(timeoutWording(version));

    // Two retries that time out again: each one is honoured by helm-controller (lastHandledForceAt is
    // our token), is one more attempt on its counters, and comes after a delay that grows (no jitter in
    // the e2e tuning).
    let failed = first;
    const wordings = [`install (${first.condition('Ready')?.reason}): ${first.condition('Ready')?.message}`];
    for (const n of [1, 2]) {
      const retried = await until(
        env,
        ns,
        'app',
        (o) => attempts(o) === n,
        `retry ${n} requested (every wording in Ready's message must be among the operator's transient patterns)`,
        120_000,
      );
      const tokenStr = retried.annotations[Annotations.retryLastAttempt] as string;
      expect(retried.annotations[Flux.requestedAt]).toBe(tokenStr);
      expect(retried.annotations[Flux.forceAt]).toBe(tokenStr);
      expect(retried.annotations[Flux.resetAt]).toBeUndefined();
      const delay = (parseTime(tokenStr) as number) - readyFailedAt(failed);
      // lastTransitionTime has whole seconds: allow one second of rounding.
      expect(delay).toBeGreaterThanOrEqual(RETRY_BASE_DELAY_MS * RETRY_FACTOR ** (n - 1) - 1000);
      failed = await until(
        env,
        ns,
        'app',
        // lastHandledReconcileAt is written by the reconcile's final status patch, so the attempt is over
        // (Stalled alone may still be the previous failure's while the retry runs).
        (o) =>
          str(o.status.lastHandledReconcileAt) === tokenStr &&
          str(o.status.lastHandledForceAt) === tokenStr &&
          o.stalled &&
          o.condition('Reconciling') === undefined,
        `retry ${n} honoured and timed out again`,
        120_000,
      );
      expect(failed.condition('Ready')?.message, show(failed)).toMatch(timeoutWording(version));
      wordings.push(
        `retry ${n} (${failed.condition('Ready')?.reason}): ${failed.condition('Ready')?.message}`,
      );
      expect(attempts(failed)).toBe(n);
      // Flux counted every attempt of the episode: its own and each retry of ours (nothing reset them).
      expect((num(failed.status.installFailures) ?? 0) + (num(failed.status.upgradeFailures) ?? 0)).toBe(
        n + 1,
      );
    }

    // The wordings go to the test output: the README records them per version.
    process.stdout.write(`helm-controller ${version} timeout wordings:\n  ${wordings.join('\n  ')}\n`);
    await gate.open(env.client, ns, 'app');
    const released = await until(
      env,
      ns,
      'app',
      (o) => o.ready && o.annotations[Annotations.retryAttempts] === undefined,
      'released by retry 3, retry state cleared',
      120_000,
    );
    expect(released.history[0]?.status).toBe('deployed');
    expect(released.stalled).toBe(false);
    // Our retries never reset Flux's counters (ADR 0011), and under RemediateOnFailure a success does not
    // clear them: they still count the episode's failed attempts, the install and two retries.
    expect(released.failures).toBe(3);
    for (const k of [Annotations.retryLastAttempt, Annotations.retryEpisode, Annotations.retryExhausted])
      expect(released.annotations[k]).toBeUndefined();
  });
});
