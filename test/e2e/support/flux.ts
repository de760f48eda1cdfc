// HelmReleases for the e2e specs, and reading back what the real helm-controller wrote.
import type { KubeClient } from '../../../src/kube/client.ts';
import { ConfigMaps, collectionPath, HelmReleases, objectPath } from '../../../src/kube/resources.ts';
import { Flux } from '../../../src/names.ts';
import { isObject, type Json, type JsonObject, num, str } from '../../../src/util/narrow.ts';
import { helmChartPath } from './artifacts.ts';

export interface ReleaseSpec {
  chart: string;
  valuesFrom?: Json[];
  values?: JsonObject;
  /** spec.timeout (install/upgrade wait), e.g. "10s". */
  timeout?: string;
  annotations?: Record<string, string>;
  install?: JsonObject;
  upgrade?: JsonObject;
}

export function helmRelease(ns: string, name: string, s: ReleaseSpec): JsonObject {
  return {
    apiVersion: `${Flux.group}/${Flux.version}`,
    kind: Flux.kind,
    metadata: { name, namespace: ns, ...(s.annotations ? { annotations: s.annotations } : {}) },
    spec: {
      // Long: every reconcile in these specs must come from a spec change or an annotation.
      interval: '1h',
      chartRef: { kind: 'HelmChart', name: s.chart, namespace: ns },
      ...(s.valuesFrom ? { valuesFrom: s.valuesFrom } : {}),
      ...(s.values ? { values: s.values } : {}),
      ...(s.timeout ? { timeout: s.timeout } : {}),
      ...(s.install ? { install: s.install } : {}),
      ...(s.upgrade ? { upgrade: s.upgrade } : {}),
    },
  };
}

export async function createRelease(
  client: KubeClient,
  ns: string,
  name: string,
  s: ReleaseSpec,
): Promise<JsonObject> {
  return (await client.create(collectionPath(HelmReleases, ns), helmRelease(ns, name, s))) as JsonObject;
}

export interface Snapshot {
  version: number;
  status: string;
  configDigest: string;
  chartVersion: string;
}

/** What the tests read from a HelmRelease. */
export interface Observed {
  raw: JsonObject;
  generation: number;
  annotations: Record<string, string>;
  labels: Record<string, string>;
  status: JsonObject;
  /** status.history, newest first (as helm-controller keeps it). */
  history: Snapshot[];
  failures: number;
  condition(
    type: string,
  ): { status: string; reason: string; message: string; lastTransitionTime: string } | undefined;
  ready: boolean;
  stalled: boolean;
}

export async function observe(client: KubeClient, ns: string, name: string): Promise<Observed> {
  const raw = (await client.get(objectPath(HelmReleases, ns, name))) as JsonObject;
  const meta = isObject(raw.metadata) ? raw.metadata : {};
  const status = isObject(raw.status) ? raw.status : {};
  const conditions = Array.isArray(status.conditions) ? status.conditions.filter(isObject) : [];
  const condition = (type: string) => {
    const c = conditions.find((x) => x.type === type);
    return c
      ? {
          status: str(c.status) ?? '',
          reason: str(c.reason) ?? '',
          message: str(c.message) ?? '',
          lastTransitionTime: str(c.lastTransitionTime) ?? '',
        }
      : undefined;
  };
  const history = (Array.isArray(status.history) ? status.history.filter(isObject) : []).map((h) => ({
    version: num(h.version) ?? 0,
    status: str(h.status) ?? '',
    configDigest: str(h.configDigest) ?? '',
    chartVersion: str(h.chartVersion) ?? '',
  }));
  return {
    raw,
    generation: num(meta.generation) ?? 0,
    annotations: isObject(meta.annotations) ? (meta.annotations as Record<string, string>) : {},
    labels: isObject(meta.labels) ? (meta.labels as Record<string, string>) : {},
    status,
    history,
    failures: num(status.failures) ?? 0,
    condition,
    ready: condition('Ready')?.status === 'True',
    stalled: condition('Stalled')?.status === 'True',
  };
}

/** One line for failure messages: conditions and counters as helm-controller left them. */
export function describe(o: Observed): string {
  const conds = ['Ready', 'Released', 'Stalled', 'Reconciling']
    .map((t) => {
      const c = o.condition(t);
      return c ? `${t}=${c.status}/${c.reason}: ${c.message.slice(0, 200)}` : undefined;
    })
    .filter(Boolean);
  const handled = ['lastHandledReconcileAt', 'lastHandledResetAt', 'lastHandledForceAt']
    .map((k) => `${k}=${str(o.status[k]) ?? '-'}`)
    .join(' ');
  return `history=${o.history.map((h) => `v${h.version}:${h.status}`).join(',')} failures=${o.failures} ${handled} ${conds.join(' | ')}`;
}

export async function setConfigMap(
  client: KubeClient,
  ns: string,
  name: string,
  data: Record<string, string>,
): Promise<void> {
  try {
    await client.create(collectionPath(ConfigMaps, ns), {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name },
      data,
    });
  } catch (err) {
    if (!(err instanceof Error && /already exists|409/.test(err.message))) throw err;
    await client.mergePatch(objectPath(ConfigMaps, ns, name), { data });
  }
}

export async function configMapData(
  client: KubeClient,
  ns: string,
  name: string,
): Promise<Record<string, string>> {
  const cm = (await client.get(objectPath(ConfigMaps, ns, name))) as JsonObject;
  return isObject(cm.data) ? (cm.data as Record<string, string>) : {};
}

/** Helm's release records (storage Secrets) of a release: one per revision, whoever wrote it. */
export async function helmRevisions(client: KubeClient, ns: string, release: string): Promise<number[]> {
  const list = (await client.request({
    path: `/api/v1/namespaces/${ns}/secrets`,
    query: { labelSelector: `owner=helm,name=${release}` },
  })) as { items?: { metadata: { labels?: Record<string, string> } }[] };
  return (list.items ?? []).map((s) => Number(s.metadata.labels?.version ?? 0)).sort((a, b) => a - b);
}

export async function annotate(
  client: KubeClient,
  ns: string,
  name: string,
  annotations: Record<string, string | null>,
): Promise<void> {
  await client.mergePatch(objectPath(HelmReleases, ns, name), { metadata: { annotations } });
}

export { helmChartPath };
