// Every overlay of manifests/, rendered with kustomize, is accepted by a real API server (server-side apply,
// dryRun=All: validation, defaulting, CEL compilation of matchConditions, admission), and the rendered
// objects agree with each other and with the code's flags. A dedicated control plane, because
// cert-manager's and prometheus-operator's CRDs (read from their Go modules) are installed into it.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ControlPlane, HACK_DIR, installCRDs, startControlPlane } from '../../hack/controlplane.ts';
import { parseConfig } from '../../src/config.ts';
import { ApiError, KubeClient } from '../../src/kube/client.ts';
import { array, isObject, type JsonObject, str } from '../../src/util/narrow.ts';
import { loadKubeConfig } from '../support/cluster.ts';
import { apply, Discovery, find, type K8sObject, render, thirdPartyCRDs } from './manifests-render.ts';

const INSTALLS: { name: string; dir: string; components?: string[] }[] = [
  { name: 'base', dir: 'base' },
  { name: 'cert-manager', dir: 'overlays/cert-manager' },
  { name: 'self-signed', dir: 'overlays/self-signed' },
  {
    name: 'cert-manager + ServiceMonitor',
    dir: 'overlays/cert-manager',
    components: ['components/servicemonitor'],
  },
  {
    name: 'self-signed + ServiceMonitor',
    dir: 'overlays/self-signed',
    components: ['components/servicemonitor'],
  },
  {
    name: 'cert-manager + NetworkPolicy',
    dir: 'overlays/cert-manager',
    components: ['components/networkpolicy'],
  },
  {
    name: 'self-signed + NetworkPolicy + ServiceMonitor',
    dir: 'overlays/self-signed',
    components: ['components/networkpolicy', 'components/servicemonitor'],
  },
  {
    name: 'cert-manager + PrometheusRule + dashboard',
    dir: 'overlays/cert-manager',
    components: ['components/prometheusrule', 'components/dashboard'],
  },
  {
    name: 'self-signed + every component',
    dir: 'overlays/self-signed',
    components: [
      'components/servicemonitor',
      'components/prometheusrule',
      'components/dashboard',
      'components/networkpolicy',
    ],
  },
];

const obj = (v: unknown): JsonObject => (isObject(v) ? v : {});
const list = (v: unknown): JsonObject[] => array(v).filter(isObject);

function podSpec(objects: K8sObject[]): JsonObject {
  return obj(obj(obj(find(objects, 'Deployment').spec).template).spec);
}
function container(objects: K8sObject[]): JsonObject {
  return list(podSpec(objects).containers)[0] as JsonObject;
}
function portNumber(c: JsonObject, name: unknown): number | undefined {
  return list(c.ports).find((p) => p.name === name)?.containerPort as number | undefined;
}
/** The Deployment's flags as the process parses them (same parser, same environment fallbacks). */
function configOf(objects: K8sObject[]) {
  const args = array(container(objects).args).map(String);
  return parseConfig(args, { AUTOPILOT_NAMESPACE: find(objects, 'Namespace').metadata.name });
}

