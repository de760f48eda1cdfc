// The way Flux users install add-ons: the real helm-controller installs charts/helmrelease-autopilot from a
// HelmRelease, and what it creates is what `helm template` renders with the same values — the webhook
// registration and the RBAC field by field, every other object by kind and name, and nothing more. (No
// kubelet here, so the Deployment never runs: the release is installed without waiting for it.)

import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { CHART_DIR } from '../../hack/chart.ts';
import { isObject, type JsonObject } from '../../src/util/narrow.ts';
import { helmTemplate } from '../integration/chart-render.ts';
import { Discovery, type K8sObject } from '../integration/manifests-render.ts';
import { publishChart } from './support/artifacts.ts';
import { type Chart, tarball } from './support/chart.ts';
import { type E2eEnv, startE2eEnv } from './support/env.ts';
import { createRelease } from './support/flux.ts';
import { helmControllerVersions } from './support/helm-controller.ts';
import { until } from './support/wait.ts';

const RELEASE = 'helmrelease-autopilot';
const VALUES: JsonObject = {
  image: { repository: 'registry.example/helmrelease-autopilot' },
  tls: { mode: 'self-signed' },
  metrics: { serviceMonitor: { enabled: false } },
};

/** The chart directory packaged as `helm package` lays it out: entries under "<chart name>/". */
function packageChartDir(): Chart {
  const meta = parse(readFileSync(join(CHART_DIR, 'Chart.yaml'), 'utf8')) as {
    name: string;
    version: string;
  };
  const entries = readdirSync(CHART_DIR, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => relative(CHART_DIR, join(e.parentPath, e.name)))
    .sort()
    .map((path): [string, string] => [`${meta.name}/${path}`, readFileSync(join(CHART_DIR, path), 'utf8')]);
  const tgz = gzipSync(tarball(entries));
  return {
    name: meta.name,
    version: meta.version,
    tgz,
    digest: `sha256:${createHash('sha256').update(tgz).digest('hex')}`,
  };
}

/** True when every field `expected` sets is in `actual` with the same value (lists element by element). */
function contains(actual: unknown, expected: unknown): boolean {
  if (Array.isArray(expected)) {
    return (
      Array.isArray(actual) &&
      actual.length === expected.length &&
      expected.every((e, i) => contains(actual[i], e))
    );
  }
  if (isObject(expected))
    return isObject(actual) && Object.entries(expected).every(([k, v]) => contains(actual[k], v));
  return actual === expected;
}

const key = (o: { kind: unknown; metadata: { namespace?: unknown; name: unknown } }) =>
  `${String(o.kind)} ${o.metadata.namespace ? `${String(o.metadata.namespace)}/` : ''}${String(o.metadata.name)}`;

describe('helm-controller installs the chart from a HelmRelease', () => {
  let env: E2eEnv;
  beforeAll(async () => {
    env = await startE2eEnv({ helmControllerVersion: helmControllerVersions().current, operator: false });
  });
  afterAll(async () => {
    await env?.stop();
  });

  it('creates exactly the objects `helm template` renders with the same values: webhook configuration and RBAC field by field', async () => {
    const ns = await env.namespace('autopilot');
    const chart = packageChartDir();
    await publishChart(env.client, env.artifacts, ns, 'autopilot', chart);
    await createRelease(env.client, ns, RELEASE, {
      chart: 'autopilot',
      values: VALUES,
      install: { disableWait: true },
      upgrade: { disableWait: true },
    });
    const installed = await until(
      env,
      ns,
      RELEASE,
      (o) => o.ready && o.history[0]?.status === 'deployed',
      'the chart installed',
      180_000,
    );
    expect(installed.history.map((h) => [h.version, h.chartVersion])).toEqual([[1, chart.version]]);

    const expected = await helmTemplate(VALUES, { release: RELEASE, namespace: ns });
    const discovery = new Discovery(env.client);
    const live = new Map<string, JsonObject>();
    for (const o of expected)
      live.set(key(o), (await env.client.get(await discovery.path(withNamespace(o, ns)))) as JsonObject);

    // The webhook registration and the RBAC: every field the chart renders, as rendered.
    const exact = expected.filter((o) =>
      ['MutatingWebhookConfiguration', 'ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding'].includes(
        o.kind,
      ),
    );
    expect(exact.map(key).sort()).toEqual([
      'ClusterRole helmrelease-autopilot',
      'ClusterRole helmrelease-autopilot-webhook-cabundle',
      'ClusterRoleBinding helmrelease-autopilot',
      'ClusterRoleBinding helmrelease-autopilot-webhook-cabundle',
      'MutatingWebhookConfiguration helmrelease-autopilot',
      // The digest key's Role also grants the self-signed CA Secret's create (one secrets grant, ADR 0006).
      `Role ${ns}/helmrelease-autopilot-digest-key`,
      `Role ${ns}/helmrelease-autopilot-leader-election`,
      `RoleBinding ${ns}/helmrelease-autopilot-digest-key`,
      `RoleBinding ${ns}/helmrelease-autopilot-leader-election`,
    ]);
    for (const o of exact) {
      const { metadata, ...rendered } = o;
      const got = live.get(key(o)) as JsonObject;
      const mismatch = Object.entries(rendered).filter(([k, v]) => !contains(got[k], v));
      expect(
        mismatch.map(([k]) => `${key(o)}: ${k}`),
        JSON.stringify({ rendered, live: got }, null, 2),
      ).toEqual([]);
      const meta = Object.fromEntries(
        Object.entries({ labels: metadata.labels, annotations: metadata.annotations }).filter(([, v]) => v),
      );
      expect(contains(got.metadata, meta), `${key(o)}: labels and annotations`).toBe(true);
    }
    const [mwc] = exact.filter((o) => o.kind === 'MutatingWebhookConfiguration');
    const hooks = (live.get(key(mwc as K8sObject))?.webhooks ?? []) as JsonObject[];
    expect(hooks.map((h) => [h.name, h.failurePolicy, h.sideEffects, h.reinvocationPolicy])).toEqual([
      ['helmreleases.helmrelease-autopilot.dev', 'Ignore', 'None', 'IfNeeded'],
    ]);

    // Nothing more: every object of the release (Helm's instance label) was rendered.
    const rendered = new Set(expected.map(key));
    for (const kind of ['MutatingWebhookConfiguration', 'ClusterRole', 'ClusterRoleBinding']) {
      const o = expected.find((x) => x.kind === kind) as K8sObject;
      const list = (await env.client.request({
        path: (await discovery.path(o)).replace(/\/[^/]+$/, ''),
        query: { labelSelector: `app.kubernetes.io/instance=${RELEASE}` },
      })) as { items: K8sObject[] };
      for (const item of list.items) expect(rendered).toContain(key({ ...item, kind }));
    }
    for (const kind of [
      'Role',
      'RoleBinding',
      'ServiceAccount',
      'Service',
      'Deployment',
      'PodDisruptionBudget',
    ]) {
      const o = expected.find((x) => x.kind === kind) as K8sObject;
      const list = (await env.client.request({
        path: (await discovery.path(withNamespace(o, ns))).replace(/\/[^/]+$/, ''),
        query: { labelSelector: `app.kubernetes.io/instance=${RELEASE}` },
      })) as { items: K8sObject[] };
      for (const item of list.items) expect(rendered).toContain(key({ ...item, kind }));
    }
  });
});

/** helm template leaves metadata.namespace out of some namespaced objects; the release namespace applies. */
function withNamespace(o: K8sObject, ns: string): K8sObject {
  return { ...o, metadata: { ...o.metadata, namespace: o.metadata.namespace ?? ns } };
}
