// Least privilege, proved on a real API server with the RBAC rendered from manifests/:
// - the rendered rules are exactly the table below (what the code does; docs/adr/0006-rbac-least-privilege.md explains it);
// - the operator itself (startRoles, flags from the rendered Deployment) runs as the ServiceAccount through
//   impersonation and does all its work without one refused request;
// - what was not granted is refused with 403.
// A dedicated control plane: the rendered ClusterRoles, the Namespace and the webhook configuration have
// fixed names, and the webhook configuration must not reach the shared control plane's other tests.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Roles, startRoles } from '../../cmd/helmrelease-autopilot/roles.ts';
import { type ControlPlane, startControlPlane } from '../../hack/controlplane.ts';
import { parseConfig } from '../../src/config.ts';
import { ApiError, KubeClient } from '../../src/kube/client.ts';
import {
  ConfigMaps,
  collectionPath,
  Events,
  HelmReleases,
  Leases,
  MutatingWebhookConfigurations,
  objectPath,
  Secrets,
} from '../../src/kube/resources.ts';
import { Annotations, Flux } from '../../src/names.ts';
import { array, isObject, type JsonObject, str } from '../../src/util/narrow.ts';
import { DIGEST_KEY_SECRET, parseDigestKeySecret } from '../../src/values/key-secret.ts';
import { createSelfSigned, writeCertDir } from '../../webhook/selfsigned.ts';
import { createNamespace, eventually, loadKubeConfig } from '../support/cluster.ts';
import { helmReleaseObject } from '../support/flux-status.ts';
import { apply, Discovery, find, type K8sObject, render } from './manifests-render.ts';

type Scope = 'cluster' | 'own-namespace';
interface Grant {
  group: string;
  resource: string;
  verbs: string[];
  scope: Scope;
  /** resourceNames, when the rule is limited to them. */
  names?: string[];
  /** Only the self-signed overlay needs it. */
  selfSigned?: true;
}

/** Everything the code does with the API, and nothing else. */
const NEEDED: Grant[] = [
  // src/kube/caches.ts: the shared HelmRelease cache.
  { group: Flux.group, resource: 'helmreleases', verbs: ['list', 'watch'], scope: 'cluster' },
  // controller/triggers, controller/retries: annotation merge patches (never PUT, never spec).
  { group: Flux.group, resource: 'helmreleases', verbs: ['patch'], scope: 'cluster' },
  // src/kube/caches.ts (metadata-only list+watch) and src/values/store.ts (GET of referenced objects).
  { group: '', resource: 'configmaps', verbs: ['get', 'list', 'watch'], scope: 'cluster' },
  { group: '', resource: 'secrets', verbs: ['get', 'list', 'watch'], scope: 'cluster' },
  // src/kube/events.ts: events.k8s.io/v1 Events, created only.
  { group: 'events.k8s.io', resource: 'events', verbs: ['create'], scope: 'cluster' },
  // src/kube/leader.ts: create the Lease once, then read and PUT it (renew, take over, release).
  { group: 'coordination.k8s.io', resource: 'leases', verbs: ['create'], scope: 'own-namespace' },
  {
    group: 'coordination.k8s.io',
    resource: 'leases',
    verbs: ['get', 'update'],
    scope: 'own-namespace',
    names: ['helmrelease-autopilot'],
  },
  // src/values/key-secret.ts: the digest key Secret, created by the first replica (create cannot be limited
  // by name) and read back by name when it exists (409). webhook/selfsigned.ts creates the CA Secret with the
  // same grant (and reads it with the cluster-wide get above).
  { group: '', resource: 'secrets', verbs: ['create'], scope: 'own-namespace' },
  {
    group: '',
    resource: 'secrets',
    verbs: ['get'],
    scope: 'own-namespace',
    names: [DIGEST_KEY_SECRET],
  },
  // webhook/cabundle.ts, webhook/selfsigned.ts: our own webhook configuration, watched by name (a list/watch
  // with fieldSelector metadata.name is authorized by resourceNames) and its caBundle patched; the CA Secret.
  {
    group: 'admissionregistration.k8s.io',
    resource: 'mutatingwebhookconfigurations',
    verbs: ['get', 'list', 'watch', 'patch'],
    scope: 'cluster',
    names: ['helmrelease-autopilot'],
    selfSigned: true,
  },
];

