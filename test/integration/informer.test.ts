// The informer against a real API server: full objects and metadata-only, an API server restart,
// an expired resourceVersion (410), and a watch connection that goes silent.
import { KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ControlPlane, startControlPlane } from '../../hack/controlplane.ts';
import { parseHelmRelease } from '../../src/flux/helmrelease.ts';
import { KubeClient } from '../../src/kube/client.ts';
import { type Cached, Informer, type InformerOptions } from '../../src/kube/informer.ts';
import { ConfigMaps, collectionPath, HelmReleases, objectPath } from '../../src/kube/resources.ts';
import { isObject } from '../../src/util/narrow.ts';
import { adminClient, createNamespace, eventually } from '../support/cluster.ts';
import { testLogger } from '../support/log.ts';
import { FreezableProxy } from '../support/tcp-proxy.ts';

const log = testLogger();

function helmRelease(namespace: string, name: string, valuesFrom: unknown[] = []) {
  return {
    apiVersion: 'helm.toolkit.fluxcd.io/v2',
    kind: 'HelmRelease',
    metadata: { name, namespace },
    spec: {
      interval: '5m',
      chart: { spec: { chart: 'podinfo', sourceRef: { kind: 'HelmRepository', name: 'repo' } } },
      valuesFrom,
    },
  };
}

function configMap(namespace: string, name: string, data: Record<string, string>) {
  return { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace }, data };
}

/** Records every event, and the final state, of an informer. */
function recordEvents<T>(informer: Informer<T>) {
  const events: string[] = [];
  informer.on({
    add: (o: Cached<T>) => events.push(`add ${o.name}`),
    update: (_old, o) => events.push(`update ${o.name}`),
    delete: (o) => events.push(`delete ${o.name}`),
  });
  return events;
}

function names<T>(informer: Informer<T>): string[] {
  return [...informer.list()].map((c) => c.name).sort();
}

interface CmMeta {
  hadData: boolean;
  kind: string;
  note: string | undefined;
}

const cmTransform = (raw: unknown): CmMeta => {
  const o = isObject(raw) ? raw : {};
  const meta = isObject(o.metadata) ? o.metadata : {};
  const annotations = isObject(meta.annotations) ? meta.annotations : {};
  return {
    hadData: 'data' in o,
    kind: String(o.kind),
    note: typeof annotations.note === 'string' ? annotations.note : undefined,
  };
};

function cmInformer(client: KubeClient, namespace: string, extra: Partial<InformerOptions<CmMeta>> = {}) {
  return new Informer<CmMeta>({
    client,
    resource: ConfigMaps,
    namespace,
    metadataOnly: true,
    transform: cmTransform,
    logger: log,
    backoff: { initialMs: 100, maxMs: 1000 },
    ...extra,
  });
}

