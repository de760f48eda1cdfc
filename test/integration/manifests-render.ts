// Renders manifests/ with the kustomize that hack/build-kustomize.sh builds (or $KUSTOMIZE), and applies
// rendered objects to a real API server with server-side apply, for real or as a dry run.
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { promisify } from 'node:util';
import { parseAllDocuments } from 'yaml';
import { HACK_DIR, moduleDir, readVersions } from '../../hack/controlplane.ts';
import type { KubeClient } from '../../src/kube/client.ts';
import { isObject, type JsonObject, str } from '../../src/util/narrow.ts';

const run = promisify(execFile);
export const MANIFESTS_DIR = resolve(HACK_DIR, '..', 'manifests');
export const FIELD_MANAGER = 'helmrelease-autopilot-tests';

/** A rendered object; apiVersion, kind and metadata.name are checked when rendering. */
export interface K8sObject extends JsonObject {
  apiVersion: string;
  kind: string;
  metadata: JsonObject & { name: string; namespace?: string };
}

let kustomizePath: Promise<string> | undefined;

/** The kustomize binary: built from the Go module proxy on first use, cached outside the repository. */
export function kustomize(): Promise<string> {
  kustomizePath ??= run('bash', [join(HACK_DIR, 'build-kustomize.sh')], { maxBuffer: 16 << 20 }).then(
    ({ stdout }) => stdout.trim().split('\n').pop() as string,
  );
  return kustomizePath;
}

/** `kustomize build` of a directory under manifests/ (e.g. "overlays/cert-manager"), optionally with components. */
export async function render(dir: string, components: string[] = []): Promise<K8sObject[]> {
  const bin = await kustomize();
  if (components.length === 0)
    return parseObjects((await run(bin, ['build', join(MANIFESTS_DIR, dir)])).stdout);
  // An overlay of the overlay that adds the components: the way a user would enable them.
  const tmp = mkdtempSync(join(tmpdir(), 'autopilot-kustomize-'));
  try {
    writeFileSync(
      join(tmp, 'kustomization.yaml'),
      JSON.stringify({
        apiVersion: 'kustomize.config.k8s.io/v1beta1',
        kind: 'Kustomization',
        // kustomize takes relative paths only.
        resources: [relative(tmp, join(MANIFESTS_DIR, dir))],
        components: components.map((c) => relative(tmp, join(MANIFESTS_DIR, c))),
      }),
    );
    return parseObjects((await run(bin, ['build', tmp])).stdout);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** Parses rendered YAML the way kubectl, Helm and the API server do (YAML 1.1: `defaultMode: 0440` is octal). */
export function parseObjects(yamlText: string): K8sObject[] {
  return parseAllDocuments(yamlText, { version: '1.1' })
    .map((d) => d.toJS() as unknown)
    .filter((o): o is K8sObject => {
      if (o === null) return false;
      const meta = isObject(o) && isObject(o.metadata) ? o.metadata : undefined;
      if (!isObject(o) || !str(o.apiVersion) || !str(o.kind) || !str(meta?.name))
        throw new Error(`rendered document is not a Kubernetes object: ${JSON.stringify(o).slice(0, 200)}`);
      return true;
    });
}

/** The one object of a kind (and name, when given); throws when there is not exactly one. */
export function find(objects: K8sObject[], kind: string, name?: string): K8sObject {
  const found = objects.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
  if (found.length !== 1)
    throw new Error(`expected one ${kind}${name ? ` ${name}` : ''}, found ${found.length}`);
  return found[0] as K8sObject;
}

interface ApiResource {
  plural: string;
  namespaced: boolean;
}

/** REST path of an object, from the API server's discovery (so CRDs resolve like built-in kinds). */
export class Discovery {
  private readonly groups = new Map<string, Promise<Map<string, ApiResource>>>();
  private readonly client: KubeClient;
  constructor(client: KubeClient) {
    this.client = client;
  }

  async path(o: K8sObject): Promise<string> {
    const r = (await this.resources(o.apiVersion)).get(o.kind);
    if (!r) throw new Error(`the API server serves no ${o.kind} in ${o.apiVersion}`);
    const root = o.apiVersion.includes('/') ? `/apis/${o.apiVersion}` : `/api/${o.apiVersion}`;
    const ns = r.namespaced ? `/namespaces/${o.metadata.namespace ?? 'default'}` : '';
    return `${root}${ns}/${r.plural}/${o.metadata.name}`;
  }

  private resources(apiVersion: string): Promise<Map<string, ApiResource>> {
    let p = this.groups.get(apiVersion);
    if (!p) {
      const path = apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
      p = this.client.get(path).then((list) => {
        const byKind = new Map<string, ApiResource>();
        for (const r of isObject(list) && Array.isArray(list.resources) ? list.resources : []) {
          if (!isObject(r) || str(r.name)?.includes('/')) continue; // subresources
          byKind.set(str(r.kind) ?? '', { plural: str(r.name) ?? '', namespaced: r.namespaced === true });
        }
        return byKind;
      });
      p.catch(() => this.groups.delete(apiVersion));
      this.groups.set(apiVersion, p);
    }
    return p;
  }
}

/** Server-side apply of one object (dryRun: the API server validates and admits it, and stores nothing). */
export async function apply(
  client: KubeClient,
  discovery: Discovery,
  o: K8sObject,
  { dryRun = false } = {},
): Promise<unknown> {
  return client.request({
    method: 'PATCH',
    path: await discovery.path(o),
    // JSON is YAML: the apply content type takes either.
    contentType: 'application/apply-patch+yaml',
    body: o,
    query: { fieldManager: FIELD_MANAGER, force: true, ...(dryRun ? { dryRun: 'All' } : {}) },
  });
}

/** CRDs of cert-manager (deploy/crds) and prometheus-operator's ServiceMonitor and PrometheusRule, from the Go module cache. */
export async function thirdPartyCRDs(): Promise<string[]> {
  const v = readVersions();
  const cm = join(
    await moduleDir(`github.com/cert-manager/cert-manager@${v.CERT_MANAGER_VERSION}`),
    'deploy/crds',
  );
  const po = join(
    await moduleDir(`github.com/prometheus-operator/prometheus-operator@${v.PROMETHEUS_OPERATOR_VERSION}`),
    'example/prometheus-operator-crd',
  );
  return [
    ...readdirSync(cm)
      .filter((f) => f.endsWith('.yaml'))
      .map((f) => join(cm, f)),
    join(po, 'monitoring.coreos.com_servicemonitors.yaml'),
    join(po, 'monitoring.coreos.com_prometheusrules.yaml'),
  ];
}
