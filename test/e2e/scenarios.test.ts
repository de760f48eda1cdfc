// The operator with the real helm-controller: config-change triggers, no retry of non-transient
// failures, and the webhook's stamp without extra upgrades. (Timeout retries: timeout-retry.test.ts.)
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseValuesFrom } from '../../src/flux/helmrelease.ts';
import { Annotations, Flux, Labels } from '../../src/names.ts';
import { str } from '../../src/util/narrow.ts';
import { keyBytesOf, valuesDigestOfBytes } from '../../src/values/digest.ts';
import { clusterDigestKeys } from '../support/digest-key.ts';
import { publishChart } from './support/artifacts.ts';
import { configMapChart, gatedChart } from './support/chart.ts';
import { type E2eEnv, OPERATOR_NAMESPACE, RETRY_BASE_DELAY_MS, startE2eEnv } from './support/env.ts';
import { configMapData, createRelease, helmRevisions, type Observed, setConfigMap } from './support/flux.ts';
import { helmControllerVersions } from './support/helm-controller.ts';
import { holds, until } from './support/wait.ts';

const VALUES_FROM = [{ kind: 'ConfigMap', name: 'values' }];
/** Well past the operator's debounce (500 ms) and helm-controller's reaction time. */
const QUIET_MS = 10_000;

/** The digest the webhook and the trigger reconciler record for VALUES_FROM over ConfigMap data in ns. */
async function digestOf(env: E2eEnv, ns: string, data: Record<string, string>): Promise<string> {
  const refs = parseValuesFrom(VALUES_FROM);
  if (!refs.ok) throw new Error(refs.error);
  const keys = await clusterDigestKeys(env.client, OPERATOR_NAMESPACE);
  return valuesDigestOfBytes(keys.current, ns, refs.value, (ref) =>
    keyBytesOf(ref.kind, { data }, ref.valuesKey),
  );
}

const noRetry = (o: Observed) =>
  o.annotations[Annotations.retryAttempts] !== undefined ||
  o.annotations[Flux.resetAt] !== undefined ||
  o.annotations[Flux.requestedAt] !== undefined
    ? `the operator retried: ${JSON.stringify(o.annotations)}`
    : undefined;