const RBAC_KINDS = new Set(['ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding']);
const obj = (v: unknown): JsonObject => (isObject(v) ? v : {});
const strings = (v: unknown): string[] => array(v).map(String);

/** "scope group resource verb name" for every permission a rule list grants. */
function expand(
  scope: Scope,
  group: string,
  resources: string[],
  verbs: string[],
  names: string[],
): string[] {
  return resources.flatMap((r) =>
    verbs.flatMap((v) =>
      (names.length ? names : ['*']).map((n) => `${scope} ${group || 'core'} ${r} ${v} ${n}`),
    ),
  );
}

/** What the rendered Roles and ClusterRoles grant the rendered ServiceAccount, through the rendered bindings. */
function grantedTo(objects: K8sObject[]): string[] {
  const sa = find(objects, 'ServiceAccount');
  const bound = objects.filter(
    (b) =>
      (b.kind === 'ClusterRoleBinding' || b.kind === 'RoleBinding') &&
      array(b.subjects)
        .filter(isObject)
        .some(
          (s) =>
            s.kind === 'ServiceAccount' &&
            s.name === sa.metadata.name &&
            s.namespace === sa.metadata.namespace,
        ),
  );
  const out: string[] = [];
  for (const b of bound) {
    const ref = obj(b.roleRef);
    const role = find(objects, String(ref.kind), String(ref.name));
    const scope: Scope = b.kind === 'ClusterRoleBinding' ? 'cluster' : 'own-namespace';
    if (scope === 'own-namespace') expect(b.metadata.namespace).toBe(sa.metadata.namespace);
    for (const rule of array(role.rules).filter(isObject)) {
      for (const g of strings(rule.apiGroups))
        out.push(
          ...expand(scope, g, strings(rule.resources), strings(rule.verbs), strings(rule.resourceNames)),
        );
    }
  }
  return out.sort();
}

function needed(selfSigned: boolean): string[] {
  return NEEDED.filter((g) => selfSigned || !g.selfSigned)
    .flatMap((g) => expand(g.scope, g.group, [g.resource], g.verbs, g.names ?? []))
    .sort();
}

/** A logger whose lines are kept, to prove that no request of the operator was refused. */
function recordingLogger() {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(...chunk.toString().split('\n').filter(Boolean));
      done();
    },
  });
  return { log: pino({ level: 'debug' }, stream), lines };
}

async function status(p: Promise<unknown>): Promise<number | 'ok'> {
  try {
    await p;
    return 'ok';
  } catch (err) {
    if (err instanceof ApiError) return err.status;
    throw err;
  }
}

