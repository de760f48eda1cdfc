import { describe, expect, it } from 'vitest';
import type { ValuesReference, ValuesSourceKind } from '../flux/helmrelease.ts';
import {
  type DigestKeys,
  digestKey,
  keyBytesOf,
  legacyObjectDataDigest,
  legacyValuesDigest,
  objectDataDigest,
  valuesDigestOfBytes,
} from './digest.ts';
import { type FetchObject, type ListObjects, nextPageLimit, type SourceData, ValuesStore } from './store.ts';

const KEYS: DigestKeys = { current: digestKey(new Uint8Array(32).fill(1)) };

/** A stand-in API: objects by kind/namespace/name, a metadata view that can lag behind, GETs counted. */
class World {
  objects = new Map<string, SourceData>();
  meta = new Map<string, string>();
  gets: string[] = [];
  synced = true;
  private rv = 100;
  gate: Promise<void> | undefined;

  put(kind: ValuesSourceKind, name: string, data: Record<string, string>, binaryData = {}, syncMeta = true) {
    const resourceVersion = String(++this.rv);
    this.objects.set(`${kind}/ns/${name}`, { resourceVersion, data, binaryData });
    if (syncMeta) this.meta.set(`${kind}/ns/${name}`, resourceVersion);
  }

  remove(kind: ValuesSourceKind, name: string) {
    this.objects.delete(`${kind}/ns/${name}`);
    this.meta.delete(`${kind}/ns/${name}`);
  }

  view(kind: ValuesSourceKind) {
    return {
      get: (namespace: string, name: string) => {
        const rv = this.meta.get(`${kind}/${namespace}/${name}`);
        return rv === undefined ? undefined : { resourceVersion: rv };
      },
      hasSynced: () => this.synced,
    };
  }

  fetch: FetchObject = async (kind, namespace, name) => {
    this.gets.push(`${kind}/${namespace}/${name}`);
    await this.gate;
    return this.objects.get(`${kind}/${namespace}/${name}`) ?? null;
  };

  keys: DigestKeys | undefined = KEYS;
  list?: ListObjects;

  store() {
    return new ValuesStore({
      sources: { ConfigMap: this.view('ConfigMap'), Secret: this.view('Secret') },
      keys: () => this.keys,
      fetch: this.fetch,
      ...(this.list ? { list: this.list } : {}),
    });
  }

  /** The v2 digest of refs over the objects as they are now (what a fresh store must answer). */
  expected(refs: ValuesReference[]): string {
    return valuesDigestOfBytes(KEYS.current, 'ns', refs, (r) =>
      keyBytesOf(r.kind, this.objects.get(`${r.kind}/ns/${r.name}`), r.valuesKey),
    );
  }
}

const ref = (kind: ValuesSourceKind, name: string, valuesKey = 'values.yaml'): ValuesReference => ({
  kind,
  name,
  valuesKey,
  targetPath: '',
  optional: false,
});