describe('manifests/ on a real API server', () => {
  let cp: ControlPlane;
  let admin: KubeClient;
  let discovery: Discovery;
  const rendered = new Map<string, K8sObject[]>();
  let shards: K8sObject[] = [];

  beforeAll(async () => {
    const [plane] = await Promise.all([
      startControlPlane(),
      ...INSTALLS.map(async (i) => rendered.set(i.name, await render(i.dir, i.components))),
      render('examples/shards').then((o) => {
        shards = o;
      }),
    ]);
    cp = plane;
    await installCRDs(cp.kubeconfigPath, await thirdPartyCRDs());
    admin = await KubeClient.create(loadKubeConfig(cp.kubeconfigPath));
    discovery = new Discovery(admin);
    // Namespaced objects can only be dry-run into a namespace that exists: create it for real, from the render.
    await apply(admin, discovery, find(rendered.get('base') ?? [], 'Namespace'));
  });
  afterAll(async () => {
    admin?.close();
    await cp?.stop();
  });

  it.each(INSTALLS)('$name: every object applies with server-side dry-run', async ({ name }) => {
    const objects = rendered.get(name) ?? [];
    expect(objects.length).toBeGreaterThan(10);
    for (const o of objects) {
      const answer = await apply(admin, discovery, o, { dryRun: true }).catch((err: unknown) => {
        throw new Error(
          `${o.kind} ${o.metadata.name}: ${err instanceof ApiError ? err.message : String(err)}`,
        );
      });
      expect(obj(answer).kind).toBe(o.kind);
      expect(obj(obj(answer).metadata).name).toBe(o.metadata.name);
    }
    if (name.includes('ServiceMonitor') || name.includes('every component'))
      expect(() => find(objects, 'ServiceMonitor')).not.toThrow();
    if (name.includes('PrometheusRule') || name.includes('every component'))
      expect(() => find(objects, 'PrometheusRule')).not.toThrow();
    if (name.includes('NetworkPolicy') || name.includes('every component'))
      expect(() => find(objects, 'NetworkPolicy')).not.toThrow();
  });

  it('examples/shards: applies; each instance its own selector and granted Lease; pods of one Deployment only; one webhook', async () => {
    for (const o of shards) await apply(admin, discovery, o, { dryRun: true });
    const ns = find(shards, 'Namespace').metadata.name;
    const deployments = shards.filter((o) => o.kind === 'Deployment');
    const instances = deployments.map((d) => {
      const template = obj(obj(d.spec).template);
      const c = list(obj(template.spec).containers)[0] as JsonObject;
      const config = parseConfig(array(c.args).map(String), { AUTOPILOT_NAMESPACE: ns });
      return {
        name: d.metadata.name,
        selector: obj(obj(obj(d.spec).selector).matchLabels),
        labels: obj(obj(template.metadata).labels),
        config,
      };
    });
    expect(
      instances.map((i) => [
        i.name,
        i.config['watch-label-selector'],
        i.config['lease-name'],
        i.config.webhook,
      ]),
    ).toEqual([
      ['helmrelease-autopilot', '!sharding.fluxcd.io/key', 'helmrelease-autopilot', true],
      [
        'helmrelease-autopilot-shard1',
        'sharding.fluxcd.io/key in (shard1)',
        'helmrelease-autopilot-shard1',
        false,
      ],
      [
        'helmrelease-autopilot-shard2',
        'sharding.fluxcd.io/key in (shard2)',
        'helmrelease-autopilot-shard2',
        false,
      ],
    ]);
    const matches = (selector: JsonObject, labels: JsonObject) =>
      Object.entries(selector).every(([k, v]) => labels[k] === v);
    for (const a of instances) for (const b of instances) expect(matches(a.selector, b.labels)).toBe(a === b);
    // The leader-election Role grants every instance's Lease.
    const role = find(shards, 'Role', 'helmrelease-autopilot-leader-election');
    const names = list(role.rules).flatMap((r) => array(r.resourceNames).map(String));
    expect(names.sort()).toEqual(instances.map((i) => i.config['lease-name']).sort());
    // The webhook Service reaches only pods that serve it; the metrics Service every pod.
    const webhookSelector = obj(obj(find(shards, 'Service', 'helmrelease-autopilot-webhook').spec).selector);
    const metricsSelector = obj(obj(find(shards, 'Service', 'helmrelease-autopilot-metrics').spec).selector);
    for (const i of instances) {
      expect(matches(webhookSelector, i.labels)).toBe(i.config.webhook);
      expect(matches(metricsSelector, i.labels)).toBe(true);
    }
    expect(shards.filter((o) => o.kind === 'MutatingWebhookConfiguration')).toHaveLength(1);
  });

  it.each(INSTALLS.filter((i) => i.name.includes('NetworkPolicy')))(
    '$name: the NetworkPolicy selects the operator pods and admits only the webhook and metrics ports',
    ({ name }) => {
      const objects = rendered.get(name) ?? [];
      const policy = obj(find(objects, 'NetworkPolicy').spec);
      expect(find(objects, 'NetworkPolicy').metadata.namespace).toBe(
        find(objects, 'Namespace').metadata.name,
      );
      const podLabels = obj(obj(obj(find(objects, 'Deployment').spec).template).metadata).labels;
      expect(podLabels).toMatchObject(obj(obj(policy.podSelector).matchLabels));
      expect(policy.policyTypes).toEqual(['Ingress']);
      const c = container(objects);
      const config = configOf(objects);
      const admitted = list(policy.ingress)
        .flatMap((rule) => list(rule.ports))
        .map((p) => (typeof p.port === 'number' ? p.port : portNumber(c, p.port)))
        .sort((a, b) => Number(a) - Number(b));
      expect(admitted).toEqual([config['metrics-port'], config['webhook-port']].sort((a, b) => a - b));
      // Health probes come from the kubelet on the pod's own node, which NetworkPolicy does not filter.
      expect(admitted).not.toContain(config['health-port']);
    },
  );

  it.each(INSTALLS)(
    '$name: the pod passes Pod Security "restricted" (dry-run create of the template)',
    async ({ name }) => {
      const objects = rendered.get(name) ?? [];
      const ns = find(objects, 'Namespace');
      expect(obj(ns.metadata).labels).toMatchObject({ 'pod-security.kubernetes.io/enforce': 'restricted' });
      const template = obj(obj(find(objects, 'Deployment').spec).template);
      const pod = await admin.create(
        `/api/v1/namespaces/${ns.metadata.name}/pods`,
        {
          apiVersion: 'v1',
          kind: 'Pod',
          metadata: { ...obj(template.metadata), name: 'pod-security-check' },
          spec: template.spec,
        },
        { dryRun: 'All', fieldManager: 'helmrelease-autopilot-tests' },
      );
      expect(obj(pod).kind).toBe('Pod');
    },
  );

  it.each(INSTALLS)('$name: flags parse, and ports, probes and Services agree with them', ({ name }) => {
    const objects = rendered.get(name) ?? [];
    const c = container(objects);
    const config = configOf(objects);
    expect(portNumber(c, 'webhook')).toBe(config['webhook-port']);
    expect(portNumber(c, 'health')).toBe(config['health-port']);
    expect(portNumber(c, 'metrics')).toBe(config['metrics-port']);
    for (const probe of ['livenessProbe', 'readinessProbe', 'startupProbe']) {
      expect(portNumber(c, obj(obj(c[probe]).httpGet).port)).toBe(config['health-port']);
    }
    expect(obj(obj(c.readinessProbe).httpGet).path).toBe('/readyz');
    expect(obj(obj(c.livenessProbe).httpGet).path).toBe('/healthz');
    const webhookSvc = find(objects, 'Service', 'helmrelease-autopilot-webhook');
    const https = list(obj(webhookSvc.spec).ports)[0] as JsonObject;
    expect(https.port).toBe(443);
    expect(portNumber(c, https.targetPort)).toBe(config['webhook-port']);
    const metricsSvc = find(objects, 'Service', 'helmrelease-autopilot-metrics');
    expect(portNumber(c, (list(obj(metricsSvc.spec).ports)[0] as JsonObject).targetPort)).toBe(
      config['metrics-port'],
    );
    // Both Services and the PDB select the Deployment's pods.
    const podLabels = obj(obj(obj(find(objects, 'Deployment').spec).template).metadata).labels;
    for (const selector of [
      obj(webhookSvc.spec).selector,
      obj(metricsSvc.spec).selector,
      obj(obj(find(objects, 'PodDisruptionBudget').spec).selector).matchLabels,
    ])
      expect(podLabels).toMatchObject(obj(selector));
  });

  it.each(INSTALLS)(
    '$name: non-root, read-only root filesystem, writable only where the code writes',
    ({ name }) => {
      const objects = rendered.get(name) ?? [];
      const deploy = find(objects, 'Deployment');
      expect(obj(deploy.spec).replicas).toBe(2);
      const spec = podSpec(objects);
      const c = container(objects);
      expect(obj(spec.securityContext)).toMatchObject({
        runAsNonRoot: true,
        seccompProfile: { type: 'RuntimeDefault' },
      });
      expect(obj(c.securityContext)).toMatchObject({
        readOnlyRootFilesystem: true,
        allowPrivilegeEscalation: false,
        capabilities: { drop: ['ALL'] },
      });
      // The image runs as the numeric user the pod asks for (runAsNonRoot needs a numeric USER).
      const dockerUser = /^USER\s+(\d+)(?::(\d+))?\s*$/m.exec(
        readFileSync(resolve(HACK_DIR, '..', 'Dockerfile'), 'utf8'),
      );
      expect(Number(dockerUser?.[1])).toBe(obj(spec.securityContext).runAsUser);
      // The only writable mount is an emptyDir holding /tmp; the cert dir lies below a mount.
      const mounts = list(c.volumeMounts);
      const volumes = list(spec.volumes);
      const writable = mounts.filter((m) => m.readOnly !== true);
      expect(writable.map((m) => m.mountPath)).toEqual(['/tmp']);
      expect(isObject(volumes.find((v) => v.name === writable[0]?.name)?.emptyDir)).toBe(true);
      const certDir = configOf(objects)['cert-dir'];
      const certMount = mounts
        .filter((m) => certDir === m.mountPath || certDir.startsWith(`${String(m.mountPath)}/`))
        .sort((a, b) => String(b.mountPath).length - String(a.mountPath).length)[0];
      expect(certMount).toBeDefined();
      // The Lease's namespace comes from the pod's own namespace.
      const env = list(c.env).find((e) => e.name === 'AUTOPILOT_NAMESPACE');
      expect(obj(obj(env?.valueFrom).fieldRef).fieldPath).toBe('metadata.namespace');
      expect(spec.serviceAccountName).toBe(find(objects, 'ServiceAccount').metadata.name);
    },
  );

  it.each(INSTALLS)(
    '$name: the webhook registration never blocks admission and skips the operator itself',
    ({ name }) => {
      const objects = rendered.get(name) ?? [];
      const hooks = list(find(objects, 'MutatingWebhookConfiguration').webhooks);
      expect(hooks).toHaveLength(1);
      const hook = hooks[0] as JsonObject;
      expect(hook).toMatchObject({
        failurePolicy: 'Ignore',
        sideEffects: 'None',
        admissionReviewVersions: ['v1'],
        reinvocationPolicy: 'IfNeeded',
      });
      expect(hook.timeoutSeconds).toBeLessThanOrEqual(5);
      expect(list(hook.rules)).toEqual([
        expect.objectContaining({
          apiGroups: ['helm.toolkit.fluxcd.io'],
          apiVersions: expect.arrayContaining(['v2', 'v2beta2', 'v2beta1']),
          operations: ['CREATE', 'UPDATE'],
          resources: ['helmreleases'],
        }),
      ]);
      const ns = find(objects, 'Namespace').metadata.name;
      const service = obj(obj(hook.clientConfig).service);
      expect(service).toMatchObject({
        namespace: ns,
        name: 'helmrelease-autopilot-webhook',
        port: 443,
        path: '/mutate',
      });
      expect(() => find(objects, 'Service', str(service.name))).not.toThrow();
      const sa = find(objects, 'ServiceAccount');
      const conditions = list(hook.matchConditions).map((m) => String(m.expression));
      expect(conditions).toContain(
        `request.userInfo.username != 'system:serviceaccount:${sa.metadata.namespace}:${sa.metadata.name}'`,
      );
      expect(list(obj(hook.namespaceSelector).matchExpressions)).toContainEqual({
        key: 'kubernetes.io/metadata.name',
        operator: 'NotIn',
        values: expect.arrayContaining(['kube-system', ns]),
      });
    },
  );

  it('the dashboard component: one ConfigMap in the operator namespace, labelled for Grafana, holding dashboard.json', () => {
    const objects = rendered.get('cert-manager + PrometheusRule + dashboard') ?? [];
    const cm = find(objects, 'ConfigMap', 'helmrelease-autopilot-dashboard');
    expect(cm.metadata.namespace).toBe(find(objects, 'Namespace').metadata.name);
    expect(obj(cm.metadata.labels)).toMatchObject({ grafana_dashboard: '1' });
    const data = obj(cm.data);
    expect(Object.keys(data)).toEqual(['helmrelease-autopilot.json']);
    expect(JSON.parse(String(data['helmrelease-autopilot.json']))).toEqual(
      JSON.parse(readFileSync(resolve(HACK_DIR, '../manifests/components/dashboard/dashboard.json'), 'utf8')),
    );
  });

  it('cert-manager: Issuer -> CA Certificate -> CA Issuer -> serving Certificate, mounted at --cert-dir, CA injected', () => {
    const objects = rendered.get('cert-manager') ?? [];
    const ns = find(objects, 'Namespace').metadata.name;
    const hookConfig = find(objects, 'MutatingWebhookConfiguration');
    const inject = str(obj(hookConfig.metadata.annotations)['cert-manager.io/inject-ca-from']) ?? '';
    const [certNs, certName] = inject.split('/');
    expect(certNs).toBe(ns);
    const serving = obj(find(objects, 'Certificate', certName).spec);
    const svc = find(objects, 'Service', 'helmrelease-autopilot-webhook').metadata.name;
    expect(serving.dnsNames).toContain(`${svc}.${ns}.svc`);
    const caIssuer = obj(find(objects, 'Issuer', str(obj(serving.issuerRef).name)).spec);
    const caCert = objects.find(
      (o) => o.kind === 'Certificate' && obj(o.spec).secretName === obj(caIssuer.ca).secretName,
    );
    expect(obj(caCert?.spec).isCA).toBe(true);
    expect(
      isObject(obj(find(objects, 'Issuer', str(obj(obj(caCert?.spec).issuerRef).name)).spec).selfSigned),
    ).toBe(true);
    // The serving Secret is what the operator reads from --cert-dir.
    const spec = podSpec(objects);
    const mount = list(container(objects).volumeMounts).find(
      (m) => m.mountPath === configOf(objects)['cert-dir'],
    );
    const volume = list(spec.volumes).find((v) => v.name === mount?.name);
    expect(obj(volume?.secret).secretName).toBe(serving.secretName);
    expect(configOf(objects)['tls-mode']).toBe('files');
  });

  it('self-signed: the operator patches its own webhook configuration, for the Service DNS names', () => {
    const objects = rendered.get('self-signed') ?? [];
    const config = configOf(objects);
    const ns = find(objects, 'Namespace').metadata.name;
    const svc = find(objects, 'Service', 'helmrelease-autopilot-webhook').metadata.name;
    expect(config['tls-mode']).toBe('self-signed');
    expect(config['webhook-configuration']).toBe(find(objects, 'MutatingWebhookConfiguration').metadata.name);
    expect(config['self-signed-dns-names']).toContain(`${svc}.${ns}.svc`);
    expect(objects.some((o) => o.kind === 'Certificate' || o.kind === 'Issuer')).toBe(false);
    // No cert-manager annotation: nothing else writes the caBundle.
    expect(obj(find(objects, 'MutatingWebhookConfiguration').metadata.annotations)).not.toHaveProperty(
      'cert-manager.io/inject-ca-from',
    );
  });
});