describe('least privilege: the operator as its ServiceAccount, with RBAC rendered from manifests/', () => {
  let cp: ControlPlane;
  let admin: KubeClient;
  let sa: KubeClient;
  let discovery: Discovery;
  let certManager: K8sObject[];
  let selfSigned: K8sObject[];
  let ns: string;
  let apps: string;
  const certDir = mkdtempSync(join(tmpdir(), 'autopilot-rbac-certs-'));

  const installRBAC = async (objects: K8sObject[]) => {
    for (const o of objects.filter(
      (x) => x.kind === 'Namespace' || x.kind === 'ServiceAccount' || RBAC_KINDS.has(x.kind),
    ))
      await apply(admin, discovery, o);
  };

  /** The operator as the Deployment runs it (its flags and env), on loopback, as the ServiceAccount. */
  const runOperator = async (objects: K8sObject[], log: pino.Logger) => {
    const args = strings(
      array(obj(obj(obj(find(objects, 'Deployment').spec).template).spec).containers).map(obj)[0]?.args,
    );
    const config = parseConfig(
      [
        ...args,
        '--bind-address=127.0.0.1',
        '--webhook-port=0',
        `--cert-dir=${certDir}`,
        '--debounce=0',
        '--lease-duration=3s',
        '--lease-renew-deadline=2s',
        '--lease-retry-period=300ms',
      ],
      { AUTOPILOT_NAMESPACE: ns },
    );
    const exits: string[] = [];
    const roles = await startRoles({
      config,
      client: sa,
      log,
      registry: new Registry(),
      exit: (_code, why) => exits.push(why),
    });
    return { roles, exits, config };
  };

  beforeAll(async () => {
    let plane: ControlPlane;
    [plane, certManager, selfSigned] = await Promise.all([
      startControlPlane(),
      render('overlays/cert-manager'),
      render('overlays/self-signed'),
    ]);
    cp = plane;
    admin = await KubeClient.create(loadKubeConfig(cp.kubeconfigPath));
    discovery = new Discovery(admin);
    const account = find(certManager, 'ServiceAccount');
    ns = account.metadata.namespace as string;
    sa = await KubeClient.create(loadKubeConfig(cp.kubeconfigPath), {
      impersonate: { user: `system:serviceaccount:${ns}:${account.metadata.name}` },
    });
    apps = await createNamespace(admin, 'apps');
  });
  afterAll(async () => {
    sa?.close();
    admin?.close();
    await cp?.stop();
    rmSync(certDir, { recursive: true, force: true });
  });

  it.each([
    ['cert-manager', false],
    ['self-signed', true],
  ] as const)('the %s overlay grants exactly what the code uses', (_name, isSelfSigned) => {
    expect(grantedTo(isSelfSigned ? selfSigned : certManager)).toEqual(needed(isSelfSigned));
  });

  describe('cert-manager overlay', () => {
    let roles: Roles | undefined;
    beforeAll(async () => {
      await installRBAC(certManager);
      // The RBAC authorizer sees new bindings through its own watch.
      await eventually(async () => (await status(sa.get(collectionPath(HelmReleases)))) === 'ok', {
        what: 'the ServiceAccount may list HelmReleases',
      });
    });
    afterAll(async () => {
      await roles?.stop();
    });

    it('the operator syncs, takes and renews the Lease, stamps and triggers a release, records an Event: nothing refused', async () => {
      await writeCertDir(certDir, createSelfSigned(['localhost']));
      await admin.create(collectionPath(ConfigMaps, apps), {
        metadata: { name: 'values' },
        data: { 'values.yaml': 'replicas: 1\n' },
      });
      await admin.create(collectionPath(Secrets, apps), {
        metadata: { name: 'secret-values' },
        stringData: { 'values.yaml': 'password: one\n' },
      });
      const hr = helmReleaseObject(apps, 'app');
      await admin.create(collectionPath(HelmReleases, apps), {
        ...hr,
        spec: {
          ...hr.spec,
          valuesFrom: [
            { kind: 'ConfigMap', name: 'values' },
            { kind: 'Secret', name: 'secret-values' },
          ],
        },
      });
      const { log, lines } = recordingLogger();
      const run = await runOperator(certManager, log);
      roles = run.roles;
      const hrPath = objectPath(HelmReleases, apps, 'app');
      const annotations = async () => obj(obj((await admin.get(hrPath)) as unknown).metadata).annotations;
      // Backfill: the digest of a ConfigMap and a Secret it read (list, watch, get), written with a patch.
      const digest = await eventually(async () => str(obj(await annotations())[Annotations.valuesDigest]), {
        what: 'the values digest stamped by the operator',
        timeoutMs: 20_000,
      });
      // The digest key: created by the operator (create), in the v2 digest it stamped (its key id).
      const keys = parseDigestKeySecret(await admin.get(objectPath(Secrets, ns, DIGEST_KEY_SECRET)));
      expect(digest).toMatch(new RegExp(`^hmac-sha256:v2:${keys.current.id}:[0-9a-f]{64}$`));
      await admin.mergePatch(objectPath(Secrets, apps, 'secret-values'), {
        stringData: { 'values.yaml': 'password: two\n' },
      });
      await eventually(
        async () => {
          const a = obj(await annotations());
          return str(a[Flux.requestedAt]) !== undefined && a[Annotations.valuesDigest] !== digest;
        },
        { what: 'the release triggered after its Secret changed', timeoutMs: 20_000 },
      );
      const lease = async () =>
        obj(obj(await admin.get(objectPath(Leases, ns, run.config['lease-name']))).spec);
      const held = await eventually(
        async () => ((await lease()).holderIdentity ? await lease() : undefined),
        {
          what: 'the Lease held by the operator',
        },
      );
      await eventually(async () => (await lease()).renewTime !== held.renewTime, {
        what: 'the Lease renewed',
      });
      await eventually(
        async () =>
          array(obj(await admin.get(collectionPath(Events, apps))).items)
            .filter(isObject)
            .some(
              (e) =>
                obj(e.regarding).name === 'app' &&
                str(e.reportingController)?.startsWith('helmrelease-autopilot'),
            ),
        { what: 'an Event about the release' },
      );
      await run.roles.stop();
      roles = undefined;
      expect((await lease()).holderIdentity ?? '').toBe('');
      expect(run.exits).toEqual([]);
      const refused = lines.filter((l) => /forbidden|\b403\b/i.test(l));
      expect(refused).toEqual([]);
    });

    const other = 'not-ours';
    it.each<[string, (c: KubeClient) => Promise<unknown>]>([
      [
        'get one HelmRelease (reads come from the cache)',
        (c) => c.get(objectPath(HelmReleases, apps, 'app')),
      ],
      [
        'update (PUT) a HelmRelease',
        (c) =>
          c.request({
            method: 'PUT',
            path: objectPath(HelmReleases, apps, 'app'),
            body: helmReleaseObject(apps, 'app'),
          }),
      ],
      [
        'create a HelmRelease',
        (c) => c.create(collectionPath(HelmReleases, apps), helmReleaseObject(apps, 'new')),
      ],
      ['delete a HelmRelease', (c) => c.delete(objectPath(HelmReleases, apps, 'app'))],
      [
        'patch a ConfigMap',
        (c) => c.mergePatch(objectPath(ConfigMaps, apps, 'values'), { data: { x: 'y' } }),
      ],
      ['patch a Secret', (c) => c.mergePatch(objectPath(Secrets, apps, 'secret-values'), { data: {} })],
      ['delete a Secret', (c) => c.delete(objectPath(Secrets, apps, 'secret-values'))],
      [
        'create a Secret in another namespace',
        (c) => c.create(collectionPath(Secrets, apps), { metadata: { name: other } }),
      ],
      [
        'update its digest key Secret',
        (c) =>
          c.request({
            method: 'PUT',
            path: objectPath(Secrets, ns, DIGEST_KEY_SECRET),
            body: { metadata: { name: DIGEST_KEY_SECRET }, data: {} },
          }),
      ],
      [
        'patch its digest key Secret',
        (c) => c.mergePatch(objectPath(Secrets, ns, DIGEST_KEY_SECRET), { data: { current: 'AAAA' } }),
      ],
      ['delete its digest key Secret', (c) => c.delete(objectPath(Secrets, ns, DIGEST_KEY_SECRET))],
      ['patch an Event', (c) => c.mergePatch(objectPath(Events, apps, 'any'), { note: 'x' })],
      [
        'create a core/v1 Event',
        (c) => c.create(`/api/v1/namespaces/${apps}/events`, { metadata: { name: other } }),
      ],
      ['get another Lease', (c) => c.get(objectPath(Leases, ns, other))],
      ['delete its Lease', (c) => c.delete(objectPath(Leases, ns, 'helmrelease-autopilot'))],
      [
        'create a Lease in another namespace',
        (c) => c.create(collectionPath(Leases, apps), { metadata: { name: other } }),
      ],
      [
        'get its webhook configuration (only self-signed mode does)',
        (c) => c.get(objectPath(MutatingWebhookConfigurations, undefined, 'helmrelease-autopilot')),
      ],
      ['list pods', (c) => c.get('/api/v1/pods')],
      ['list namespaces', (c) => c.get('/api/v1/namespaces')],
      [
        'create a ServiceAccount token',
        (c) => c.create(`/api/v1/namespaces/${ns}/serviceaccounts/helmrelease-autopilot/token`, { spec: {} }),
      ],
    ])('refused: %s', async (_what, call) => {
      expect(await status(call(sa))).toBe(403);
    });
  });

  describe('self-signed overlay', () => {
    let roles: Roles | undefined;
    beforeAll(async () => {
      // Replace the cert-manager install with the self-signed one (the same names, plus its own RBAC).
      await installRBAC(selfSigned);
      await apply(admin, discovery, find(selfSigned, 'MutatingWebhookConfiguration'));
      await admin.create(collectionPath(MutatingWebhookConfigurations), {
        metadata: { name: 'not-ours' },
        webhooks: [],
      });
      await eventually(
        async () =>
          (await status(
            sa.get(objectPath(MutatingWebhookConfigurations, undefined, 'helmrelease-autopilot')),
          )) === 'ok',
        { what: 'the ServiceAccount may read its webhook configuration' },
      );
    });
    afterAll(async () => {
      await roles?.stop();
    });

    it('the operator creates the shared CA Secret and keeps its caBundle current: nothing refused', async () => {
      rmSync(certDir, { recursive: true, force: true });
      const { log, lines } = recordingLogger();
      const run = await runOperator(selfSigned, log);
      roles = run.roles;
      expect(run.config['tls-mode']).toBe('self-signed');
      // The digest key Secret exists since the first run: create answers 409 and it is read back by name.
      await eventually(() => run.roles.checks.find((c) => c.name === 'digest-key')?.ready(), {
        what: 'the existing digest key loaded',
      });
      const caSecret = await eventually(
        async () =>
          obj(obj(await admin.get(objectPath(Secrets, ns, 'helmrelease-autopilot-webhook-ca'))).data),
        { what: 'the CA Secret' },
      );
      const bundles = async () =>
        array(
          obj(
            await admin.get(
              objectPath(MutatingWebhookConfigurations, undefined, run.config['webhook-configuration']),
            ),
          ).webhooks,
        )
          .filter(isObject)
          .map((w) => obj(w.clientConfig).caBundle);
      await eventually(async () => (await bundles()).every((b) => b === caSecret['tls.crt']), {
        what: 'caBundle = the CA of the Secret',
      });
      // Recreated without a caBundle (the manifest applied anew): the watch by name sees it, the patch restores it.
      const mwc = find(selfSigned, 'MutatingWebhookConfiguration');
      await admin.delete(objectPath(MutatingWebhookConfigurations, undefined, mwc.metadata.name));
      await apply(admin, discovery, mwc);
      await eventually(async () => (await bundles()).every((b) => b === caSecret['tls.crt']), {
        what: 'caBundle restored after the configuration was recreated',
        timeoutMs: 15_000,
      });
      await run.roles.stop();
      roles = undefined;
      expect(run.exits).toEqual([]);
      expect(lines.filter((l) => /forbidden|\b403\b/i.test(l))).toEqual([]);
    });

    it.each<[string, (c: KubeClient) => Promise<unknown>]>([
      [
        'get another webhook configuration',
        (c) => c.get(objectPath(MutatingWebhookConfigurations, undefined, 'not-ours')),
      ],
      [
        'patch another webhook configuration',
        (c) =>
          c.mergePatch(objectPath(MutatingWebhookConfigurations, undefined, 'not-ours'), {
            metadata: { labels: { x: 'y' } },
          }),
      ],
      ['list webhook configurations', (c) => c.get(collectionPath(MutatingWebhookConfigurations))],
      [
        'watch all webhook configurations',
        (c) =>
          c.request({
            path: collectionPath(MutatingWebhookConfigurations),
            query: { watch: true, timeoutSeconds: 1 },
          }),
      ],
      [
        'list another webhook configuration by name',
        (c) =>
          c.request({
            path: collectionPath(MutatingWebhookConfigurations),
            query: { fieldSelector: 'metadata.name=not-ours' },
          }),
      ],
      [
        'delete its webhook configuration',
        (c) => c.delete(objectPath(MutatingWebhookConfigurations, undefined, 'helmrelease-autopilot')),
      ],
      [
        'patch a validating webhook configuration',
        (c) =>
          c.mergePatch(
            '/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/helmrelease-autopilot',
            {},
          ),
      ],
      [
        'create a Secret in another namespace',
        (c) => c.create(collectionPath(Secrets, apps), { metadata: { name: 'not-ours' } }),
      ],
      [
        'update its CA Secret',
        (c) =>
          c.request({
            method: 'PUT',
            path: objectPath(Secrets, ns, 'helmrelease-autopilot-webhook-ca'),
            body: { metadata: { name: 'helmrelease-autopilot-webhook-ca' } },
          }),
      ],
      ['delete its CA Secret', (c) => c.delete(objectPath(Secrets, ns, 'helmrelease-autopilot-webhook-ca'))],
    ])('refused: %s', async (_what, call) => {
      expect(await status(call(sa))).toBe(403);
    });
  });
});
