// Never break an upgrade in flight: helm-controller v1.6.4 with the CancelHealthCheckOnNewRevision gate, which
// cancels a running health check on any new reconcile request (a bare new requestedAt is enough). The
// Deployment chart's upgrade waits until the test plays the deployment controller, so "slow" is in the
// test's hands.
// - control: a requestedAt written by hand during that wait cancels it (the gate is on, the hazard is real);
// - the operator: a values change during the wait is held (no requestedAt until helm-controller is done), the
//   upgrade completes, and the new values are applied right after it.
// Local mode only: the gate is a helm-controller flag the spec sets (a deployed helm-controller has its own).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KubeClient } from '../../src/kube/client.ts';
import { Annotations, Flux } from '../../src/names.ts';
import { array, isObject, num, str } from '../../src/util/narrow.ts';
import { sleep } from '../../src/util/sleep.ts';
import { publishChart } from './support/artifacts.ts';
import { deploymentChart } from './support/chart.ts';
import { type E2eEnv, startE2eEnv } from './support/env.ts';
import {
  annotate,
  createRelease,
  helmRevisions,
  type Observed,
  observe,
  setConfigMap,
  describe as show,
} from './support/flux.ts';
import { helmControllerVersions } from './support/helm-controller.ts';
import { token, until } from './support/wait.ts';
import { readinessGate } from './support/workloads.ts';

const GATE = '--feature-gates=CancelHealthCheckOnNewRevision=true';
const RUNNING_UPGRADE = /^Running 'upgrade' action/;

async function deployment(client: KubeClient, ns: string, name: string) {
  const d = await client.get(`/apis/apps/v1/namespaces/${ns}/deployments/${name}`);
  const meta = isObject(d) && isObject(d.metadata) ? d.metadata : {};
  const spec = isObject(d) && isObject(d.spec) ? d.spec : {};
  const template = isObject(spec.template) && isObject(spec.template.spec) ? spec.template.spec : {};
  const container = array(template.containers).find(isObject);
  return { generation: num(meta.generation) ?? 0, image: str(container?.image) ?? '' };
}

/** The Events helm-controller recorded for a release (core/v1; it has no events receiver here). */
async function fluxEvents(
  client: KubeClient,
  ns: string,
  name: string,
): Promise<{ reason: string; message: string }[]> {
  const list = await client.get(`/api/v1/namespaces/${ns}/events`);
  return array(isObject(list) ? list.items : undefined).flatMap((e) =>
    isObject(e) && isObject(e.involvedObject) && e.involvedObject.name === name
      ? [{ reason: str(e.reason) ?? '', message: str(e.message) ?? '' }]
      : [],
  );
}

const upgrading = (o: Observed) =>
  o.condition('Ready')?.status === 'Unknown' && RUNNING_UPGRADE.test(o.condition('Ready')?.message ?? '');

