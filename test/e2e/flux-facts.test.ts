// What the real helm-controller honours, in which state: the facts DESIGN.md builds on, proved against
// the pinned version and the legacy (Helm v3) one. The operator does not take part (its releases are
// marked ignore, and locally it is not started): every annotation here is written by the test.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Annotations, Flux } from '../../src/names.ts';
import { num, str } from '../../src/util/narrow.ts';
import { publishChart } from './support/artifacts.ts';
import { configMapChart, gatedChart } from './support/chart.ts';
import { type E2eEnv, startE2eEnv } from './support/env.ts';
import { annotate, configMapData, createRelease, helmRevisions, setConfigMap } from './support/flux.ts';
import { helmControllerVersions } from './support/helm-controller.ts';
import { holds, token, until } from './support/wait.ts';

const { current, legacy } = helmControllerVersions();
const versions = process.env.E2E_KUBECONFIG
  ? [process.env.E2E_HELM_CONTROLLER_VERSION ?? 'deployed']
  : [current, legacy];
const ignored = { [Annotations.ignore]: 'true' };
const handled =
  (k: 'lastHandledReconcileAt' | 'lastHandledResetAt' | 'lastHandledForceAt') =>
  (o: { status: Record<string, unknown> }) =>
    str(o.status[k]);
/** Longer than helm-controller needs to react to a request it honours (it answers within a second or two). */
const QUIET_MS = 8000;

