// Golden vectors of the digest formats. The values digest is stored on every managed release
// (<prefix>/values-digest) and the data digest in <prefix>/link-digests, and both are compared with what
// the operator computes after an upgrade: a change to an encoding (prefix line, field order, length
// prefix, markers) makes every release look changed and triggers all of them at once. Such a change is a
// migration (a new format, and the old one kept to recognise what is stored: docs/adr/0010-keyed-digests.md),
// never an edit of these strings. v1 (unkeyed sha256) is kept for that migration; v2 is HMAC-SHA256 under
// the cluster's digest key, pinned here under a fixed test key.
import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { ValuesReference } from '../flux/helmrelease.ts';
import {
  type DigestKeys,
  digestKey,
  keyBytesOf,
  keyDigest,
  legacyKeyBytesOf,
  legacyObjectDataDigest,
  legacyValuesDigest,
  objectDataDigest,
  olderFormatOf,
  valuesDigest,
  valuesDigestOfBytes,
} from './digest.ts';

type ObjectData = { data?: Record<string, string>; binaryData?: Record<string, string> };

const b64 = (s: string | Uint8Array) => Buffer.from(s).toString('base64');

/** One namespace's objects, by "Kind/name". */
const objects: Record<string, ObjectData> = {
  'ConfigMap/app-values': { data: { 'values.yaml': 'replicas: 2\n', 'other.yaml': 'x: 1\n' } },
  'ConfigMap/app-binary': { binaryData: { 'values.yaml': b64(new Uint8Array([0, 1, 2, 255, 254])) } },
  'Secret/app-secret': { data: { 'values.yaml': b64('password: hunter2\n') } },
  'ConfigMap/unicode': { data: { 'values.yaml': 'greeting: "Grüße, 世界 🚀"\n' } },
};

/** The bytes as Flux reads them (data only): what v2 digests cover. */
const bytesOf = (ref: ValuesReference) =>
  keyBytesOf(ref.kind, objects[`${ref.kind}/${ref.name}`], ref.valuesKey);

/** The bytes as v1 read them (a ConfigMap's binaryData too): stored v1 digests must still match. */
const legacyBytesOf = (ref: ValuesReference) =>
  legacyKeyBytesOf(ref.kind, objects[`${ref.kind}/${ref.name}`], ref.valuesKey);

const ref = (
  kind: ValuesReference['kind'],
  name: string,
  o: Partial<ValuesReference> = {},
): ValuesReference => ({ kind, name, valuesKey: 'values.yaml', targetPath: '', optional: false, ...o });

describe('legacyValuesDigest format (v1)', () => {
  it.each<[string, ValuesReference[], string]>([
    ['no entries', [], 'sha256:eccc2a2e466491576cf63e87af48db3fa5649a23e63744fa2715b1b6e1bd90d8'],
    [
      'a ConfigMap key',
      [ref('ConfigMap', 'app-values')],
      'sha256:651bba13032b102c44ba7a5dcbf946d6757f9156d554d29cab054dcbda775f1d',
    ],
    [
      'a Secret key (base64-decoded bytes)',
      [ref('Secret', 'app-secret')],
      'sha256:cf1b309f5f9de3e9e3ed00ccba6b59c63573654a086455e2499aa1685d5ac7f8',
    ],
    [
      'a ConfigMap binaryData key with non-UTF-8 bytes',
      [ref('ConfigMap', 'app-binary')],
      'sha256:6b840ad779506a42505c00b22041642759874a5018c2adfe991630440ad854e8',
    ],
    [
      'an optional entry',
      [ref('ConfigMap', 'app-values', { optional: true })],
      'sha256:87ced6bc4ed48bff79f61460947faf75718a721286d740d1f68263ace3af814b',
    ],
    [
      'another valuesKey with a targetPath',
      [ref('ConfigMap', 'app-values', { valuesKey: 'other.yaml', targetPath: 'a.b' })],
      'sha256:07a5c1335383cd6d5ae4e7e141ab59ee1df36e421920a733b7b2a44aa2f6af88',
    ],
    [
      'a missing key of an existing object',
      [ref('ConfigMap', 'app-values', { valuesKey: 'nope.yaml', optional: true })],
      'sha256:fa66af74a3f750d1123efec21e00e1318fcad6eef32d7597cfed3a68f1a8d360',
    ],
    [
      'a missing object',
      [ref('Secret', 'absent', { optional: true })],
      'sha256:98593479b15605ced8b7e8f05910a5f511341cd7052637779c7340438ed26162',
    ],
    [
      'non-ASCII data',
      [ref('ConfigMap', 'unicode')],
      'sha256:eea61fd8171105c7c1f0bfd1341a5b42eb7e8c42d1533c613c9eb726c49ebb5c',
    ],
    [
      'several entries',
      [
        ref('ConfigMap', 'app-values'),
        ref('Secret', 'app-secret', { targetPath: 'auth' }),
        ref('ConfigMap', 'unicode', { optional: true }),
      ],
      'sha256:cbe5e7aa843bcf4a6f7f52a75d1155c485a0fb0b92ba337c5fb31e2b3096bc2b',
    ],
    [
      'the same entries in reverse order',
      [
        ref('ConfigMap', 'unicode', { optional: true }),
        ref('Secret', 'app-secret', { targetPath: 'auth' }),
        ref('ConfigMap', 'app-values'),
      ],
      'sha256:a2552c0c633a57e47d338e4b40d5eb77b486fb828a0516c45bce9db437cdb547',
    ],
  ])('%s', (_, refs, expected) => {
    expect(legacyValuesDigest(refs, legacyBytesOf)).toBe(expected);
  });
});

