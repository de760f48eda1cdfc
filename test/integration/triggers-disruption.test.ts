// No lost change across disruptions of the API server: a restart of kube-apiserver while a change is in
// flight, and a watch gap long enough for etcd compaction (410, relist). Own control plane: these tests
// stop the API server, which would disturb everyone else's tests on the shared one.
import { KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ControlPlane, startControlPlane } from '../../hack/controlplane.ts';
import { KubeClient } from '../../src/kube/client.ts';
import { collectionPath, Namespaces } from '../../src/kube/resources.ts';
import { Annotations } from '../../src/names.ts';
import { eventually } from '../support/cluster.ts';
import {
  createConfigMap,
  createRelease,
  fluxHandled,
  patchConfigMap,
  releaseMeta,
  requestedAt,
  startOperator,
} from './triggers-harness.ts';

let cp: ControlPlane;
let client: KubeClient;

beforeAll(async () => {
  cp = await startControlPlane();
  const kc = new KubeConfig();
  kc.loadFromFile(cp.kubeconfigPath);
  client = await KubeClient.create(kc);
}, 180_000);

afterAll(async () => {
  client?.close();
  await cp?.stop();
});

async function fixture(ns: string) {
  await client.create(collectionPath(Namespaces), { metadata: { name: ns } });
  await createConfigMap(client, ns, 'cm', { data: { 'values.yaml': 'a: 1' } });
  await createRelease(client, ns, 'app', [{ kind: 'ConfigMap', name: 'cm' }]);
  const op = await startOperator(client, [ns]);
  await eventually(async () => (await releaseMeta(client, ns, 'app')).annotations[Annotations.valuesDigest], {
    what: 'stamped',
  });
  return op;
}

describe('triggers across API server disruptions', () => {
  it('a change made just before kube-apiserver restarts is triggered, and so is one after', async () => {
    const ns = 'disrupt-restart';
    const op = await fixture(ns);
    try {
      await patchConfigMap(client, ns, 'cm', { data: { 'values.yaml': 'a: 2' } });
      await cp.stopApiserver();
      await cp.startApiserver();
      const first = await eventually(() => requestedAt(client, ns, 'app'), {
        timeoutMs: 30_000,
        what: 'trigger of the change before the restart',
      });
      await fluxHandled(client, ns, 'app');
      await patchConfigMap(client, ns, 'cm', { data: { 'values.yaml': 'a: 3' } });
      await eventually(async () => ((await requestedAt(client, ns, 'app')) !== first ? true : undefined), {
        timeoutMs: 30_000,
        what: 'trigger of the change after the restart',
      });
    } finally {
      await op.stop();
    }
  });

  it('a change missed during a watch gap past compaction (410) is triggered after the relist', async () => {
    const ns = 'disrupt-gone';
    const op = await fixture(ns);
    try {
      await op.caches.stop();
      await patchConfigMap(client, ns, 'cm', { data: { 'values.yaml': 'a: 2' } });
      await cp.compactEtcd();
      // A fresh watch cache starts at the compacted revision, so resuming the watch must answer 410.
      await cp.stopApiserver();
      await cp.startApiserver();
      op.caches.start();
      await eventually(() => requestedAt(client, ns, 'app'), {
        timeoutMs: 30_000,
        what: 'trigger after relist',
      });
      expect(op.caches.configMaps.stats.gone + op.caches.helmReleases.stats.gone).toBeGreaterThan(0);
    } finally {
      await op.stop();
    }
  });
});
