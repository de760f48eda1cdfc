// Golden vectors of the two digest formats. valuesDigest is stored on every managed release
// (<prefix>/values-digest) and objectDataDigest in <prefix>/link-digests, and both are compared with what
// the operator computes after an upgrade: a change to either encoding (prefix line, field order, length
// prefix, markers) makes every release look changed and triggers all of them at once. Such a change is a
// migration (a new "/v2" prefix line and a plan for the stored values), never an edit of these strings.
import { describe, expect, it } from 'vitest';
import type { ValuesReference } from '../flux/helmrelease.ts';
import { keyBytesOf, valuesDigest } from './digest.ts';
import { objectDataDigest } from './store.ts';

type ObjectData = { data?: Record<string, string>; binaryData?: Record<string, string> };

const b64 = (s: string | Uint8Array) => Buffer.from(s).toString('base64');

/** One namespace's objects, by "Kind/name". */
const objects: Record<string, ObjectData> = {
  'ConfigMap/app-values': { data: { 'values.yaml': 'replicas: 2\n', 'other.yaml': 'x: 1\n' } },
  'ConfigMap/app-binary': { binaryData: { 'values.yaml': b64(new Uint8Array([0, 1, 2, 255, 254])) } },
  'Secret/app-secret': { data: { 'values.yaml': b64('password: hunter2\n') } },
  'ConfigMap/unicode': { data: { 'values.yaml': 'greeting: "Grüße, 世界 🚀"\n' } },
};

const bytesOf = (ref: ValuesReference) =>
  keyBytesOf(ref.kind, objects[`${ref.kind}/${ref.name}`], ref.valuesKey);

const ref = (
  kind: ValuesReference['kind'],
  name: string,
  o: Partial<ValuesReference> = {},
): ValuesReference => ({ kind, name, valuesKey: 'values.yaml', targetPath: '', optional: false, ...o });

describe('valuesDigest format (v1)', () => {
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
      // Was sha256:6b840ad7… (the binaryData bytes) before issue 13: Flux never reads binaryData, so the key
      // is missing and the required entry fails the composition. A fix, not a format change: only releases
      // that consumed a binaryData-only key (which Flux failed with "key not found") see a new digest.
      'a ConfigMap key only in binaryData (missing to Flux; required: the composition fails)',
      [ref('ConfigMap', 'app-binary')],
      'sha256:669072f972b9bd91827dd29b82e641f17f026fc499c5f8585de83ffcba751cc1',
    ],
    [
      'a literal entry with a targetPath',
      [ref('ConfigMap', 'app-values', { targetPath: 'a.b', literal: true })],
      'sha256:edab98c2c312f20e709d550b6d8a530e40974c10d20fdefa6fdb3fa40664b7fd',
    ],
    [
      'a required entry missing between two present ones (only the failing entry counts)',
      [ref('ConfigMap', 'app-values'), ref('Secret', 'absent'), ref('ConfigMap', 'unicode')],
      'sha256:ea8ea399f542a12ccc191a45f3773c5ef59526d4ad70cd1b87761ef0154fb536',
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
    expect(valuesDigest(refs, bytesOf)).toBe(expected);
  });
});

describe('valuesDigest follows what Flux reads', () => {
  const digest = (refs: ValuesReference[]) => valuesDigest(refs, bytesOf);

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

  it('a key only in binaryData digests like a missing key', () => {
    expect(keyBytesOf('ConfigMap', objects['ConfigMap/app-binary'], 'values.yaml')).toBeNull();
    for (const optional of [false, true]) {
      const refs = [ref('ConfigMap', 'app-binary', { optional })];
      expect(digest(refs)).toBe(valuesDigest(refs, () => null));
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
});

describe('objectDataDigest format (v1)', () => {
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
    expect(objectDataDigest(object)).toBe(expected);
  });
});