describe.runIf(!process.env.E2E_KUBECONFIG)(
  `helm-controller ${helmControllerVersions().current} ${GATE}`,
  () => {
    let env: E2eEnv;
    beforeAll(async () => {
      env = await startE2eEnv({
        helmControllerVersion: helmControllerVersions().current,
        helmControllerArgs: [GATE],
      });
    });
    afterAll(async () => {
      await env?.stop();
    });

    /** Installs release `name` from the Deployment chart and makes it ready; returns the gate. */
    async function installed(ns: string, name: string, annotations: Record<string, string> = {}) {
      const gate = readinessGate(env.mode);
      await createRelease(env.client, ns, name, {
        chart: 'chart',
        values: gate.values,
        valuesFrom: [{ kind: 'ConfigMap', name: `${name}-values` }],
        timeout: '3m',
        annotations,
      });
      await deploymentAt(ns, name, 1);
      await gate.open(env.client, ns, name);
      await until(env, ns, name, (o) => o.ready && o.history[0]?.status === 'deployed', 'installed');
      return gate;
    }

    /** Waits until helm-controller applied Deployment ns/name at `generation` (or later). */
    async function deploymentAt(ns: string, name: string, generation: number): Promise<void> {
      const deadline = Date.now() + 60_000;
      for (;;) {
        const d = await deployment(env.client, ns, name).catch(() => undefined);
        if (d && d.generation >= generation) return;
        if (Date.now() > deadline)
          throw new Error(`Deployment ${ns}/${name} never reached generation ${generation}\n${env.logs()}`);
        await sleep(200);
      }
    }

    /** Waits until helm-controller applied the upgrade (new Deployment generation) and waits for it. */
    async function waitingUpgrade(ns: string, name: string, generation: number): Promise<Observed> {
      const o = await until(env, ns, name, upgrading, "Ready=Unknown Running 'upgrade'");
      await deploymentAt(ns, name, generation);
      return o;
    }

    it('control: a requestedAt written during the upgrade’s health check cancels it (the gate is on)', async () => {
      const ns = await env.namespace('e2e-cancel');
      await publishChart(env.client, env.artifacts, ns, 'chart', deploymentChart());
      await setConfigMap(env.client, ns, 'app-values', {
        'values.yaml': 'image: registry.k8s.io/pause:3.10\n',
      });
      await installed(ns, 'app', { [Annotations.ignore]: 'true' });
      await setConfigMap(env.client, ns, 'app-values', {
        'values.yaml': 'image: registry.k8s.io/pause:3.9\n',
      });
      const t1 = token();
      await annotate(env.client, ns, 'app', { [Flux.requestedAt]: t1 });
      await waitingUpgrade(ns, 'app', 2);
      await annotate(env.client, ns, 'app', { [Flux.requestedAt]: token() });
      const deadline = Date.now() + 60_000;
      for (;;) {
        const events = await fluxEvents(env.client, ns, 'app');
        if (events.some((e) => e.reason === 'HealthCheckCanceled')) break;
        if (Date.now() > deadline)
          throw new Error(`no HealthCheckCanceled event: ${JSON.stringify(events)}\n${env.logs()}`);
        await sleep(250);
      }
      const after = await until(
        env,
        ns,
        'app',
        (o) => o.failures > 0,
        'the cancelled upgrade counted as a failure',
      );
      process.stdout.write(`control (requestedAt mid-upgrade, gate on): ${show(after)}\n`);
      expect(after.failures).toBeGreaterThan(0);
    });

    it('a values change during a slow upgrade does not abort it; the new values are applied right after', async () => {
      const ns = await env.namespace('e2e-inflight');
      await publishChart(env.client, env.artifacts, ns, 'chart', deploymentChart());
      await setConfigMap(env.client, ns, 'app-values', {
        'values.yaml': 'image: registry.k8s.io/pause:3.10\n',
      });
      const gate = await installed(ns, 'app');
      const timeline: string[] = [];
      const t0 = Date.now();
      const mark = (what: string) => timeline.push(`+${((Date.now() - t0) / 1000).toFixed(1)}s ${what}`);

      // Change 1: the operator triggers; helm-controller upgrades and waits for the Deployment.
      await setConfigMap(env.client, ns, 'app-values', {
        'values.yaml': 'image: registry.k8s.io/pause:3.9\n',
      });
      mark('ConfigMap change 1 (pause:3.9)');
      const first = await waitingUpgrade(ns, 'app', 2);
      const t1 = first.annotations[Flux.requestedAt];
      expect(t1).toBeDefined();
      mark(`upgrade 1 running (requestedAt ${t1}), Deployment generation 2`);

      // Change 2 while upgrade 1 waits: held. Nothing new is requested for as long as the upgrade runs.
      await setConfigMap(env.client, ns, 'app-values', {
        'values.yaml': 'image: registry.k8s.io/pause:3.8\n',
      });
      mark('ConfigMap change 2 (pause:3.8) during the health check');
      const heldFor = 8000;
      const deadline = Date.now() + heldFor;
      while (Date.now() < deadline) {
        const o = await observe(env.client, ns, 'app');
        expect(o.annotations[Flux.requestedAt], `a trigger was sent during the upgrade: ${show(o)}`).toBe(t1);
        expect(upgrading(o), `the upgrade stopped waiting: ${show(o)}`).toBe(true);
        await sleep(250);
      }
      mark(`no requestedAt for ${heldFor / 1000}s while upgrade 1 waited`);

      // The Deployment becomes ready: upgrade 1 completes (not cancelled), then the held change is sent.
      await gate.open(env.client, ns, 'app');
      mark('Deployment generation 2 ready');
      const second = await until(
        env,
        ns,
        'app',
        (o) => o.annotations[Flux.requestedAt] !== t1,
        'the held trigger sent after upgrade 1',
      );
      mark(`held trigger sent (requestedAt ${second.annotations[Flux.requestedAt]})`);
      const v2 = second.history.find((h) => h.version === 2);
      expect(v2?.status === 'deployed' || v2?.status === 'superseded', show(second)).toBe(true);
      await waitingUpgrade(ns, 'app', 3);
      mark('upgrade 2 running, Deployment generation 3');
      await gate.open(env.client, ns, 'app');
      const done = await until(
        env,
        ns,
        'app',
        (o) => o.ready && o.history[0]?.version === 3 && o.history[0]?.status === 'deployed',
        'upgrade 2 deployed',
      );
      mark('upgrade 2 deployed');
      process.stdout.write(`in-flight timeline:\n  ${timeline.join('\n  ')}\n`);

      expect((await deployment(env.client, ns, 'app')).image).toBe('registry.k8s.io/pause:3.8');
      expect(await helmRevisions(env.client, ns, 'app')).toEqual([1, 2, 3]);
      expect(done.failures).toBe(0);
      expect(
        (await fluxEvents(env.client, ns, 'app')).filter((e) => e.reason === 'HealthCheckCanceled'),
      ).toEqual([]);
    });
  },
);