describe('legacyObjectDataDigest format (v1)', () => {
  it.each<[string, { data: Record<string, string>; binaryData: Record<string, string> }, string]>([
    [
      'no data',
      { data: {}, binaryData: {} },
      'sha256:ffa72bc0746312577dc24f5910ed03b48f3448a9c1e8c6a77dbbedbb45c7a5ea',
    ],
    [
      'data keys (sorted before hashing)',
      { data: { 'values.yaml': 'replicas: 2\n', 'a.yaml': 'x: 1\n' }, binaryData: {} },
      'sha256:1666d6af3e56a17db243e89d83879b188ced7afc9acdf47d726f4d99227b871c',
    ],
    [
      'data and binaryData (as stored, base64)',
      { data: { 'values.yaml': 'replicas: 2\n' }, binaryData: { blob: 'AAEC/w==' } },
      'sha256:1a7a6da5531063fe50abaec1b6c07282af8248b63d33953bc630dd38b0abd9cb',
    ],
    [
      'a non-ASCII key and value',
      { data: { 'grüße.yaml': 'greeting: "Grüße, 世界 🚀"\n' }, binaryData: {} },
      'sha256:9ce952924edbb9988a7edded88fa0e31a451e7c76dfd4d4d840f0641917ea6fd',
    ],
  ])('%s', (_, object, expected) => {
    expect(legacyObjectDataDigest(object)).toBe(expected);
  });
});

/** The fixed test key: bytes 0x00..0x1f. Its id is pinned below. */
const KEY = digestKey(Uint8Array.from({ length: 32 }, (_, i) => i));
const OTHER_KEY = digestKey(Uint8Array.from({ length: 32 }, (_, i) => 255 - i));

describe('digest keys', () => {
  it('a key id is a fingerprint of the key: 8 hex digits of HMAC(key, "helmrelease-autopilot/key-id")', () => {
    expect(KEY.id).toBe('60dd9d79');
    expect(KEY.id).toBe(
      createHmac('sha256', KEY.secret).update('helmrelease-autopilot/key-id').digest('hex').slice(0, 8),
    );
    expect(OTHER_KEY.id).not.toBe(KEY.id);
  });

  it('refuses a key shorter than 256 bits', () => {
    expect(() => digestKey(new Uint8Array(31))).toThrow(/at least 32 bytes/);
  });
});