describe('ValuesStore', () => {
  it('asks the API about an object the metadata cache does not know: missing when it is', async () => {
    const w = new World();
    const refs = [ref('ConfigMap', 'absent')];
    const s = w.store();
    expect(await s.valuesDigest('ns', refs)).toBe(w.expected(refs));
    expect(w.gets).toEqual(['ConfigMap/ns/absent']);
    // Nothing kept of it: names nobody created (a tenant's dry-runs) do not grow the store.
    expect(s.size).toBe(0);
  });

  it('reads an object created moments before, which the metadata cache does not know yet (soak finding)', async () => {
    const w = new World();
    const s = w.store();
    const refs = [ref('ConfigMap', 'fresh')];
    const absent = await s.valuesDigest('ns', refs);
    w.put('ConfigMap', 'fresh', { 'values.yaml': 'a: 1' }, {}, false);
    const fresh = await s.valuesDigest('ns', refs);
    expect(fresh).toBe(w.expected(refs));
    expect(fresh).not.toBe(absent);
    // Once the metadata cache knows it at that version, the fetched digests serve it without another GET.
    w.meta.set('ConfigMap/ns/fresh', w.objects.get('ConfigMap/ns/fresh')?.resourceVersion as string);
    expect(await s.valuesDigest('ns', refs)).toBe(fresh);
    expect(w.gets).toEqual(['ConfigMap/ns/fresh', 'ConfigMap/ns/fresh']);
  });

  it('fetches once per resourceVersion and serves repeats from the cache', async () => {
    const w = new World();
    w.put('ConfigMap', 'cm', { 'values.yaml': 'a: 1' });
    const s = w.store();
    const refs = [ref('ConfigMap', 'cm')];
    const first = w.expected(refs);
    for (let i = 0; i < 3; i++) expect(await s.valuesDigest('ns', refs)).toBe(first);
    expect(w.gets).toHaveLength(1);
    w.put('ConfigMap', 'cm', { 'values.yaml': 'a: 2' });
    const second = await s.valuesDigest('ns', refs);
    expect(second).toBe(w.expected(refs));
    expect(second).not.toBe(first);
    expect(w.gets).toHaveLength(2);
  });

  it('shares one GET among concurrent lookups of the same object', async () => {
    const w = new World();
    w.put('Secret', 's', { 'values.yaml': Buffer.from('x: 1').toString('base64') });
    let open: () => void = () => {};
    w.gate = new Promise((r) => {
      open = r;
    });
    const s = w.store();
    const refs = [ref('Secret', 's')];
    const all = Promise.all(Array.from({ length: 10 }, () => s.valuesDigest('ns', refs)));
    await new Promise((r) => setImmediate(r));
    open();
    for (const d of await all) expect(d).toBe(w.expected(refs));
    expect(w.gets).toHaveLength(1);
  });

  it('keeps a 32-byte digest per consumed key, never the bytes, and fetches again for a key not held yet', async () => {
    const w = new World();
    const big = 'x'.repeat(1 << 20);
    w.put('ConfigMap', 'cm', { 'values.yaml': big, other: 'big', more: 'm' });
    const s = w.store();
    await s.valuesDigest('ns', [ref('ConfigMap', 'cm')]);
    const refs = [ref('ConfigMap', 'cm', 'more')];
    expect(await s.valuesDigest('ns', refs)).toBe(w.expected(refs));
    expect(w.gets).toHaveLength(2);
    const both = [ref('ConfigMap', 'cm'), ref('ConfigMap', 'cm', 'more')];
    expect(await s.valuesDigest('ns', both)).toBe(w.expected(both));
    expect(w.gets).toHaveLength(2);
    // White-box: what an entry holds is one digest per consumed key.
    const entries = (s as unknown as { entries: Map<string, { keys: (string | null)[] }> }).entries;
    const held = entries.get('ConfigMap/ns/cm')?.keys ?? [];
    expect(held.map((x, i) => (i % 2 === 0 ? x : x?.length))).toEqual(['values.yaml', 32, 'more', 32]);
  });

  it('reads a ConfigMap key from data only, as Flux does (binaryData is missing), and decodes Secret data', async () => {
    const w = new World();
    w.put('ConfigMap', 'bin', {}, { 'values.yaml': Buffer.from('b: 1').toString('base64') });
    w.put('Secret', 'sec', { 'values.yaml': Buffer.from('s: 1').toString('base64') });
    const refs = [ref('ConfigMap', 'bin'), ref('Secret', 'sec')];
    expect(await w.store().valuesDigest('ns', refs)).toBe(
      valuesDigestOfBytes(KEYS.current, 'ns', refs, (r) =>
        r.kind === 'ConfigMap' ? null : Buffer.from('s: 1'),
      ),
    );
  });

  it('does not refetch while the metadata cache lags behind the version it fetched', async () => {
    const w = new World();
    w.put('ConfigMap', 'cm', { 'values.yaml': 'a: 1' });
    const s = w.store();
    const refs = [ref('ConfigMap', 'cm')];
    const before = await s.valuesDigest('ns', refs);
    w.put('ConfigMap', 'cm', { 'values.yaml': 'a: 2' }, {}, false); // changed; metadata not seen yet
    expect(await s.valuesDigest('ns', refs)).toBe(before);
    expect(w.gets).toHaveLength(1);
  });

  it('treats an object deleted between metadata and GET as missing', async () => {
    const w = new World();
    w.put('ConfigMap', 'cm', { 'values.yaml': 'a: 1' });
    w.objects.delete('ConfigMap/ns/cm');
    const refs = [ref('ConfigMap', 'cm')];
    expect(await w.store().valuesDigest('ns', refs)).toBe(w.expected(refs));
  });

  it('drops held digests when the object changes or goes, keeping them for its own version', async () => {
    const w = new World();
    w.put('ConfigMap', 'cm', { 'values.yaml': 'a: 1' });
    const s = w.store();
    await s.valuesDigest('ns', [ref('ConfigMap', 'cm')]);
    const rv = w.meta.get('ConfigMap/ns/cm') as string;
    s.invalidate('ConfigMap', 'ns', 'cm', rv);
    expect(s.size).toBe(1);
    s.invalidate('ConfigMap', 'ns', 'cm', `${rv}0`);
    expect(s.size).toBe(0);
  });

  it.each<[string, (w: World) => void, RegExp | string]>([
    [
      'before the metadata caches are synced',
      (w) => {
        w.synced = false;
      },
      /not synced/,
    ],
    [
      'while the digest key is not loaded',
      (w) => {
        w.keys = undefined;
      },
      /digest key is not loaded/,
    ],
    [
      'when the GET fails',
      (w) => {
        w.fetch = async () => {
          throw new Error('boom');
        };
      },
      'boom',
    ],
  ])('rejects %s, so no digest is guessed', async (_what, setUp, error) => {
    const w = new World();
    w.put('ConfigMap', 'cm', { 'values.yaml': 'a: 1' });
    setUp(w);
    const s = w.store();
    await expect(s.valuesDigest('ns', [ref('ConfigMap', 'cm')])).rejects.toThrow(error);
    await expect(s.dataDigest('ConfigMap', 'ns', 'cm')).rejects.toThrow(error);
  });

  it.each([
    ['a data change', { data: { a: '1' }, binaryData: {} }, { data: { a: '2' }, binaryData: {} }, false],
    ['a new key', { data: { a: '1' }, binaryData: {} }, { data: { a: '1', b: '' }, binaryData: {} }, false],
    [
      'data moved to binaryData',
      { data: { a: 'x' }, binaryData: {} },
      { data: {}, binaryData: { a: 'x' } },
      false,
    ],
    [
      'key order only',
      { data: { a: '1', b: '2' }, binaryData: {} },
      { data: { b: '2', a: '1' }, binaryData: {} },
      true,
    ],
  ])('objectDataDigest: %s -> same digest: %s', (_name, x, y, same) => {
    const src = { kind: 'ConfigMap' as const, namespace: 'ns', name: 'cm' };
    expect(objectDataDigest(KEYS.current, src, x) === objectDataDigest(KEYS.current, src, y)).toBe(same);
  });

  it('dataDigest fetches once per version and answers missing objects with null', async () => {
    const w = new World();
    w.put('Secret', 'linked', { k: 'djE=' });
    const s = w.store();
    const d1 = await s.dataDigest('Secret', 'ns', 'linked');
    expect(d1).toBe(
      objectDataDigest(
        KEYS.current,
        { kind: 'Secret', namespace: 'ns', name: 'linked' },
        { data: { k: 'djE=' } },
      ),
    );
    expect(await s.dataDigest('Secret', 'ns', 'linked')).toBe(d1);
    expect(w.gets).toHaveLength(1);
    expect(await s.dataDigest('Secret', 'ns', 'absent')).toBeNull();
  });
});