describe.each(versions)('helm-controller %s', (version) => {
  let env: E2eEnv;
  beforeAll(async () => {
    env = await startE2eEnv({ helmControllerVersion: version, operator: false });
  });
  afterAll(async () => {
    await env?.stop();
  });

  it('picks up changed valuesFrom data on a new requestedAt alone; fluxcd.io/reconcileAt and other annotations start nothing; requestedAt without a change makes no revision', async () => {
    const ns = await env.namespace('facts-values');
    await publishChart(env.client, env.artifacts, ns, 'chart', configMapChart());
    await setConfigMap(env.client, ns, 'values', { 'values.yaml': 'greeting: one\n' });
    await createRelease(env.client, ns, 'app', {
      chart: 'chart',
      annotations: ignored,
      valuesFrom: [{ kind: 'ConfigMap', name: 'values' }],
    });
    const installed = await until(env, ns, 'app', (o) => o.ready && o.history.length === 1, 'installed');
    const digest1 = installed.history[0]?.configDigest;

    await setConfigMap(env.client, ns, 'values', { 'values.yaml': 'greeting: two\n' });
    await annotate(env.client, ns, 'app', {
      'fluxcd.io/reconcileAt': token(),
      'example.com/unrelated': token(),
    });
    await holds(env, ns, 'app', QUIET_MS, (o) =>
      o.history.length !== 1 || handled('lastHandledReconcileAt')(o)
        ? 'reconciled without a new requestedAt'
        : undefined,
    );

    const t1 = token();
    await annotate(env.client, ns, 'app', { [Flux.requestedAt]: t1 });
    const upgraded = await until(
      env,
      ns,
      'app',
      (o) => handled('lastHandledReconcileAt')(o) === t1 && o.ready && o.history[0]?.version === 2,
      'upgraded to revision 2 after requestedAt',
    );
    expect(upgraded.history[0]?.configDigest).not.toBe(digest1);
    expect(upgraded.status.lastAttemptedConfigDigest).toBe(upgraded.history[0]?.configDigest);
    expect((await configMapData(env.client, ns, 'app-rendered')).greeting).toBe('two');

    // Nothing changed: the request is handled (a positive marker), and no revision is made.
    const t2 = token();
    await annotate(env.client, ns, 'app', { [Flux.requestedAt]: t2 });
    const same = await until(
      env,
      ns,
      'app',
      (o) => handled('lastHandledReconcileAt')(o) === t2,
      'requestedAt handled',
    );
    expect(same.history[0]?.version).toBe(2);
    expect(await helmRevisions(env.client, ns, 'app')).toEqual([1, 2]);
  });

  it('stalled after a failure: requestedAt alone does not try again, resetAt unequal to requestedAt does not either (but is recorded as handled), resetAt equal to requestedAt does', async () => {
    const ns = await env.namespace('facts-reset');
    const gate = `${ns}-gate`;
    await publishChart(env.client, env.artifacts, ns, 'chart', gatedChart());
    await createRelease(env.client, ns, 'app', {
      chart: 'chart',
      annotations: ignored,
      values: { gateNamespace: gate },
    });
    const stalled = await until(env, ns, 'app', (o) => o.stalled, 'Stalled after the failed install');
    expect(stalled.condition('Stalled')?.reason).toBe('RetriesExceeded');
    expect(stalled.condition('Ready')?.reason).toBe('InstallFailed');
    expect(stalled.condition('Ready')?.message).toContain(`namespaces "${gate}" not found`);
    expect(stalled.failures).toBe(1);
    expect(await helmRevisions(env.client, ns, 'app')).toEqual([1]);

    // The cause goes away; spec, chart and values stay the same.
    await env.client.create('/api/v1/namespaces', {
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name: gate },
    });

    const t1 = token();
    await annotate(env.client, ns, 'app', { [Flux.requestedAt]: t1 });
    const afterRequest = await until(
      env,
      ns,
      'app',
      (o) => handled('lastHandledReconcileAt')(o) === t1,
      'requestedAt handled',
    );
    expect(afterRequest.stalled).toBe(true);
    expect(afterRequest.ready).toBe(false);
    expect(afterRequest.failures).toBe(1);
    expect(await helmRevisions(env.client, ns, 'app')).toEqual([1]);

    const [reset, t2] = [token(), token()];
    await annotate(env.client, ns, 'app', { [Flux.resetAt]: reset, [Flux.requestedAt]: t2 });
    const unequal = await until(
      env,
      ns,
      'app',
      (o) => handled('lastHandledReconcileAt')(o) === t2,
      'requestedAt handled',
    );
    expect(handled('lastHandledResetAt')(unequal)).toBe(reset);
    expect(unequal.stalled).toBe(true);
    expect(unequal.failures).toBe(1);
    expect(await helmRevisions(env.client, ns, 'app')).toEqual([1]);

    const t3 = token();
    await annotate(env.client, ns, 'app', { [Flux.resetAt]: t3, [Flux.requestedAt]: t3 });
    const released = await until(
      env,
      ns,
      'app',
      // Also the reconcile's final status write (lastHandledReconcileAt), so every field is from the end.
      (o) => o.ready && o.history[0]?.status === 'deployed' && handled('lastHandledReconcileAt')(o) === t3,
      'released after the reset',
    );
    expect(handled('lastHandledResetAt')(released)).toBe(t3);
    expect(released.stalled).toBe(false);
    expect(released.failures).toBe(0);
    expect((await helmRevisions(env.client, ns, 'app')).length).toBeGreaterThan(1);
  });

  it('does not count a failure that stored no release (a template error): no Stalled, helm-controller retries it by itself', async () => {
    const ns = await env.namespace('facts-render');
    await publishChart(env.client, env.artifacts, ns, 'chart', configMapChart());
    await createRelease(env.client, ns, 'app', {
      chart: 'chart',
      annotations: ignored,
      values: { greeting: '' },
    });
    const failing = await until(
      env,
      ns,
      'app',
      (o) => o.failures >= 2,
      'two failed attempts without any request',
    );
    expect(failing.condition('Ready')?.message).toContain('greeting must not be empty');
    expect(failing.stalled).toBe(false);
    expect(num(failing.status.installFailures) ?? 0).toBe(0);
    expect(await helmRevisions(env.client, ns, 'app')).toEqual([]);
  });

  it('forceAt upgrades an unchanged release only when it equals requestedAt', async () => {
    const ns = await env.namespace('facts-force');
    await publishChart(env.client, env.artifacts, ns, 'chart', configMapChart());
    await createRelease(env.client, ns, 'app', {
      chart: 'chart',
      annotations: ignored,
      values: { greeting: 'x' },
    });
    await until(env, ns, 'app', (o) => o.ready && o.history.length === 1, 'installed');

    const [force, t1] = [token(), token()];
    await annotate(env.client, ns, 'app', { [Flux.forceAt]: force, [Flux.requestedAt]: t1 });
    const unequal = await until(
      env,
      ns,
      'app',
      (o) => handled('lastHandledReconcileAt')(o) === t1,
      'requestedAt handled',
    );
    expect(handled('lastHandledForceAt')(unequal)).toBe(force);
    expect(unequal.history.map((h) => h.version)).toEqual([1]);

    const t2 = token();
    await annotate(env.client, ns, 'app', { [Flux.forceAt]: t2, [Flux.requestedAt]: t2 });
    const forced = await until(
      env,
      ns,
      'app',
      (o) => o.ready && o.history[0]?.version === 2 && handled('lastHandledReconcileAt')(o) === t2,
      'forced upgrade',
    );
    expect(handled('lastHandledForceAt')(forced)).toBe(t2);
    expect(forced.history[0]?.configDigest).toBe(forced.history[1]?.configDigest);
    expect(await helmRevisions(env.client, ns, 'app')).toEqual([1, 2]);
  });

  it(`reacts by itself to a ConfigMap labelled ${Flux.watchLabel}=Enabled (v1.4+)`, async () => {
    const ns = await env.namespace('facts-watch');
    await publishChart(env.client, env.artifacts, ns, 'chart', configMapChart());
    await env.client.create(`/api/v1/namespaces/${ns}/configmaps`, {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'values', labels: { [Flux.watchLabel]: 'Enabled' } },
      data: { 'values.yaml': 'greeting: one\n' },
    });
    await createRelease(env.client, ns, 'app', {
      chart: 'chart',
      annotations: ignored,
      valuesFrom: [{ kind: 'ConfigMap', name: 'values' }],
    });
    await until(env, ns, 'app', (o) => o.ready && o.history.length === 1, 'installed');
    await setConfigMap(env.client, ns, 'values', { 'values.yaml': 'greeting: two\n' });
    const upgraded = await until(
      env,
      ns,
      'app',
      (o) => o.ready && o.history[0]?.version === 2,
      'upgraded by itself',
    );
    expect(handled('lastHandledReconcileAt')(upgraded)).toBeUndefined();
    expect((await configMapData(env.client, ns, 'app-rendered')).greeting).toBe('two');
  });
});
