// charts/helmrelease-autopilot installs what manifests/ installs (one source of truth, checked object by object),
// reaches every flag of src/config.ts through its values, refuses values it would render wrong, passes
// `helm lint --strict`, and its rendered objects are accepted by a real API server (server-side dry-run, with
// cert-manager's and prometheus-operator's CRDs read from their Go modules: a dedicated control plane).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { CHART_DIR, DERIVED_FLAGS, NAMED_FLAG_VALUES } from '../../hack/chart.ts';
import { type ControlPlane, installCRDs, startControlPlane } from '../../hack/controlplane.ts';
import { FLAGS, formatDuration, parseConfig } from '../../src/config.ts';
import { ApiError, KubeClient } from '../../src/kube/client.ts';
import { array, isObject, type Json, type JsonObject, str } from '../../src/util/narrow.ts';
import { loadKubeConfig } from '../support/cluster.ts';
import { helmLint, helmTemplate, NAMESPACE, RELEASE } from './chart-render.ts';
import { apply, Discovery, find, type K8sObject, render, thirdPartyCRDs } from './manifests-render.ts';

const obj = (v: unknown): JsonObject => (isObject(v) ? v : {});
const list = (v: unknown): JsonObject[] => array(v).filter(isObject);
const key = (o: K8sObject) => `${o.kind} ${o.metadata.namespace ?? ''}/${o.metadata.name}`;

function podSpec(objects: K8sObject[]): JsonObject {
  return obj(obj(obj(find(objects, 'Deployment').spec).template).spec);
}
function container(objects: K8sObject[]): JsonObject {
  return list(podSpec(objects).containers)[0] as JsonObject;
}
function args(objects: K8sObject[]): string[] {
  return array(container(objects).args).map(String);
}
function configOf(objects: K8sObject[]) {
  return parseConfig(args(objects), { AUTOPILOT_NAMESPACE: NAMESPACE });
}

/**
 * What may differ between the chart and manifests/: labels and the selectors built from them (the chart adds
 * Helm's standard labels and the release instance), the image repository (manifests/ pins a placeholder
 * registry), the order of the container's arguments (the chart renders its flags map in name order), and the
 * order of volumes and mounts (lists the API server merges by name; kustomize's patch puts its own first).
 */
function normalize(o: K8sObject): JsonObject {
  const c = structuredClone(o) as JsonObject;
  delete obj(c.metadata).labels;
  const spec = obj(c.spec);
  if (o.kind === 'Service' || o.kind === 'PodDisruptionBudget' || o.kind === 'ServiceMonitor')
    delete spec.selector;
  if (o.kind === 'Deployment') {
    delete spec.selector;
    const template = obj(spec.template);
    delete obj(template.metadata).labels;
    const pod = obj(template.spec);
    const byName = (a: JsonObject, b: JsonObject) => String(a.name).localeCompare(String(b.name));
    pod.volumes = list(pod.volumes).sort(byName);
    for (const term of list(
      obj(obj(pod.affinity).podAntiAffinity).preferredDuringSchedulingIgnoredDuringExecution,
    ))
      delete obj(term.podAffinityTerm).labelSelector;
    for (const ctr of list(pod.containers)) {
      ctr.image = String(ctr.image).replace(/^.*:/, '');
      ctr.args = array(ctr.args).map(String).sort();
      ctr.volumeMounts = list(ctr.volumeMounts).sort(byName);
    }
  }
  return c;
}

const INSTALLS: { name: string; values: JsonObject; overlay: string; components?: string[] }[] = [
  { name: 'cert-manager (default values)', values: {}, overlay: 'overlays/cert-manager' },
  { name: 'self-signed', values: { tls: { mode: 'self-signed' } }, overlay: 'overlays/self-signed' },
  {
    name: 'cert-manager + ServiceMonitor, PrometheusRule, dashboard',
    values: {
      metrics: { serviceMonitor: { enabled: true }, prometheusRule: { enabled: true } },
      dashboard: { enabled: true },
    },
    overlay: 'overlays/cert-manager',
    components: ['components/servicemonitor', 'components/prometheusrule', 'components/dashboard'],
  },
];

const KINDS = [
  'ServiceAccount',
  'ClusterRole',
  'ClusterRoleBinding',
  'Role',
  'RoleBinding',
  'MutatingWebhookConfiguration',
  'Deployment',
  'Service',
  'PodDisruptionBudget',
  'Issuer',
  'Certificate',
  'ServiceMonitor',
  'PrometheusRule',
  'ConfigMap',
];