describe('the operator with helm-controller', () => {
  let env: E2eEnv;
  beforeAll(async () => {
    env = await startE2eEnv({ helmControllerVersion: helmControllerVersions().current });
  });
  afterAll(async () => {
    await env?.stop();
  });

  it('(a) a consumed key changes: one trigger, one upgrade with the new config digest, the new value in the cluster; an unconsumed key changes: nothing', async () => {
    const ns = await env.namespace('e2e-trigger');
    await publishChart(env.client, env.artifacts, ns, 'chart', configMapChart());
    const v1 = { 'values.yaml': 'greeting: one\n', 'unused.yaml': 'a: 1\n' };
    await setConfigMap(env.client, ns, 'values', v1);
    await createRelease(env.client, ns, 'app', { chart: 'chart', valuesFrom: VALUES_FROM });
    const installed = await until(env, ns, 'app', (o) => o.ready && o.history.length === 1, 'installed');
    expect((await configMapData(env.client, ns, 'app-rendered')).greeting).toBe('one');

    const v2 = { ...v1, 'values.yaml': 'greeting: two\n' };
    await setConfigMap(env.client, ns, 'values', v2);
    const upgraded = await until(
      env,
      ns,
      'app',
      // helm-controller records lastHandledReconcileAt in its last status write of the reconcile, which
      // may come after the write that shows the new revision Ready: wait for both.
      (o) =>
        o.ready &&
        o.history[0]?.version === 2 &&
        o.history[0]?.status === 'deployed' &&
        str(o.status.lastHandledReconcileAt) === o.annotations[Flux.requestedAt],
      'upgraded after the consumed key changed, and the request handled',
    );
    expect(upgraded.history[0]?.configDigest).not.toBe(installed.history[0]?.configDigest);
    expect(upgraded.annotations[Annotations.valuesDigest]).toBe(await digestOf(env, ns, v2));
    const requested = upgraded.annotations[Flux.requestedAt];
    expect(requested).toBeDefined();
    expect(str(upgraded.status.lastHandledReconcileAt)).toBe(requested);
    expect((await configMapData(env.client, ns, 'app-rendered')).greeting).toBe('two');

    await setConfigMap(env.client, ns, 'values', { ...v2, 'unused.yaml': 'a: 2\n' });
    await holds(env, ns, 'app', QUIET_MS, (o) =>
      o.history[0]?.version !== 2 || o.annotations[Flux.requestedAt] !== requested
        ? 'triggered by a key no release consumes'
        : undefined,
    );
    expect(await helmRevisions(env.client, ns, 'app')).toEqual([1, 2]);
  });

  it('(c) a non-transient failure is not retried: bad values (a template error, which helm-controller retries itself) and a stalled apply failure', async () => {
    const ns = await env.namespace('e2e-noretry');
    await publishChart(env.client, env.artifacts, ns, 'chart', configMapChart());
    await publishChart(env.client, env.artifacts, ns, 'gated', gatedChart());
    await setConfigMap(env.client, ns, 'values', { 'values.yaml': 'greeting: ""\n' });
    await createRelease(env.client, ns, 'bad-values', { chart: 'chart', valuesFrom: VALUES_FROM });
    await createRelease(env.client, ns, 'stalled', {
      chart: 'gated',
      values: { gateNamespace: `${ns}-absent` },
    });

    const bad = await until(env, ns, 'bad-values', (o) => o.failures >= 1, 'the install to fail');
    expect(bad.condition('Ready')?.message).toContain('greeting must not be empty');
    const stalled = await until(env, ns, 'stalled', (o) => o.stalled, 'Stalled');
    expect(stalled.condition('Ready')?.message).toContain('not found');

    // Three base delays: a retry, had one been scheduled, would have been written by then.
    const window = Math.max(QUIET_MS, 3 * RETRY_BASE_DELAY_MS);
    await Promise.all([
      holds(env, ns, 'bad-values', window, noRetry),
      holds(
        env,
        ns,
        'stalled',
        window,
        (o) => noRetry(o) ?? (o.stalled && o.failures === 1 ? undefined : 'no longer stalled'),
      ),
    ]);
  });

  it('(d) a HelmRelease created through the API server carries the webhook stamp at once, and the operator causes no upgrade', async () => {
    const ns = await env.namespace('e2e-stamp');
    await publishChart(env.client, env.artifacts, ns, 'chart', configMapChart());
    const data = { 'values.yaml': 'greeting: stamped\n' };
    await setConfigMap(env.client, ns, 'values', data);
    const created = await createRelease(env.client, ns, 'app', { chart: 'chart', valuesFrom: VALUES_FROM });
    const meta = created.metadata as {
      labels?: Record<string, string>;
      annotations?: Record<string, string>;
    };
    expect(meta.labels?.[Labels.managed]).toBe('true');
    expect(meta.annotations?.[Annotations.valuesDigest]).toBe(await digestOf(env, ns, data));

    await until(env, ns, 'app', (o) => o.ready && o.history.length === 1, 'installed');
    const quiet = await holds(env, ns, 'app', QUIET_MS, (o) =>
      o.history.length !== 1 || o.annotations[Flux.requestedAt] !== undefined
        ? 'the operator triggered a release whose values did not change'
        : undefined,
    );
    expect(quiet.annotations[Annotations.valuesDigest]).toBe(await digestOf(env, ns, data));
    expect(quiet.status.lastHandledReconcileAt).toBeUndefined();
    expect(await helmRevisions(env.client, ns, 'app')).toEqual([1]);
  });
});
