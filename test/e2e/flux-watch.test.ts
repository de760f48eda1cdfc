// Sources Flux watches itself, and one upgrade per change set, counted in Helm revisions (Helm's release
// Secrets) against helm-controller v1.6.4 with the operator at its default debounce (2 s):
//
//   helm-controller                         operator                   labelled ConfigMap   plain ConfigMap
//   native watching (Flux >= 2.7 default)   --flux-watches-configs     Flux only            operator
//   native watching                         default (false)            Flux + operator      operator
//   --feature-gates=DisableConfigWatchers   default (false)            operator             operator
//
// Every change gives exactly one new revision in every combination. With native watching, one apply that
// changes the chart and a consumed ConfigMap gives one revision when the ConfigMap is ours to watch, and two
// when it is labelled for Flux's own watch (helm-controller #1379: old chart with new values, then the new
// chart). No helm-controller < v1.4 is on the Go module proxy: DisableConfigWatchers (v1.4.4+) removes the
// watches, which is the pre-v1.4 code path for this. Local mode only (the flags are the spec's).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FLAGS, formatDuration } from '../../src/config.ts';
import { HelmReleases, objectPath } from '../../src/kube/resources.ts';
import { Annotations, Flux } from '../../src/names.ts';
import { sleep } from '../../src/util/sleep.ts';
import { publishChart } from './support/artifacts.ts';
import { configMapChart } from './support/chart.ts';
import { type E2eEnv, startE2eEnv } from './support/env.ts';
import { configMapData, createRelease, helmRevisions, observe, describe as show } from './support/flux.ts';
import { helmControllerVersions } from './support/helm-controller.ts';
import { holds, until } from './support/wait.ts';

const VERSION = helmControllerVersions().current;
/** The operator's default debounce (E2E_OPERATOR_TUNING shortens it; these specs are about the default). */
const DEFAULT_DEBOUNCE = `--debounce=${formatDuration(FLAGS.debounce.default)}`;
/** Longer than the debounce (2 s) plus helm-controller's reaction: a second revision would show by then. */
const QUIET_MS = 12_000;
/** Between the ConfigMap and the HelmRelease write of one apply (kustomize-controller applies ConfigMaps first, one object after another). */
const APPLY_GAP_MS = 1000;

interface Combination {
  name: string;
  helmController: string[];
  operator: string[];
  /** Whether the operator requests a reconcile for a change of the labelled ConfigMap. */
  operatorTriggersLabelled: boolean;
  /** Also run the change-set comparison here. */
  changeSets?: boolean;
}

const combinations: Combination[] = [
  {
    name: 'native watching, operator --flux-watches-configs',
    helmController: [],
    operator: [DEFAULT_DEBOUNCE, '--flux-watches-configs=true'],
    operatorTriggersLabelled: false,
    changeSets: true,
  },
  {
    name: 'native watching, operator default',
    helmController: [],
    operator: [DEFAULT_DEBOUNCE],
    operatorTriggersLabelled: true,
  },
  {
    name: 'DisableConfigWatchers, operator default',
    helmController: ['--feature-gates=DisableConfigWatchers=true'],
    operator: [DEFAULT_DEBOUNCE],
    operatorTriggersLabelled: true,
  },
];

const report: string[] = [];
afterAll(() => {
  process.stdout.write(`Helm revisions per change (helm-controller ${VERSION}):\n  ${report.join('\n  ')}\n`);
});