describe('valuesDigest format (v2, keyed)', () => {
  const v2 = (refs: ValuesReference[], namespace = 'apps') =>
    valuesDigestOfBytes(KEY, namespace, refs, bytesOf);
  it.each<[string, ValuesReference[], string]>([
    [
      'no entries',
      [],
      'hmac-sha256:v2:60dd9d79:7a37ef7014c9ecfa810d384b7718346ffdb865c71f4c89cb7e05fcbd333dbdf6',
    ],
    [
      'a ConfigMap key',
      [ref('ConfigMap', 'app-values')],
      'hmac-sha256:v2:60dd9d79:1a264c1de5f3151d7861768954f6959c65ddb7ff968753844700fd9f3dc8cbb4',
    ],
    [
      'a Secret key (base64-decoded bytes)',
      [ref('Secret', 'app-secret')],
      'hmac-sha256:v2:60dd9d79:6a6bcebbaa2635419d97337244fb4ebc1e17c013e2444e13693b2fbca9aadd9c',
    ],
    [
      'an optional entry',
      [ref('ConfigMap', 'app-values', { optional: true })],
      'hmac-sha256:v2:60dd9d79:94e603d3358851c6c439197f4f047e797450630486ed4f930deaa437be54a387',
    ],
    [
      'a missing object',
      [ref('Secret', 'absent', { optional: true })],
      'hmac-sha256:v2:60dd9d79:3749d4278e58cea157d9d7ed04c1779f2bc99205f65f7ebea4a10f784afb9c1c',
    ],
    [
      'several entries',
      [
        ref('ConfigMap', 'app-values'),
        ref('Secret', 'app-secret', { targetPath: 'auth' }),
        ref('ConfigMap', 'unicode', { optional: true }),
      ],
      'hmac-sha256:v2:60dd9d79:8777db6c9546ccebae9507a3659a54bd605da23dc785333ceff6260dd749a3c4',
    ],
  ])('%s', (_, refs, expected) => {
    expect(v2(refs)).toBe(expected);
  });

  it('is "hmac-sha256:v2:<key id>:<hex>", computed as the ADR says', () => {
    const enc = (h: ReturnType<typeof createHmac>, fields: (string | Uint8Array)[]) => {
      for (const f of fields) {
        const b = typeof f === 'string' ? Buffer.from(f) : f;
        const len = Buffer.alloc(8);
        len.writeBigUInt64BE(BigInt(b.byteLength));
        h.update(len).update(b);
      }
      return h;
    };
    const kd = enc(createHmac('sha256', KEY.secret).update('helmrelease-autopilot/key-digest/v2\n'), [
      'apps',
      'Secret',
      'app-secret',
      'values.yaml',
      'password: hunter2\n',
    ]).digest();
    const mac = enc(createHmac('sha256', KEY.secret).update('helmrelease-autopilot/values-digest/v2\n'), [
      'apps',
      'Secret',
      'app-secret',
      'values.yaml',
      '',
      'required',
      'present',
      kd,
    ]).digest('hex');
    expect(v2([ref('Secret', 'app-secret')])).toBe(`hmac-sha256:v2:${KEY.id}:${mac}`);
  });

  it('equal bytes in two namespaces never give equal digests', () => {
    const refs = [ref('Secret', 'app-secret')];
    expect(v2(refs, 'team-a')).not.toBe(v2(refs, 'team-b'));
    const src = (namespace: string) => ({ kind: 'Secret' as const, namespace, name: 'app-secret' });
    const bytes = Buffer.from('password: hunter2\n');
    expect(keyDigest(KEY, src('team-a'), 'values.yaml', bytes)).not.toEqual(
      keyDigest(KEY, src('team-b'), 'values.yaml', bytes),
    );
  });

  it('another key gives another digest, and nothing is shared with v1', () => {
    const refs = [ref('ConfigMap', 'app-values')];
    const other = valuesDigestOfBytes(OTHER_KEY, 'apps', refs, bytesOf);
    expect(other).not.toBe(v2(refs));
    expect(other.split(':').at(-1)).not.toBe(legacyValuesDigest(refs, legacyBytesOf).slice('sha256:'.length));
  });

  it('is computed from the per-key digests alone (what the values store keeps)', () => {
    const refs = [ref('ConfigMap', 'app-values'), ref('Secret', 'absent', { optional: true })];
    const kds = new Map(
      refs.map((r) => [
        r.name,
        keyDigest(KEY, { kind: r.kind, namespace: 'apps', name: r.name }, r.valuesKey, bytesOf(r)),
      ]),
    );
    expect(valuesDigest(KEY, 'apps', refs, (r) => kds.get(r.name) ?? null)).toBe(v2(refs));
  });
});