describe('ValuesStore: digests in the format they were stored in (migration, rotation)', () => {
  const refs = [ref('ConfigMap', 'cm'), ref('Secret', 'gone', 'values.yaml')];
  const bytesOf = (w: World) => (r: ValuesReference) =>
    keyBytesOf(r.kind, w.objects.get(`${r.kind}/ns/${r.name}`), r.valuesKey);

  it('computes the v1 digest of the data now with a GET per object, each time (the bytes are not kept)', async () => {
    const w = new World();
    w.put('ConfigMap', 'cm', { 'values.yaml': 'a: 1' });
    const s = w.store();
    const v1 = legacyValuesDigest(refs, bytesOf(w));
    expect(await s.valuesDigestAsStored('ns', refs, v1)).toBe(v1);
    expect(await s.valuesDigestAsStored('ns', refs, v1)).toBe(v1);
    // The missing Secret is asked about too: the metadata cache not knowing it does not prove it is gone.
    expect(w.gets).toEqual(['ConfigMap/ns/cm', 'Secret/ns/gone', 'ConfigMap/ns/cm', 'Secret/ns/gone']);
    expect(s.stats.olderFormat).toBe(2);
    // The fetch also filled the current-format cache: no GET for the ConfigMap (the absent Secret is asked
    // about again: absence is never cached).
    expect(await s.valuesDigest('ns', refs)).toBe(w.expected(refs));
    expect(w.gets.slice(4)).toEqual(['Secret/ns/gone']);
  });

  it('answers a stored v1 digest of older data with the v1 digest of the data now', async () => {
    const w = new World();
    w.put('ConfigMap', 'cm', { 'values.yaml': 'a: 1' });
    const old = legacyValuesDigest(refs, bytesOf(w));
    w.put('ConfigMap', 'cm', { 'values.yaml': 'a: 2' });
    const now = await w.store().valuesDigestAsStored('ns', refs, old);
    expect(now).toBe(legacyValuesDigest(refs, bytesOf(w)));
    expect(now).not.toBe(old);
  });

  it('computes v2 under the previous key for a digest stored under it', async () => {
    const w = new World();
    w.put('ConfigMap', 'cm', { 'values.yaml': 'a: 1' });
    const previous = digestKey(new Uint8Array(32).fill(2));
    w.keys = { current: KEYS.current, previous };
    const stored = valuesDigestOfBytes(previous, 'ns', refs, bytesOf(w));
    expect(await w.store().valuesDigestAsStored('ns', refs, stored)).toBe(stored);
  });

  it.each([
    ['the current format', (w: World) => w.expected(refs)],
    ['an unknown key', () => `hmac-sha256:v2:00000000:${'0'.repeat(64)}`],
    ['nothing stored', () => undefined],
  ])('needs no fetch for %s', async (_what, stored) => {
    const w = new World();
    w.put('ConfigMap', 'cm', { 'values.yaml': 'a: 1' });
    expect(await w.store().valuesDigestAsStored('ns', refs, stored(w))).toBeUndefined();
    expect(w.gets).toEqual([]);
  });

  it('computes the v1 data digest of a linked object, null when it is gone', async () => {
    const w = new World();
    w.put('Secret', 'linked', { k: 'djE=' });
    const s = w.store();
    const v1 = legacyObjectDataDigest({ data: { k: 'djE=' } });
    expect(await s.dataDigestAsStored('Secret', 'ns', 'linked', v1)).toBe(v1);
    expect(await s.dataDigestAsStored('Secret', 'ns', 'absent', v1)).toBeNull();
    expect(await s.dataDigestAsStored('Secret', 'ns', 'linked', 'missing')).toBeUndefined();
  });
});

