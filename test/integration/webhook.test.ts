// The admission webhook through a real API server: what creates, applies, dry-runs and updates store.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiError } from '../../src/kube/client.ts';
import {
  ConfigMaps,
  collectionPath,
  HelmReleases,
  objectPath,
  type Resource,
} from '../../src/kube/resources.ts';
import { Annotations, Labels } from '../../src/names.ts';
import type { Json, JsonObject } from '../../src/util/narrow.ts';
import { eventually, userClient } from '../support/cluster.ts';
import { helmRelease } from '../support/webhook.ts';
import {
  annotationsOf,
  apply,
  createConfigMap,
  expectedDigest,
  labelsOf,
  startWebhookFixture,
  type WebhookFixture,
} from './webhook-fixture.ts';

const DIGEST = Annotations.valuesDigest;
const rbac = { group: 'rbac.authorization.k8s.io', version: 'v1' };
const Roles: Resource = { ...rbac, plural: 'roles', kind: 'Role' };
const RoleBindings: Resource = { ...rbac, plural: 'rolebindings', kind: 'RoleBinding' };
const VALUES_FROM: Json[] = [
  { kind: 'ConfigMap', name: 'values' },
  { kind: 'ConfigMap', name: 'extra', valuesKey: 'extra.yaml', optional: true },
];
const DATA = { 'values.yaml': 'replicas: 2\n', other: 'not consumed' };

let f: WebhookFixture;
beforeAll(async () => {
  f = await startWebhookFixture();
});
afterAll(async () => {
  await f?.stop();
});

async function namespaceWithValues(): Promise<string> {
  const ns = await f.namespace();
  await createConfigMap(f.client, ns, 'values', DATA);
  // The values store reads through the metadata cache: wait until it knows the ConfigMap.
  await eventually(() => f.caches.configMaps.get(ns, 'values') !== undefined, {
    what: 'ConfigMap in the cache',
  });
  return ns;
}

const get = (ns: string, name: string) => f.client.get(objectPath(HelmReleases, ns, name));