describe('informer on the shared API server', () => {
  let client: KubeClient;
  beforeAll(async () => {
    client = await adminClient();
  });
  afterAll(() => client.close());

  it('sees add, update and delete of a real HelmRelease, parsed', async () => {
    const ns = await createNamespace(client, 'inf-hr');
    const informer = new Informer({
      client,
      resource: HelmReleases,
      namespace: ns,
      transform: (raw) => {
        const hr = parseHelmRelease(raw);
        return hr.ok ? hr.value : undefined;
      },
      logger: log,
    });
    const events = recordEvents(informer);
    informer.start();
    await informer.waitForSync();
    const path = collectionPath(HelmReleases, ns);
    await client.create(path, helmRelease(ns, 'a', [{ kind: 'ConfigMap', name: 'cm' }]));
    await eventually(() => informer.get(ns, 'a'), { what: 'add' });
    expect(informer.get(ns, 'a')?.value.valuesFrom).toEqual([
      { kind: 'ConfigMap', name: 'cm', valuesKey: 'values.yaml', targetPath: '', optional: false },
    ]);
    await client.mergePatch(objectPath(HelmReleases, ns, 'a'), { spec: { suspend: true } });
    await eventually(() => informer.get(ns, 'a')?.value.suspend, { what: 'update' });
    await client.delete(objectPath(HelmReleases, ns, 'a'));
    await eventually(() => informer.get(ns, 'a') === undefined, { what: 'delete' });
    await informer.stop();
    expect(events).toEqual(['add a', 'update a', 'delete a']);
  });

  it('lists and watches ConfigMaps as metadata only (no data is ever received)', async () => {
    const ns = await createNamespace(client, 'inf-cm');
    await client.create(collectionPath(ConfigMaps, ns), configMap(ns, 'before', { 'values.yaml': 'x: 1' }));
    const informer = cmInformer(client, ns);
    const events = recordEvents(informer);
    informer.start();
    await informer.waitForSync();
    await client.create(collectionPath(ConfigMaps, ns), configMap(ns, 'after', { 'values.yaml': 'y: 2' }));
    await client.mergePatch(objectPath(ConfigMaps, ns, 'before'), { data: { 'values.yaml': 'x: 3' } });
    await client.delete(objectPath(ConfigMaps, ns, 'after'));
    await eventually(() => events.length === 4, { what: 'four events' });
    await informer.stop();
    expect(events).toEqual(['add before', 'add after', 'update before', 'delete after']);
    for (const c of informer.list()) {
      expect(c.value.hadData).toBe(false);
      expect(c.value.kind).toBe('PartialObjectMetadata');
    }
  });
});