/** Every switch on, with non-default sizes. */
const EVERYTHING: JsonObject = {
  replicas: 3,
  resources: { requests: { cpu: '200m', memory: '256Mi' }, limits: { memory: '512Mi' } },
  metrics: { serviceMonitor: { enabled: true }, prometheusRule: { enabled: true } },
  dashboard: { enabled: true },
  networkPolicy: { enabled: true },
  podDisruptionBudget: { enabled: true, minAvailable: 2 },
};

describe('charts/helmrelease-autopilot', () => {
  const chart = new Map<string, K8sObject[]>();
  const kustomize = new Map<string, K8sObject[]>();

  beforeAll(async () => {
    await Promise.all(
      INSTALLS.map(async (i) => {
        chart.set(i.name, await helmTemplate(i.values));
        kustomize.set(i.name, await render(i.overlay, i.components));
      }),
    );
  });

  describe.each(INSTALLS)('$name: the same install as manifests/$overlay', ({ name }) => {
    it('the same objects, but the Namespace (Helm installs into an existing one)', () => {
      const fromChart = (chart.get(name) ?? []).map(key).sort();
      const fromManifests = (kustomize.get(name) ?? [])
        .filter((o) => o.kind !== 'Namespace')
        .map(key)
        .sort();
      expect(fromChart).toEqual(fromManifests);
    });

    it.each(KINDS)('%s: equal, up to labels, selectors, image registry and argument order', (kind) => {
      const fromManifests = (kustomize.get(name) ?? []).filter((o) => o.kind === kind);
      for (const m of fromManifests) {
        const c = (chart.get(name) ?? []).find((o) => key(o) === key(m));
        expect(c, key(m)).toBeDefined();
        expect(normalize(c as K8sObject), key(m)).toEqual(normalize(m));
      }
    });

    it('selectors of the Services, PDB and ServiceMonitor select what they should', () => {
      const objects = chart.get(name) ?? [];
      const deploy = obj(find(objects, 'Deployment').spec);
      const podLabels = obj(obj(deploy.template).metadata).labels;
      const selector = obj(obj(deploy.selector).matchLabels);
      expect(podLabels).toMatchObject(selector);
      const spread = list(
        obj(obj(podSpec(objects).affinity).podAntiAffinity).preferredDuringSchedulingIgnoredDuringExecution,
      );
      expect(obj(obj(obj(spread[0]?.podAffinityTerm).labelSelector).matchLabels)).toEqual(selector);
      for (const o of objects) {
        if (o.kind === 'Service') expect(podLabels, key(o)).toMatchObject(obj(obj(o.spec).selector));
        if (o.kind === 'PodDisruptionBudget')
          expect(podLabels).toMatchObject(obj(obj(obj(o.spec).selector).matchLabels));
        if (o.kind === 'ServiceMonitor') {
          const metricsSvc = find(objects, 'Service', `${RELEASE}-metrics`);
          expect(obj(metricsSvc.metadata.labels)).toMatchObject(obj(obj(obj(o.spec).selector).matchLabels));
        }
      }
    });
  });

  it('the dashboard ConfigMap carries Grafana’s sidecar label and the PrometheusRule the component’s groups', () => {
    const objects = chart.get(INSTALLS[2]?.name ?? '') ?? [];
    expect(obj(find(objects, 'ConfigMap', `${RELEASE}-dashboard`).metadata.labels)).toMatchObject({
      grafana_dashboard: '1',
    });
    const component = parse(
      readFileSync(join(CHART_DIR, '../../manifests/components/prometheusrule/prometheusrule.yaml'), 'utf8'),
    ) as JsonObject;
    expect(find(objects, 'PrometheusRule').spec).toEqual(component.spec);
  });

  describe('every flag of src/config.ts is reachable through values', () => {
    const derived = Object.keys(DERIVED_FLAGS);
    /** A valid, non-default value for each flag, as values hold it. */
    function sample(name: string): Json {
      const spec = FLAGS[name as keyof typeof FLAGS];
      switch (spec.type) {
        case 'bool':
          return !spec.default;
        case 'int':
          return (spec.default as number) + 1;
        case 'number':
          return (spec.default as number) + 0.5;
        case 'duration':
          // Halved for the renew deadline, which must stay below the lease duration.
          return formatDuration(
            name === 'lease-renew-deadline' ? (spec.default as number) / 2 : (spec.default as number) * 2,
          );
        case 'list':
          // Valid for every list: namespace and DNS names, and patterns.
          return ['first-item', 'second-item'];
        case 'enum':
          return spec.values?.find((v) => v !== spec.default) ?? '';
        default:
          return 'example' in spec && spec.example ? spec.example : `/tmp/sample-${name}`;
      }
    }
    const settable = Object.keys(FLAGS).filter((f) => !derived.includes(f));
    /** Flags the operator accepts only with another one (a shard's selector needs its own Lease). */
    const companions: Record<string, Record<string, Json>> = {
      'watch-label-selector': { 'lease-name': 'helmrelease-autopilot-shard1' },
    };

    it.each(settable)('flags.%s', async (name) => {
      const value = sample(name);
      const config = configOf(await helmTemplate({ flags: { [name]: value, ...companions[name] } }));
      const spec = FLAGS[name as keyof typeof FLAGS];
      const expected = Array.isArray(value) ? value : spec.parse(String(value), name);
      expect(config[name as keyof typeof config]).toEqual(expected);
    });

    it.each(Object.entries(NAMED_FLAG_VALUES))(
      '%s sets --%s, and flags wins over it',
      async (named, flag) => {
        const value = sample(flag);
        // A named value is a string; a list flag takes it comma-separated.
        const given = Array.isArray(value) ? value.join(',') : value;
        const config = configOf(await helmTemplate({ [named]: given }));
        expect(config[flag as keyof typeof config]).toEqual(value);
        const both = configOf(await helmTemplate({ [named]: given, flags: { [flag]: FLAGS[flag].default } }));
        expect(both[flag as keyof typeof both]).toEqual(FLAGS[flag].default);
      },
    );

    it('the derived ones follow tls and the release: tls-mode, webhook-configuration, self-signed-dns-names, namespace', async () => {
      expect(derived.sort()).toEqual([
        'exclude-namespaces',
        'namespace',
        'self-signed-dns-names',
        'tls-mode',
        'webhook-configuration',
      ]);
      const objects = await helmTemplate(
        { tls: { mode: 'self-signed', selfSigned: { extraDnsNames: ['autopilot.example'] } } },
        { release: 'ap', namespace: 'ops' },
      );
      const config = parseConfig(args(objects), { AUTOPILOT_NAMESPACE: 'ops' });
      const hook = find(objects, 'MutatingWebhookConfiguration');
      expect(config['tls-mode']).toBe('self-signed');
      expect(config['webhook-configuration']).toBe(hook.metadata.name);
      const svc = find(objects, 'Service', str(obj(obj(list(hook.webhooks)[0]?.clientConfig).service).name));
      expect(config['self-signed-dns-names']).toEqual([
        `${svc.metadata.name}.ops.svc`,
        `${svc.metadata.name}.ops.svc.cluster.local`,
        'autopilot.example',
      ]);
      // --namespace comes from the pod's own namespace, which is the release namespace.
      const env = list(container(objects).env).find((e) => e.name === FLAGS.namespace.env);
      expect(obj(obj(env?.valueFrom).fieldRef).fieldPath).toBe('metadata.namespace');
      expect(find(objects, 'Deployment').metadata.namespace).toBe('ops');
    });

    it('the reconcilers exclude exactly what the webhook configuration excludes', async () => {
      for (const excluded of [undefined, ['kube-system', 'flux-system'], []]) {
        const values: JsonObject = excluded ? { webhook: { excludeNamespaces: excluded } } : {};
        const objects = await helmTemplate(values, { release: 'ap', namespace: 'ops' });
        const config = parseConfig(args(objects), { AUTOPILOT_NAMESPACE: 'ops' });
        const hook = list(find(objects, 'MutatingWebhookConfiguration').webhooks)[0];
        const selector = list(obj(obj(hook).namespaceSelector).matchExpressions)[0];
        expect([...config['exclude-namespaces']].sort()).toEqual(
          array(obj(selector).values).map(String).sort(),
        );
      }
    });

    it.each(derived)('values.schema.json refuses flags.%s (the chart sets it)', async (name) => {
      await expect(helmTemplate({ flags: { [name]: 'x' } })).rejects.toThrow(/flags|additional/i);
    });

    it('values.schema.json refuses a misspelt flag and a wrongly typed one', async () => {
      await expect(helmTemplate({ flags: { debounse: '1s' } })).rejects.toThrow(/debounse/);
      await expect(helmTemplate({ flags: { concurrency: 'many' } })).rejects.toThrow(/concurrency/);
      await expect(helmTemplate({ flags: { debounce: '5 seconds' } })).rejects.toThrow(/debounce/);
    });
  });

  describe('values that change more than an argument', () => {
    it('ports and the certificate directory move the container ports, probes, Services and the mount', async () => {
      const objects = await helmTemplate({
        flags: {
          'webhook-port': 10443,
          'health-port': 10081,
          'metrics-port': 10080,
          'cert-dir': '/tmp/certs',
        },
        networkPolicy: { enabled: true },
      });
      const config = configOf(objects);
      const ports = Object.fromEntries(list(container(objects).ports).map((p) => [p.name, p.containerPort]));
      expect(ports).toEqual({ webhook: 10443, health: 10081, metrics: 10080 });
      expect(config['webhook-port']).toBe(10443);
      const mount = list(container(objects).volumeMounts).find((m) => m.name === 'serving-cert');
      expect(mount?.mountPath).toBe('/tmp/certs');
      const volume = list(podSpec(objects).volumes).find((v) => v.name === 'serving-cert');
      expect(obj(volume?.secret).defaultMode).toBe(0o440);
      expect(config['cert-dir']).toBe('/tmp/certs');
      const policy = find(objects, 'NetworkPolicy');
      expect(list(list(obj(policy.spec).ingress)[0]?.ports)).toEqual([
        { port: 10443, protocol: 'TCP' },
        { port: 10080, protocol: 'TCP' },
      ]);
    });

    it('a large integer renders as digits, not 1e+06', async () => {
      expect(args(await helmTemplate({ flags: { 'write-burst': 100000 } }))).toContain(
        '--write-burst=100000',
      );
    });

    it('--lease-name moves the leader-election Role’s resourceNames with it', async () => {
      const objects = await helmTemplate({ flags: { 'lease-name': 'autopilot-b' } });
      const role = find(objects, 'Role', `${RELEASE}-leader-election`);
      expect(list(role.rules).flatMap((r) => array(r.resourceNames))).toEqual(['autopilot-b']);
      expect(configOf(objects)['lease-name']).toBe('autopilot-b');
    });

    it('webhook off: no webhook configuration, webhook Service, certificates or port', async () => {
      const objects = await helmTemplate({ flags: { webhook: false } });
      expect(configOf(objects).webhook).toBe(false);
      for (const kind of ['MutatingWebhookConfiguration', 'Certificate', 'Issuer'])
        expect(objects.filter((o) => o.kind === kind)).toEqual([]);
      expect(objects.filter((o) => o.kind === 'Service').map((o) => o.metadata.name)).toEqual([
        `${RELEASE}-metrics`,
      ]);
      expect(list(container(objects).ports).map((p) => p.name)).toEqual(['health', 'metrics']);
    });

    it('reconciler or leader election off: no leader-election Role (the digest-key Role stays)', async () => {
      for (const flags of [{ reconciler: false }, { 'leader-elect': false }] as JsonObject[]) {
        const objects = await helmTemplate({ flags });
        expect(objects.filter((o) => o.kind === 'Role').map((o) => o.metadata.name)).toEqual([
          `${RELEASE}-digest-key`,
        ]);
      }
    });

    it('an existing cert-manager issuer replaces the chart’s own CA chain', async () => {
      const objects = await helmTemplate({
        tls: { certManager: { issuerRef: { name: 'corp-ca', kind: 'ClusterIssuer' } } },
      });
      expect(objects.filter((o) => o.kind === 'Issuer')).toEqual([]);
      expect(objects.filter((o) => o.kind === 'Certificate').map((o) => o.metadata.name)).toEqual([
        `${RELEASE}-webhook`,
      ]);
      expect(obj(find(objects, 'Certificate').spec).issuerRef).toEqual({
        name: 'corp-ca',
        kind: 'ClusterIssuer',
      });
    });

    it('every switch on: replicas, resources, PDB, NetworkPolicy on the webhook and metrics ports only', async () => {
      const objects = await helmTemplate(EVERYTHING);
      expect(obj(find(objects, 'Deployment').spec).replicas).toBe(3);
      expect(container(objects).resources).toEqual(EVERYTHING.resources);
      expect(obj(find(objects, 'PodDisruptionBudget').spec).minAvailable).toBe(2);
      const policy = obj(find(objects, 'NetworkPolicy').spec);
      expect(policy.policyTypes).toEqual(['Ingress']);
      expect(list(policy.ingress)).toEqual([
        {
          ports: [
            { port: FLAGS['webhook-port'].default, protocol: 'TCP' },
            { port: FLAGS['metrics-port'].default, protocol: 'TCP' },
          ],
        },
      ]);
      const podLabels = obj(obj(obj(find(objects, 'Deployment').spec).template).metadata).labels;
      expect(podLabels).toMatchObject(obj(obj(policy.podSelector).matchLabels));
      for (const kind of ['ServiceMonitor', 'PrometheusRule', 'ConfigMap'])
        expect(() => find(objects, kind)).not.toThrow();
    });

    it('one replica: no PodDisruptionBudget (it would block every drain)', async () => {
      expect((await helmTemplate({ replicas: 1 })).filter((o) => o.kind === 'PodDisruptionBudget')).toEqual(
        [],
      );
    });

    it('another release name and namespace: the webhook skips that ServiceAccount and namespace', async () => {
      const objects = await helmTemplate({}, { release: 'autopilot-b', namespace: 'ops' });
      const hook = list(find(objects, 'MutatingWebhookConfiguration').webhooks)[0] as JsonObject;
      const sa = find(objects, 'ServiceAccount');
      expect(list(hook.matchConditions).map((m) => m.expression)).toEqual([
        `request.userInfo.username != 'system:serviceaccount:ops:${sa.metadata.name}'`,
      ]);
      expect(list(obj(hook.namespaceSelector).matchExpressions)[0]?.values).toEqual(['kube-system', 'ops']);
      const serving = objects.find((o) => o.kind === 'Certificate' && obj(o.spec).isCA !== true);
      expect(obj(find(objects, 'MutatingWebhookConfiguration').metadata.annotations)).toEqual({
        'cert-manager.io/inject-ca-from': `ops/${serving?.metadata.name}`,
      });
      const svc = str(obj(obj(hook.clientConfig).service).name);
      expect(obj(serving?.spec).dnsNames).toContain(`${svc}.ops.svc`);
    });
  });

  it.each([
    ['default values', {}],
    ['self-signed', { tls: { mode: 'self-signed' } }],
    ['every switch on', EVERYTHING],
  ])('helm lint --strict passes: %s', async (_name, values) => {
    expect(await helmLint(values as JsonObject)).toMatch(/1 chart\(s\) linted, 0 chart\(s\) failed/);
  });

  describe('on a real API server', () => {
    let cp: ControlPlane;
    let admin: KubeClient;
    let discovery: Discovery;
    const renders = new Map<string, K8sObject[]>();
    const CASES: [string, JsonObject][] = [
      ['default values', {}],
      ['self-signed', { tls: { mode: 'self-signed' } }],
      ['every switch on', EVERYTHING],
    ];

    beforeAll(async () => {
      const [plane] = await Promise.all([
        startControlPlane(),
        ...CASES.map(async ([name, values]) => renders.set(name, await helmTemplate(values))),
      ]);
      cp = plane;
      await installCRDs(cp.kubeconfigPath, await thirdPartyCRDs());
      admin = await KubeClient.create(loadKubeConfig(cp.kubeconfigPath));
      discovery = new Discovery(admin);
      // The namespace the user creates for the release, labelled as manifests/ labels its own.
      await apply(admin, discovery, {
        apiVersion: 'v1',
        kind: 'Namespace',
        metadata: { name: NAMESPACE, labels: { 'pod-security.kubernetes.io/enforce': 'restricted' } },
      });
    });
    afterAll(async () => {
      admin?.close();
      await cp?.stop();
    });

    it.each(CASES)('%s: every object applies with server-side dry-run', async (name) => {
      const objects = renders.get(name) ?? [];
      expect(objects.length).toBeGreaterThan(10);
      for (const o of objects) {
        const answer = await apply(admin, discovery, o, { dryRun: true }).catch((err: unknown) => {
          throw new Error(`${key(o)}: ${err instanceof ApiError ? err.message : String(err)}`);
        });
        expect(obj(answer).kind).toBe(o.kind);
      }
    });

    it.each(CASES)(
      '%s: the pod passes Pod Security "restricted" (dry-run create of the template)',
      async (name) => {
        const template = obj(obj(find(renders.get(name) ?? [], 'Deployment').spec).template);
        const pod = await admin.create(
          `/api/v1/namespaces/${NAMESPACE}/pods`,
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
  });
});