describe('ValuesStore.prefetch', () => {
  it('sizes LIST pages by what the previous page weighed and keeps digests of the wanted keys', async () => {
    const w = new World();
    const big = 'y'.repeat(1_000_000);
    const names = Array.from({ length: 40 }, (_, i) => `cm-${i}`);
    for (const n of names) w.put('ConfigMap', n, { 'values.yaml': `${n}${big}` });
    const limits: number[] = [];
    w.list = async (kind, _ns, page) => {
      limits.push(page.limit);
      const start = Number(page.continue ?? 0);
      const items = names.slice(start, start + page.limit).map((name) => ({
        name,
        ...(w.objects.get(`${kind}/ns/${name}`) as SourceData),
      }));
      const next = start + page.limit;
      return { items, ...(next < names.length ? { continue: String(next) } : {}) };
    };
    const s = w.store();
    const kept = await s.prefetch('ConfigMap', 'ns', new Map(names.map((n) => [n, ['values.yaml']])));
    expect(kept).toBe(40);
    expect(limits).toEqual([10, 8, 8, 8, 8]);
    const refs = [ref('ConfigMap', 'cm-7')];
    expect(await s.valuesDigest('ns', refs)).toBe(w.expected(refs));
    expect(w.gets).toEqual([]);
  });

  it.each<[string, number, number]>([
    ['no items', 0, 100],
    ['small objects', 1_000, 100],
    ['100 kB objects', 100_000, 83],
    ['1 MB objects', 1_000_000, 8],
    ['objects above the page size', 20_000_000, 1],
  ])('next page limit after %s', (_what, chars, limit) => {
    const items = chars === 0 ? [] : [{ data: { k: 'x'.repeat(chars - 1) }, binaryData: {} }];
    expect(nextPageLimit(items)).toBe(limit);
  });
});