describe('informer when the API server misbehaves (own control plane)', () => {
  let cp: ControlPlane;
  let client: KubeClient;
  beforeAll(async () => {
    // No watch cache: watches read etcd directly, so compacting etcd expires old resourceVersions (410).
    cp = await startControlPlane({ fluxCRDs: false, apiserverArgs: ['--watch-cache=false'] });
    const kc = new KubeConfig();
    kc.loadFromFile(cp.kubeconfigPath);
    client = await KubeClient.create(kc);
  });
  afterAll(async () => {
    client?.close();
    await cp?.stop();
  });

  it('reaches the final state after kube-apiserver is stopped and started mid-watch', async () => {
    const ns = await createNamespaceIn(client, 'restart');
    const cms = collectionPath(ConfigMaps, ns);
    await client.create(cms, configMap(ns, 'one', { k: '1' }));
    const informer = cmInformer(client, ns);
    informer.start();
    await informer.waitForSync();
    await cp.stopApiserver();
    await new Promise((r) => setTimeout(r, 500));
    await cp.startApiserver();
    await client.create(cms, configMap(ns, 'two', { k: '2' }));
    await client.mergePatch(objectPath(ConfigMaps, ns, 'one'), {
      metadata: { annotations: { note: 'changed' } },
    });
    await eventually(() => informer.get(ns, 'two') && informer.get(ns, 'one')?.value.note === 'changed', {
      timeoutMs: 20_000,
      what: 'final state after restart',
    });
    expect(informer.stats.errors).toBeGreaterThan(0);
    await informer.stop();
  });

  it('relists after 410 and reports exactly the changes it missed', async () => {
    const ns = await createNamespaceIn(client, 'gone');
    const cms = collectionPath(ConfigMaps, ns);
    for (const name of ['kept', 'changed', 'deleted'])
      await client.create(cms, configMap(ns, name, { k: name }));
    const informer = cmInformer(client, ns);
    const events = recordEvents(informer);
    informer.start();
    await informer.waitForSync();
    await informer.stop();
    events.length = 0;
    // While the informer is stopped: changes, then compaction past its resourceVersion.
    await client.mergePatch(objectPath(ConfigMaps, ns, 'changed'), {
      metadata: { annotations: { note: 'v2' } },
    });
    await client.delete(objectPath(ConfigMaps, ns, 'deleted'));
    await client.create(cms, configMap(ns, 'added', { k: 'added' }));
    await cp.compactEtcd();
    informer.start();
    await eventually(() => informer.stats.gone > 0 && informer.get(ns, 'added'), {
      timeoutMs: 15_000,
      what: 'relist after 410',
    });
    await informer.stop();
    expect(names(informer)).toEqual(['added', 'changed', 'kept']);
    expect(events.sort()).toEqual(['add added', 'delete deleted', 'update changed']);
    expect(informer.get(ns, 'changed')?.value.note).toBe('v2');
  });

  it('relists when the API server answers a resumed watch with an error, and sees the change', async () => {
    // Found by the soak (bench/soak): a watch resumed at the revision etcd was compacted at gets its first
    // event without the previous version; kube-apiserver (no watch cache) answers "etcd event received with
    // PrevKv=nil" to every resume from there, and an informer that only resumes stays stale for ever.
    const ns = await createNamespaceIn(client, 'prevkv');
    const path = objectPath(ConfigMaps, ns, 'cm');
    await client.create(collectionPath(ConfigMaps, ns), configMap(ns, 'cm', { k: '0' }));
    const informer = cmInformer(client, ns);
    const rvOf = (o: unknown) =>
      Number((o as { metadata: { resourceVersion: string } }).metadata.resourceVersion);
    informer.start();
    await informer.waitForSync();
    // The informer's last revision must be exactly the one before the change that etcd is compacted at; other
    // writers (the API server's own leases) may take that revision: then try again.
    let compactedAt = 0;
    for (let attempt = 0; attempt < 10 && !compactedAt; attempt++) {
      const seen = rvOf(
        await client.mergePatch(path, { metadata: { annotations: { note: `seen-${attempt}` } } }),
      );
      await eventually(() => informer.get(ns, 'cm')?.resourceVersion === String(seen), {
        what: 'the informer at it',
      });
      await informer.stop();
      const changed = rvOf(await client.mergePatch(path, { metadata: { annotations: { note: 'missed' } } }));
      if (changed === seen + 1) compactedAt = changed;
      else informer.start();
    }
    expect(compactedAt).toBeGreaterThan(0);
    await cp.compactEtcd(compactedAt);
    informer.start();
    await eventually(() => informer.get(ns, 'cm')?.value.note === 'missed', {
      timeoutMs: 20_000,
      what: 'the change, after a relist',
    });
    expect(informer.stats.errors).toBeGreaterThan(0);
    expect(informer.stats.lists).toBeGreaterThan(1);
    await informer.stop();
  });

  it('restarts a watch whose connection went silent (half-open) and sees later changes', async () => {
    const ns = await createNamespaceIn(client, 'stale');
    const proxy = new FreezableProxy(Number(new URL(cp.server).port));
    const port = await proxy.listen();
    const kc = new KubeConfig();
    kc.loadFromFile(cp.kubeconfigPath);
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new Error('no cluster');
    kc.clusters = [{ ...cluster, server: `https://127.0.0.1:${port}` }];
    const viaProxy = await KubeClient.create(kc);
    const informer = cmInformer(viaProxy, ns, { staleAfterMs: 1500 });
    informer.start();
    await informer.waitForSync();
    await new Promise((r) => setTimeout(r, 200));
    expect(proxy.freezeOpenConnections()).toBeGreaterThan(0);
    await client.create(collectionPath(ConfigMaps, ns), configMap(ns, 'late', { k: 'v' }));
    await eventually(() => informer.get(ns, 'late'), {
      timeoutMs: 10_000,
      what: 'change after a silent watch',
    });
    expect(informer.stats.staleRestarts).toBeGreaterThan(0);
    await informer.stop();
    viaProxy.close();
    await proxy.close();
  });
});

async function createNamespaceIn(client: KubeClient, prefix: string): Promise<string> {
  return createNamespace(client, prefix);
}