describe('valuesDigest (v2) follows what Flux reads', () => {
  const digest = (refs: ValuesReference[]) => valuesDigestOfBytes(KEY, 'apps', refs, bytesOf);

  it('literal without a targetPath is ignored, as Flux ignores it', () => {
    expect(digest([ref('ConfigMap', 'app-values', { literal: true })])).toBe(
      digest([ref('ConfigMap', 'app-values')]),
    );
  });

  it('literal with a targetPath is part of the digest', () => {
    expect(digest([ref('ConfigMap', 'app-values', { targetPath: 'a', literal: true })])).not.toBe(
      digest([ref('ConfigMap', 'app-values', { targetPath: 'a' })]),
    );
  });

  it('a key only in binaryData digests like a missing key (v1 read it: its stored digests still match)', () => {
    expect(keyBytesOf('ConfigMap', objects['ConfigMap/app-binary'], 'values.yaml')).toBeNull();
    expect(legacyKeyBytesOf('ConfigMap', objects['ConfigMap/app-binary'], 'values.yaml')).toEqual(
      Buffer.from([0, 1, 2, 255, 254]),
    );
    for (const optional of [false, true]) {
      const refs = [ref('ConfigMap', 'app-binary', { optional })];
      expect(digest(refs)).toBe(valuesDigestOfBytes(KEY, 'apps', refs, () => null));
    }
  });

  it('while a required entry is missing, the other entries do not count; its return does', () => {
    const failing = [ref('ConfigMap', 'app-values'), ref('Secret', 'absent')];
    const otherData = [ref('ConfigMap', 'unicode'), ref('Secret', 'absent')];
    expect(digest(failing)).toBe(digest(otherData));
    expect(digest(failing)).toBe(digest([ref('Secret', 'absent')]));
    expect(digest(failing)).not.toBe(digest([ref('ConfigMap', 'app-values'), ref('Secret', 'app-secret')]));
  });

  it('an optional missing entry is skipped and the others count', () => {
    const a = [ref('ConfigMap', 'app-values'), ref('Secret', 'absent', { optional: true })];
    const b = [ref('ConfigMap', 'unicode'), ref('Secret', 'absent', { optional: true })];
    expect(digest(a)).not.toBe(digest(b));
  });

  it('the per-key digests follow the same rules (a failing composition from the store)', () => {
    const refs = [ref('ConfigMap', 'app-values'), ref('Secret', 'absent')];
    const kds = (r: ValuesReference) =>
      keyDigest(KEY, { kind: r.kind, namespace: 'apps', name: r.name }, r.valuesKey, bytesOf(r));
    expect(valuesDigest(KEY, 'apps', refs, kds)).toBe(digest(refs));
  });
});

describe('objectDataDigest format (v2, keyed)', () => {
  const src = { kind: 'ConfigMap' as const, namespace: 'apps', name: 'linked' };
  it.each<[string, { data: Record<string, string>; binaryData: Record<string, string> }, string]>([
    [
      'no data',
      { data: {}, binaryData: {} },
      'hmac-sha256:v2:60dd9d79:d46d875c5bd659f0ffd10ad999dac895ba23a17b5c59e81cc8acd3195ea62b55',
    ],
    [
      'data and binaryData',
      { data: { 'values.yaml': 'replicas: 2\n' }, binaryData: { blob: 'AAEC/w==' } },
      'hmac-sha256:v2:60dd9d79:a120121b3078b63f647af1daef059bcb18229e7c398bd812b4e28abc63f3508d',
    ],
  ])('%s', (_, object, expected) => {
    expect(objectDataDigest(KEY, src, object)).toBe(expected);
  });

  it('binds the digest to the object: the same data in another namespace or name differs', () => {
    const data = { data: { a: '1' } };
    const d = objectDataDigest(KEY, src, data);
    expect(objectDataDigest(KEY, { ...src, namespace: 'other' }, data)).not.toBe(d);
    expect(objectDataDigest(KEY, { ...src, name: 'other' }, data)).not.toBe(d);
    expect(objectDataDigest(KEY, { ...src, kind: 'Secret' }, data)).not.toBe(d);
  });
});

describe('olderFormatOf: which stored digests are compared in their own format', () => {
  const keys: DigestKeys = { current: KEY, previous: OTHER_KEY };
  const hex = 'ab'.repeat(32);
  it.each<[string, string | undefined, DigestKeys, string | undefined]>([
    ['none stored', undefined, keys, undefined],
    ['v1', `sha256:${hex}`, keys, 'v1'],
    ['v2 under the current key', `hmac-sha256:v2:${KEY.id}:${hex}`, keys, undefined],
    ['v2 under the previous key', `hmac-sha256:v2:${OTHER_KEY.id}:${hex}`, keys, `v2:${OTHER_KEY.id}`],
    [
      'v2 under a previous key no longer configured',
      `hmac-sha256:v2:${OTHER_KEY.id}:${hex}`,
      { current: KEY },
      undefined,
    ],
    ['v2 under an unknown key', `hmac-sha256:v2:00000000:${hex}`, keys, undefined],
    ['a tombstone', 'missing', keys, undefined],
    ['malformed v1', 'sha256:abc', keys, undefined],
    ['upper-case hex', `sha256:${hex.toUpperCase()}`, keys, undefined],
  ])('%s', (_, stored, k, expected) => {
    const f = olderFormatOf(stored, k);
    expect(f === undefined ? undefined : f.version === 'v1' ? 'v1' : `v2:${f.key.id}`).toBe(expected);
  });
});
