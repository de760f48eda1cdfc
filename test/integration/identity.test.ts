// Identity of writes, on a real API server with the real process (node cmd/helmrelease-autopilot/main.ts): what the operator
// writes is owned by field manager "helmrelease-autopilot" in managedFields (before, the manager was empty),
// beside the managers of whoever else wrote the object.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KubeClient } from '../../src/kube/client.ts';
import { ConfigMaps, collectionPath, HelmReleases, Leases, objectPath } from '../../src/kube/resources.ts';
import { Annotations } from '../../src/names.ts';
import type { JsonObject } from '../../src/util/narrow.ts';
import { adminClient, createNamespace, eventually } from '../support/cluster.ts';
import { type OperatorProcess, startOperator } from '../support/operator.ts';
import { helmRelease } from '../support/webhook.ts';

const TEST_MANAGER = 'integration-test';

interface ManagedField {
  manager: string;
  operation: string;
  fieldsV1?: JsonObject;
}
const managedFields = async (client: KubeClient, path: string) =>
  ((await client.get(path)) as { metadata: { managedFields?: ManagedField[] } }).metadata.managedFields ?? [];

describe('identity of writes: the real operator process', () => {
  let client: KubeClient;
  let ns: string;
  let op: OperatorProcess | undefined;
  beforeAll(async () => {
    client = await adminClient();
    ns = await createNamespace(client, 'identity');
  });
  afterAll(async () => {
    op?.proc.kill('SIGTERM');
    await op?.exit;
    client?.close();
  });

  it('owns its annotations on a release and its Lease as field manager helmrelease-autopilot', async () => {
    await client.create(
      collectionPath(ConfigMaps, ns),
      { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'values' }, data: { 'values.yaml': 'a: 1' } },
      { fieldManager: TEST_MANAGER },
    );
    await client.create(
      collectionPath(HelmReleases, ns),
      helmRelease('app', [{ kind: 'ConfigMap', name: 'values' }]),
      { fieldManager: TEST_MANAGER },
    );
    op = startOperator(ns, ['--debounce=0']);
    const hrPath = objectPath(HelmReleases, ns, 'app');
    // The reconciler backfills the digest the webhook (not running here) would have stamped.
    const ours = await eventually(
      async () =>
        (await managedFields(client, hrPath)).find(
          (m) =>
            m.manager === 'helmrelease-autopilot' &&
            JSON.stringify(m.fieldsV1 ?? {}).includes(`f:${Annotations.valuesDigest}`),
        ),
      {
        timeoutMs: 30_000,
        what: `the backfilled digest owned by helmrelease-autopilot (output: ${op.out.join('')})`,
      },
    );
    expect(ours.operation).toBe('Update');
    const hrManagers = (await managedFields(client, hrPath)).map((m) => m.manager);
    expect(hrManagers).toContain(TEST_MANAGER);
    expect(hrManagers).not.toContain('');

    const lease = await eventually(
      async () => managedFields(client, objectPath(Leases, ns, 'helmrelease-autopilot')),
      { timeoutMs: 20_000, what: 'the leader Lease' },
    );
    expect(lease.map((m) => m.manager)).toEqual(['helmrelease-autopilot']);
  });
});
