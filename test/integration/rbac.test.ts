// RBAC is on in the test control plane: identities get exactly what they are granted.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KubeClient } from '../../src/kube/client.ts';
import { ApiError } from '../../src/kube/client.ts';
import { collectionPath, HelmReleases } from '../../src/kube/resources.ts';
import { adminClient, createNamespace, eventually, userClient } from '../support/cluster.ts';

describe('RBAC on the real API server', () => {
  let admin: KubeClient;
  beforeAll(async () => {
    admin = await adminClient();
  });
  afterAll(() => admin.close());

  it('refuses a user without rights, and allows exactly what a Role grants', async () => {
    const ns = await createNamespace(admin, 'rbac');
    const user = `nobody-${ns}`;
    const client = await userClient(user);
    const list = () => client.get(collectionPath(HelmReleases, ns));
    const refused = await list().catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(ApiError);
    expect((refused as ApiError).status).toBe(403);
    expect((refused as ApiError).reason).toBe('Forbidden');

    const rbac = '/apis/rbac.authorization.k8s.io/v1';
    await admin.create(`${rbac}/namespaces/${ns}/roles`, {
      metadata: { name: 'read-helmreleases' },
      rules: [{ apiGroups: ['helm.toolkit.fluxcd.io'], resources: ['helmreleases'], verbs: ['list'] }],
    });
    await admin.create(`${rbac}/namespaces/${ns}/rolebindings`, {
      metadata: { name: 'read-helmreleases' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'read-helmreleases' },
      subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: user }],
    });
    await eventually(async () => (await list()) !== undefined, { what: 'list allowed after RoleBinding' });
    // list was granted; create was not.
    const create = await client
      .create(collectionPath(HelmReleases, ns), {
        apiVersion: 'helm.toolkit.fluxcd.io/v2',
        kind: 'HelmRelease',
        metadata: { name: 'x' },
      })
      .catch((e: unknown) => e);
    expect((create as ApiError).status).toBe(403);
    // ...and nothing in another namespace.
    const other = await client.get(collectionPath(HelmReleases, 'default')).catch((e: unknown) => e);
    expect((other as ApiError).status).toBe(403);
    client.close();
  });
});