describe('admission webhook on a real API server', () => {
  it('create and server-side apply get the managed label and the digest of the consumed keys', async () => {
    const ns = await namespaceWithValues();
    const want = expectedDigest(ns, VALUES_FROM, { values: DATA });
    const created = await f.client.create(
      collectionPath(HelmReleases, ns),
      helmRelease('created', VALUES_FROM),
    );
    expect(labelsOf(created)[Labels.managed]).toBe('true');
    expect(annotationsOf(created)[DIGEST]).toBe(want);

    const applied = await apply(f.client, ns, helmRelease('applied', VALUES_FROM), 'gitops');
    expect(labelsOf(applied)[Labels.managed]).toBe('true');
    expect(annotationsOf(applied)[DIGEST]).toBe(want);
    expect(annotationsOf(await get(ns, 'applied'))[DIGEST]).toBe(want);
  });

  it('server-side dry-run is stamped and stores nothing', async () => {
    const ns = await namespaceWithValues();
    const dry = await f.client.create(collectionPath(HelmReleases, ns), helmRelease('dry', VALUES_FROM), {
      dryRun: 'All',
    });
    expect(annotationsOf(dry)[DIGEST]).toBe(expectedDigest(ns, VALUES_FROM, { values: DATA }));
    const dryApply = await apply(f.client, ns, helmRelease('dry', VALUES_FROM), 'flux', { dryRun: 'All' });
    expect(labelsOf(dryApply)[Labels.managed]).toBe('true');
    await expect(get(ns, 'dry')).rejects.toSatisfy((e) => e instanceof ApiError && e.status === 404);
  });

  it('an apply or update that omits our annotation keeps the previous digest while the spec is unchanged', async () => {
    const ns = await namespaceWithValues();
    const manifest = helmRelease('app', VALUES_FROM, { labels: { team: 'a' } });
    const first = annotationsOf(await apply(f.client, ns, manifest, 'gitops'))[DIGEST];
    expect(first).toBe(expectedDigest(ns, VALUES_FROM, { values: DATA }));

    // The data changes; the trigger (not admission) owns noticing that, so the recorded digest must stay.
    const changed = { ...DATA, 'values.yaml': 'replicas: 3\n' };
    await f.client.mergePatch(objectPath(ConfigMaps, ns, 'values'), { data: changed });
    const changedDigest = expectedDigest(ns, VALUES_FROM, { values: changed });
    await eventually(
      async () => {
        const dry = await f.client.create(
          collectionPath(HelmReleases, ns),
          helmRelease('probe', VALUES_FROM),
          {
            dryRun: 'All',
          },
        );
        return annotationsOf(dry)[DIGEST] === changedDigest;
      },
      { what: 'the webhook to see the new data' },
    );

    // Same manager, same manifest plus a label: SSA drops the annotation the manager owned; the webhook keeps it.
    const reapplied = await apply(
      f.client,
      ns,
      helmRelease('app', VALUES_FROM, { labels: { team: 'b' } }),
      'gitops',
    );
    expect(labelsOf(reapplied).team).toBe('b');
    expect(annotationsOf(reapplied)[DIGEST]).toBe(first);

    // A full replace (PUT) without our keys: kept as well, and the label comes back.
    const current = (await get(ns, 'app')) as JsonObject;
    const meta = current.metadata as JsonObject;
    const replaced = await f.client.request({
      method: 'PUT',
      path: objectPath(HelmReleases, ns, 'app'),
      body: { ...current, metadata: { ...meta, labels: { team: 'c' }, annotations: {} } },
    });
    expect(annotationsOf(replaced)[DIGEST]).toBe(first);
    expect(labelsOf(replaced)).toEqual({ team: 'c', [Labels.managed]: 'true' });

    // A spec change makes Flux reconcile with the current data: the current digest is recorded.
    const respec = helmRelease('app', VALUES_FROM, { labels: { team: 'b' } });
    (respec.spec as JsonObject).interval = '10m';
    expect(annotationsOf(await apply(f.client, ns, respec, 'gitops'))[DIGEST]).toBe(changedDigest);
  });

  it("a replace that omits the operator's retry and link state keeps it", async () => {
    const ns = await namespaceWithValues();
    await apply(f.client, ns, helmRelease('app', VALUES_FROM), 'gitops');
    const state = {
      [Annotations.retryAttempts]: '2',
      [Annotations.retryEpisode]: 'e1',
      [Annotations.linkDigests]: '{"ConfigMap/x/y":"sha256:ab"}',
    };
    await f.client.mergePatch(objectPath(HelmReleases, ns, 'app'), { metadata: { annotations: state } });
    const current = (await get(ns, 'app')) as JsonObject;
    const replaced = await f.client.request({
      method: 'PUT',
      path: objectPath(HelmReleases, ns, 'app'),
      body: { ...current, metadata: { ...(current.metadata as JsonObject), annotations: {} } },
    });
    expect(annotationsOf(replaced)).toMatchObject(state);
  });

  it('removes the label and digest when valuesFrom becomes empty or the release opts out', async () => {
    const ns = await namespaceWithValues();
    await apply(f.client, ns, helmRelease('app', VALUES_FROM), 'gitops');
    const emptied = await apply(f.client, ns, helmRelease('app', []), 'gitops');
    expect(labelsOf(emptied)[Labels.managed]).toBeUndefined();
    expect(annotationsOf(emptied)[DIGEST]).toBeUndefined();

    const ignored = await apply(
      f.client,
      ns,
      helmRelease('app', VALUES_FROM, { annotations: { [Annotations.ignore]: 'true' } }),
      'gitops',
    );
    expect(labelsOf(ignored)[Labels.managed]).toBeUndefined();
    expect(annotationsOf(ignored)[DIGEST]).toBeUndefined();
  });

  it("the operator's own writes are not mutated (matchConditions)", async () => {
    const ns = await namespaceWithValues();
    await f.client.create(collectionPath(Roles, ns), {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'Role',
      metadata: { name: 'operator' },
      rules: [{ apiGroups: ['helm.toolkit.fluxcd.io'], resources: ['helmreleases'], verbs: ['*'] }],
    });
    await f.client.create(collectionPath(RoleBindings, ns), {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: { name: 'operator' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'operator' },
      subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: f.operatorUser }],
    });
    const operator = await userClient(f.operatorUser);
    try {
      const created = await eventually(
        () => operator.create(collectionPath(HelmReleases, ns), helmRelease('by-operator', VALUES_FROM)),
        { what: 'RBAC for the operator identity' },
      );
      expect(labelsOf(created)[Labels.managed]).toBeUndefined();
      expect(annotationsOf(created)[DIGEST]).toBeUndefined();
      // The operator writing a digest of its choice keeps exactly that value.
      const written = await operator.mergePatch(objectPath(HelmReleases, ns, 'by-operator'), {
        metadata: { annotations: { [DIGEST]: 'sha256:written-by-operator' } },
      });
      expect(annotationsOf(written)[DIGEST]).toBe('sha256:written-by-operator');
      expect(labelsOf(written)[Labels.managed]).toBeUndefined();
    } finally {
      operator.close();
    }
  });
});
