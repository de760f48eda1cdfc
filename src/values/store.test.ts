import { describe, expect, it } from 'vitest';
import type { ValuesReference, ValuesSourceKind } from '../flux/helmrelease.ts';
import { valuesDigest } from './digest.ts';
import { type FetchObject, objectDataDigest, type SourceData, ValuesStore } from './store.ts';

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

  store() {
    return new ValuesStore({
      sources: { ConfigMap: this.view('ConfigMap'), Secret: this.view('Secret') },
      fetch: this.fetch,
    });
  }
}

const ref = (kind: ValuesSourceKind, name: string, valuesKey = 'values.yaml'): ValuesReference => ({
  kind,
  name,
  valuesKey,
  targetPath: '',
  optional: false,
});
const text = (b: Uint8Array | null) => (b === null ? null : Buffer.from(b).toString('utf8'));

describe('ValuesStore', () => {
  it('answers an object the metadata cache does not know as missing, without an API call', async () => {
    const w = new World();
    const bytes = await w.store().resolve('ns', [ref('ConfigMap', 'absent')]);
    expect(bytes(ref('ConfigMap', 'absent'))).toBeNull();
    expect(w.gets).toEqual([]);
  });

  it('fetches once per resourceVersion and serves repeats from the cache', async () => {
    const w = new World();
    w.put('ConfigMap', 'cm', { 'values.yaml': 'a: 1' });
    const s = w.store();
    for (let i = 0; i < 3; i++) {
      const bytes = await s.resolve('ns', [ref('ConfigMap', 'cm')]);
      expect(text(bytes(ref('ConfigMap', 'cm')))).toBe('a: 1');
    }
    expect(w.gets).toHaveLength(1);
    w.put('ConfigMap', 'cm', { 'values.yaml': 'a: 2' });
    const bytes = await s.resolve('ns', [ref('ConfigMap', 'cm')]);
    expect(text(bytes(ref('ConfigMap', 'cm')))).toBe('a: 2');
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
    const all = Promise.all(Array.from({ length: 10 }, () => s.resolve('ns', [ref('Secret', 's')])));
    await new Promise((r) => setImmediate(r));
    open();
    for (const bytes of await all) expect(text(bytes(ref('Secret', 's')))).toBe('x: 1');
    expect(w.gets).toHaveLength(1);
  });

  it('keeps only the consumed keys, and fetches again for a key not held yet', async () => {
    const w = new World();
    w.put('ConfigMap', 'cm', { 'values.yaml': 'a: 1', other: 'big', more: 'm' });
    const s = w.store();
    await s.resolve('ns', [ref('ConfigMap', 'cm')]);
    const bytes = await s.resolve('ns', [ref('ConfigMap', 'cm', 'more')]);
    expect(text(bytes(ref('ConfigMap', 'cm', 'more')))).toBe('m');
    expect(w.gets).toHaveLength(2);
    await s.resolve('ns', [ref('ConfigMap', 'cm'), ref('ConfigMap', 'cm', 'more')]);
    expect(w.gets).toHaveLength(2);
  });

  it('reads a ConfigMap key from data only, as Flux does (binaryData is missing), and decodes Secret data', async () => {
    const w = new World();
    w.put('ConfigMap', 'bin', {}, { 'values.yaml': Buffer.from('b: 1').toString('base64') });
    w.put('Secret', 'sec', { 'values.yaml': Buffer.from('s: 1').toString('base64') });
    const bytes = await w.store().resolve('ns', [ref('ConfigMap', 'bin'), ref('Secret', 'sec')]);
    expect(bytes(ref('ConfigMap', 'bin'))).toBeNull();
    expect(text(bytes(ref('Secret', 'sec')))).toBe('s: 1');
  });

  it('does not refetch while the metadata cache lags behind the version it fetched', async () => {
    const w = new World();
    w.put('ConfigMap', 'cm', { 'values.yaml': 'a: 1' });
    const s = w.store();
    await s.resolve('ns', [ref('ConfigMap', 'cm')]);
    w.put('ConfigMap', 'cm', { 'values.yaml': 'a: 2' }, {}, false); // changed; metadata not seen yet
    const stale = await s.resolve('ns', [ref('ConfigMap', 'cm')]);
    expect(text(stale(ref('ConfigMap', 'cm')))).toBe('a: 1');
    expect(w.gets).toHaveLength(1);
  });

  it('treats an object deleted between metadata and GET as missing', async () => {
    const w = new World();
    w.put('ConfigMap', 'cm', { 'values.yaml': 'a: 1' });
    w.objects.delete('ConfigMap/ns/cm');
    const bytes = await w.store().resolve('ns', [ref('ConfigMap', 'cm')]);
    expect(bytes(ref('ConfigMap', 'cm'))).toBeNull();
  });

  it('drops held data when the object changes or goes, keeping it for its own version', () => {
    const w = new World();
    w.put('ConfigMap', 'cm', { 'values.yaml': 'a: 1' });
    const s = w.store();
    return s.resolve('ns', [ref('ConfigMap', 'cm')]).then(() => {
      const rv = w.meta.get('ConfigMap/ns/cm') as string;
      s.invalidate('ConfigMap', 'ns', 'cm', rv);
      expect(s.size).toBe(1);
      s.invalidate('ConfigMap', 'ns', 'cm', `${rv}0`);
      expect(s.size).toBe(0);
    });
  });

  it('rejects lookups before the metadata caches are synced', async () => {
    const w = new World();
    w.synced = false;
    await expect(w.store().resolve('ns', [ref('ConfigMap', 'cm')])).rejects.toThrow(/not synced/);
  });

  it('rejects when the GET fails, so no digest is guessed', async () => {
    const w = new World();
    w.put('ConfigMap', 'cm', { 'values.yaml': 'a: 1' });
    w.fetch = async () => {
      throw new Error('boom');
    };
    await expect(w.store().resolve('ns', [ref('ConfigMap', 'cm')])).rejects.toThrow('boom');
  });

  it('gives the same digest as valuesDigest over the raw objects', async () => {
    const w = new World();
    w.put('ConfigMap', 'cm', { 'values.yaml': 'a: 1' });
    const refs = [ref('ConfigMap', 'cm'), ref('Secret', 'gone')];
    const bytes = await w.store().resolve('ns', refs);
    expect(valuesDigest(refs, bytes)).toBe(
      valuesDigest(refs, (r) => (r.kind === 'ConfigMap' ? Buffer.from('a: 1') : null)),
    );
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
    expect(objectDataDigest(x) === objectDataDigest(y)).toBe(same);
  });

  it('dataDigest fetches once per version and answers missing objects with null', async () => {
    const w = new World();
    w.put('Secret', 'linked', { k: 'djE=' });
    const s = w.store();
    const d1 = await s.dataDigest('Secret', 'ns', 'linked');
    expect(await s.dataDigest('Secret', 'ns', 'linked')).toBe(d1);
    expect(w.gets).toHaveLength(1);
    expect(await s.dataDigest('Secret', 'ns', 'absent')).toBeNull();
  });
});
