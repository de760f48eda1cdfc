// Attempts per failure episode, for each strategy, on the timeout chart (a Deployment that never becomes
// ready, a 5 s timeout) with the real helm-controller and the operator (--retry-max-attempts 4: M = 4):
// - RemediateOnFailure with install.remediation.retries 1 (N = 1): Flux makes N+1 = 2 attempts and stalls; the
//   operator adds one attempt per retry (requestedAt = forceAt) until Flux's counters reach M+1 = 5 failed
//   attempts — max(N+1, M+1), not (N+1)·(M+1) = 10 as with a resetAt per retry — then stops for good;
// - RetryOnFailure: Flux retries by itself every retryInterval, without a limit; the operator adds none and says
//   so once (a FluxRetries event).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Annotations, Flux } from '../../src/names.ts';
import { array, isObject, num, str } from '../../src/util/narrow.ts';
import { publishChart } from './support/artifacts.ts';
import { deploymentChart } from './support/chart.ts';
import { type E2eEnv, startE2eEnv } from './support/env.ts';
import { createRelease, type Observed, describe as show } from './support/flux.ts';
import { helmControllerVersions } from './support/helm-controller.ts';
import { holds, until } from './support/wait.ts';
import { readinessGate } from './support/workloads.ts';

const MAX_ATTEMPTS = 4; // E2E_OPERATOR_TUNING's --retry-max-attempts
const failed = (o: Observed) => (num(o.status.installFailures) ?? 0) + (num(o.status.upgradeFailures) ?? 0);

/** Our Events (events.k8s.io/v1) about a release. */
async function ourEvents(env: E2eEnv, ns: string, name: string): Promise<{ reason: string; note: string }[]> {
  const list = await env.client.get(`/apis/events.k8s.io/v1/namespaces/${ns}/events`);
  return array(isObject(list) ? list.items : undefined).flatMap((e) =>
    isObject(e) && isObject(e.regarding) && e.regarding.name === name
      ? [{ reason: str(e.reason) ?? '', note: str(e.note) ?? '' }]
      : [],
  );
}

describe(`attempts per failure episode (helm-controller ${helmControllerVersions().current})`, () => {
  let env: E2eEnv;
  const report: string[] = [];
  beforeAll(async () => {
    env = await startE2eEnv({ helmControllerVersion: helmControllerVersions().current });
  });
  afterAll(async () => {
    process.stdout.write(`attempts per episode:\n  ${report.join('\n  ')}\n`);
    await env?.stop();
  });

  it(`RemediateOnFailure, remediation.retries 1, --retry-max-attempts ${MAX_ATTEMPTS}: max(N+1, M+1) = 5 failed attempts, then nothing`, async () => {
    const ns = await env.namespace('e2e-bound');
    await publishChart(env.client, env.artifacts, ns, 'chart', deploymentChart());
    await createRelease(env.client, ns, 'app', {
      chart: 'chart',
      values: readinessGate(env.mode).values,
      timeout: '5s',
      install: { remediation: { retries: 1 } },
    });
    const spent = await until(
      env,
      ns,
      'app',
      (o) => o.annotations[Annotations.retryExhausted] !== undefined,
      'the retry budget spent',
      240_000,
    );
    expect(failed(spent), show(spent)).toBe(MAX_ATTEMPTS + 1);
    expect(spent.annotations[Annotations.retryAttempts]).toBe('3');
    expect(spent.annotations[Flux.resetAt]).toBeUndefined();
    // Quiet: no attempt of Flux's or ours any more.
    const quiet = await holds(env, ns, 'app', 20_000, (o) =>
      failed(o) !== MAX_ATTEMPTS + 1 ||
      o.annotations[Flux.requestedAt] !== spent.annotations[Flux.requestedAt]
        ? `another attempt: ${show(o)}`
        : undefined,
    );
    expect(quiet.stalled).toBe(true);
    const exhausted = (await ourEvents(env, ns, 'app')).filter((e) => e.reason === 'RetriesExhausted');
    expect(exhausted).toHaveLength(1);
    report.push(
      `RemediateOnFailure, N = 1, M = ${MAX_ATTEMPTS}: ${failed(quiet)} failed attempts (installFailures ${num(quiet.status.installFailures)}, upgradeFailures ${num(quiet.status.upgradeFailures)}; 2 of Flux's, 3 retries of ours), then none; "${exhausted[0]?.note}"`,
    );
  });

  it('RetryOnFailure: Flux retries every retryInterval by itself; the operator writes nothing and says so once', async () => {
    const ns = await env.namespace('e2e-rof');
    await publishChart(env.client, env.artifacts, ns, 'chart', deploymentChart());
    const strategy = { name: 'RetryOnFailure', retryInterval: '5s' };
    await createRelease(env.client, ns, 'app', {
      chart: 'chart',
      values: readinessGate(env.mode).values,
      timeout: '5s',
      install: { strategy },
      upgrade: { strategy },
    });
    // Between its attempts Flux reports ProgressingWithRetry; during one (a moment under load) Progressing:
    // wait for the state between attempts rather than sample one moment.
    await until(
      env,
      ns,
      'app',
      (o) => failed(o) >= 3 && o.condition('Reconciling')?.reason === 'ProgressingWithRetry',
      'three failed attempts of Flux, retrying by itself',
      180_000,
    );
    const later = await holds(env, ns, 'app', 15_000, (o) =>
      o.annotations[Flux.requestedAt] !== undefined || o.annotations[Annotations.retryAttempts] !== undefined
        ? `the operator wrote: ${JSON.stringify(o.annotations)}`
        : undefined,
    );
    const told = (await ourEvents(env, ns, 'app')).filter((e) => e.reason === 'FluxRetries');
    expect(told, JSON.stringify(told)).toHaveLength(1);
    report.push(
      `RetryOnFailure (retryInterval 5s): ${failed(later)} failed attempts by Flux alone and counting, none of ours; "${told[0]?.note}"`,
    );
  });
});
