// The shared caches and the values store against a real API server: metadata-only watches keep no data,
// lookups fetch only what is referenced and stale, and changes are seen through the watch.
import { afterEach, describe, expect, it } from 'vitest';
import type { ValuesReference } from '../../src/flux/helmrelease.ts';
import { type CachesOptions, createCaches, type OperatorCaches } from '../../src/kube/caches.ts';
import type { KubeClient } from '../../src/kube/client.ts';
import { ConfigMaps, collectionPath, objectPath, Secrets } from '../../src/kube/resources.ts';
import { Annotations } from '../../src/names.ts';
import { keyBytesOf, valuesDigestOfBytes } from '../../src/values/digest.ts';
import { adminClient, createNamespace, eventually } from '../support/cluster.ts';
import { TEST_DIGEST_KEYS, testDigestKeys } from '../support/digest-key.ts';
import { testLogger } from '../support/log.ts';

const ref = (kind: 'ConfigMap' | 'Secret', name: string, valuesKey = 'values.yaml'): ValuesReference => ({
  kind,
  name,
  valuesKey,
  targetPath: '',
  optional: false,
});
/** The digest of refs over these objects ("Kind/name" -> data), as the store must answer it. */
const expected = (ns: string, refs: ValuesReference[], objects: Record<string, Record<string, string>>) =>
  valuesDigestOfBytes(TEST_DIGEST_KEYS.current, ns, refs, (r) =>
    keyBytesOf(
      r.kind,
      objects[`${r.kind}/${r.name}`] ? { data: objects[`${r.kind}/${r.name}`] } : undefined,
      r.valuesKey,
    ),
  );

const started: OperatorCaches[] = [];
const clients: KubeClient[] = [];
afterEach(async () => {
  await Promise.all(started.splice(0).map((c) => c.stop()));
  for (const c of clients.splice(0)) c.close();
});

async function newClient(): Promise<KubeClient> {
  const c = await adminClient();
  clients.push(c);
  return c;
}

async function startCaches(o: Omit<CachesOptions, 'logger' | 'digestKeys'>): Promise<OperatorCaches> {
  const caches = createCaches({ ...o, logger: testLogger(), digestKeys: testDigestKeys });
  started.push(caches);
  caches.start();
  await caches.waitForSync();
  return caches;
}

describe('shared caches and values store', () => {
  it('keep no data in the metadata caches and fetch only referenced objects', async () => {
    const client = await newClient();
    const ns = await createNamespace(client, 'trg-store');
    await client.create(collectionPath(ConfigMaps, ns), {
      metadata: { name: 'cm', annotations: { [Annotations.linkReleases]: 'a, b', unrelated: 'x' } },
      data: { 'values.yaml': 'a: 1', other: 'o' },
    });
    await client.create(collectionPath(Secrets, ns), {
      metadata: { name: 'big' },
      data: { release: Buffer.alloc(512 * 1024, 7).toString('base64') },
    });
    const caches = await startCaches({ client, namespaces: [ns] });

    const cm = caches.configMaps.get(ns, 'cm');
    expect(cm?.value).toEqual({ links: { [Annotations.linkReleases]: 'a, b' } });
    expect(caches.secrets.get(ns, 'big')?.value).toEqual({ links: {} });

    const refs = [ref('ConfigMap', 'cm'), ref('Secret', 'absent')];
    expect(await caches.values.valuesDigest(ns, refs)).toBe(
      expected(ns, refs, { 'ConfigMap/cm': { 'values.yaml': 'a: 1', other: 'o' } }),
    );
    // The absent Secret is asked about (the metadata cache not knowing it does not prove it is gone).
    expect(caches.values.stats.fetches).toBe(2);
    expect(caches.values.size).toBe(1); // nothing kept of the absent one (made-up names must not grow it)
  });

  it('read an object created moments before, which the metadata cache does not know yet (soak finding d)', async () => {
    // The soak created a ConfigMap and at once a release consuming it: the webhook's store answered "missing"
    // from its metadata cache, stamped that digest, and the reconciler (which knew the ConfigMap by then)
    // triggered a release whose data never changed. A lookup right after the create must see the object.
    const client = await newClient();
    const ns = await createNamespace(client, 'trg-store');
    const caches = await startCaches({ client, namespaces: [ns] });
    for (let i = 0; i < 20; i++) {
      const refs = [ref('ConfigMap', `fresh-${i}`)];
      const data = { 'values.yaml': `n: ${i}` };
      await client.create(collectionPath(ConfigMaps, ns), { metadata: { name: `fresh-${i}` }, data });
      expect(await caches.values.valuesDigest(ns, refs)).toBe(
        expected(ns, refs, { [`ConfigMap/fresh-${i}`]: data }),
      );
    }
    expect(caches.values.stats.missingFromMetadata).toBeGreaterThan(0);
  });

  it('see a data change through the watch and fetch the new version once', async () => {
    const client = await newClient();
    const ns = await createNamespace(client, 'trg-store');
    await client.create(collectionPath(ConfigMaps, ns), {
      metadata: { name: 'cm' },
      data: { 'values.yaml': 'a: 1' },
    });
    const caches = await startCaches({ client, namespaces: [ns] });
    const refs = [ref('ConfigMap', 'cm')];
    await caches.values.valuesDigest(ns, refs);
    await client.mergePatch(objectPath(ConfigMaps, ns, 'cm'), { data: { 'values.yaml': 'a: 2' } });
    const now = expected(ns, refs, { 'ConfigMap/cm': { 'values.yaml': 'a: 2' } });
    await eventually(async () => (await caches.values.valuesDigest(ns, refs)) === now, {
      what: 'the digest of the new value',
    });
    const fetches = caches.values.stats.fetches;
    await caches.values.valuesDigest(ns, refs);
    expect(caches.values.stats.fetches).toBe(fetches);
  });

  it('prefetch loads many objects with a paged LIST; later lookups need no GET', async () => {
    const client = await newClient();
    const ns = await createNamespace(client, 'trg-store');
    for (let i = 0; i < 30; i++) {
      await client.create(collectionPath(Secrets, ns), {
        metadata: { name: `s-${i}` },
        data: { 'values.yaml': Buffer.from(`n: ${i}`).toString('base64'), other: 'eA==' },
      });
    }
    await client.create(collectionPath(Secrets, ns), {
      metadata: { name: 'sh.helm.release.v1.app.v1', labels: { owner: 'helm' } },
      data: { release: Buffer.alloc(1024).toString('base64') },
    });
    const caches = await startCaches({ client, namespaces: [ns] });
    const wanted = new Map<string, string[]>(
      Array.from({ length: 30 }, (_, i) => [`s-${i}`, ['values.yaml']]),
    );
    wanted.set('sh.helm.release.v1.app.v1', ['release']);
    const kept = await caches.values.prefetch('Secret', ns, wanted, 'owner!=helm');
    expect(kept).toBe(30); // the Helm release Secret is not listed
    const refs = Array.from({ length: 30 }, (_, i) => ref('Secret', `s-${i}`));
    expect(await caches.values.valuesDigest(ns, refs)).toBe(
      expected(
        ns,
        refs,
        Object.fromEntries(
          Array.from({ length: 30 }, (_, i) => [
            `Secret/s-${i}`,
            { 'values.yaml': Buffer.from(`n: ${i}`).toString('base64') },
          ]),
        ),
      ),
    );
    expect(caches.values.stats.fetches).toBe(0);
  });
});