describe.runIf(!process.env.E2E_KUBECONFIG).each(combinations)('helm-controller $name', (c) => {
  let env: E2eEnv;
  beforeAll(async () => {
    env = await startE2eEnv({
      helmControllerVersion: VERSION,
      helmControllerArgs: c.helmController,
      operatorArgs: c.operator,
    });
  });
  afterAll(async () => {
    await env?.stop();
  });

  async function setData(ns: string, name: string, greeting: string, watched: boolean) {
    const body = {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name, ...(watched ? { labels: { [Flux.watchLabel]: 'Enabled' } } : {}) },
      data: { 'values.yaml': `greeting: ${greeting}\n` },
    };
    try {
      await env.client.create(`/api/v1/namespaces/${ns}/configmaps`, body);
    } catch {
      await env.client.mergePatch(`/api/v1/namespaces/${ns}/configmaps/${name}`, { data: body.data });
    }
  }

  /** A release of the ConfigMap chart consuming ConfigMap `<name>-values`, installed. */
  async function installed(ns: string, name: string, watched: boolean) {
    await setData(ns, `${name}-values`, 'one', watched);
    await createRelease(env.client, ns, name, {
      chart: 'chart',
      valuesFrom: [{ kind: 'ConfigMap', name: `${name}-values` }],
    });
    await until(env, ns, name, (o) => o.ready && o.history.length === 1, `${name} installed`);
    expect(await helmRevisions(env.client, ns, name)).toEqual([1]);
  }

  /** Waits for the revisions to settle (no new one for QUIET_MS) and returns them. */
  async function settled(ns: string, name: string, atLeast: number): Promise<number[]> {
    await until(
      env,
      ns,
      name,
      (o) => o.ready && (o.history[0]?.version ?? 0) >= atLeast,
      `${name} at revision ${atLeast}`,
    );
    let revisions = await helmRevisions(env.client, ns, name);
    for (;;) {
      await sleep(QUIET_MS);
      const now = await helmRevisions(env.client, ns, name);
      if (now.length === revisions.length) return now;
      revisions = now;
    }
  }

  it.each([
    ['labelled for Flux', true],
    ['not labelled', false],
  ])('a change of a consumed ConfigMap %s: exactly one new revision', async (label, watched) => {
    const ns = await env.namespace('e2e-watch');
    await publishChart(env.client, env.artifacts, ns, 'chart', configMapChart());
    await installed(ns, 'app', watched);
    await setData(ns, 'app-values', 'two', watched);
    const revisions = await settled(ns, 'app', 2);
    const o = await observe(env.client, ns, 'app');
    report.push(
      `${c.name}, ConfigMap ${label}: one change -> ${revisions.length - 1} new revision(s); requestedAt from the operator: ${o.annotations[Flux.requestedAt] ? 'yes' : 'no'}`,
    );
    expect(revisions, show(o)).toEqual([1, 2]);
    expect((await configMapData(env.client, ns, 'app-rendered')).greeting).toBe('two');
    const triggered = !watched || c.operatorTriggersLabelled;
    expect(o.annotations[Flux.requestedAt] !== undefined, show(o)).toBe(triggered);
    // The digest is current either way (recorded without a request when Flux watches the source).
    const after = await until(
      env,
      ns,
      'app',
      (x) => x.annotations[Annotations.valuesDigest] !== undefined,
      'digest',
    );
    await holds(env, ns, 'app', 3000, (x) =>
      x.annotations[Annotations.valuesDigest] !== after.annotations[Annotations.valuesDigest]
        ? 'digest moved'
        : undefined,
    );
  });

  // The change-set comparison runs once, in the first combination (native watching, the operator told so).
  if (!c.changeSets) return;
  it.each([
    ['not labelled (ours to watch): one new revision', false, 1],
    ['labelled for Flux’s own watch: two new revisions (helm-controller #1379)', true, 2],
  ])(
    'one apply that changes the chart version and a consumed ConfigMap, %s',
    async (label, watched, expected) => {
      const ns = await env.namespace('e2e-changeset');
      await publishChart(env.client, env.artifacts, ns, 'chart', configMapChart('0.1.0'));
      await publishChart(env.client, env.artifacts, ns, 'chart-v2', configMapChart('0.2.0'));
      await installed(ns, 'app', watched);
      // One apply: the ConfigMap first, then the HelmRelease (a new chart).
      await setData(ns, 'app-values', 'two', watched);
      await sleep(APPLY_GAP_MS);
      await env.client.mergePatch(objectPath(HelmReleases, ns, 'app'), {
        spec: { chartRef: { kind: 'HelmChart', name: 'chart-v2', namespace: ns } },
      });
      const revisions = await settled(ns, 'app', 2);
      const o = await observe(env.client, ns, 'app');
      const steps = o.history
        .slice()
        .reverse()
        .map((h) => `v${h.version} ${h.chartVersion}`)
        .join(', ');
      report.push(
        `${c.name}, chart 0.1.0 -> 0.2.0 and a ConfigMap change in one apply (${APPLY_GAP_MS} ms apart), ConfigMap ${watched ? 'labelled for Flux' : 'not labelled'}: ${revisions.length - 1} new revision(s) [${steps}]`,
      );
      expect(revisions.length - 1, `${label}: ${show(o)}`).toBe(expected);
      expect(o.history[0]?.chartVersion).toBe('0.2.0');
      expect((await configMapData(env.client, ns, 'app-rendered')).greeting).toBe('two');
    },
  );
});
