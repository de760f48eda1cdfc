// The digests the operator stores on releases, and their formats (docs/adr/0010-keyed-digests.md):
// - v2, current: "hmac-sha256:v2:<key id>:<hex>", an HMAC-SHA256 under the cluster's digest key over
//   length-prefixed fields that include the source's namespace, so a digest can be computed only by the
//   operator and equal bytes in two namespaces never give equal digests. The values digest is an HMAC over
//   the reference fields and one keyed digest per consumed key: the values store keeps those, never bytes.
// - v1, legacy: "sha256:<hex>", unkeyed. Computed only to migrate releases stamped before v2 (a v1 digest
//   that matches the current data is re-stamped in v2 without a reconcile).
// The webhook and the reconciler both get the values digest from the values store, which calls
// valuesDigest below, so they can never disagree.
import { createHash, createHmac, type Hash, type Hmac } from 'node:crypto';
import type { ValuesReference, ValuesSourceKind } from '../flux/helmrelease.ts';
import { fluxReads, literalApplies } from './reads.ts';

/** Bytes of ref.valuesKey in the referenced object, or null when the object or the key is missing. */
export type KeyBytes = (ref: ValuesReference) => Uint8Array | null;

/** The keyed digest of ref.valuesKey (keyDigest), or null when the object or the key is missing. */
export type KeyDigests = (ref: ValuesReference) => Uint8Array | null;

/** A ConfigMap or Secret, by kind, namespace and name. */
export interface SourceObject {
  kind: ValuesSourceKind;
  namespace: string;
  name: string;
}

/** What digests are taken over: a ConfigMap's or Secret's data and binaryData, as the API returns them. */
export interface ObjectData {
  data?: Record<string, string>;
  binaryData?: Record<string, string>;
}

/** A digest key: its secret bytes and its id, a non-secret fingerprint written into every v2 digest. */
export interface DigestKey {
  readonly id: string;
  readonly secret: Uint8Array;
}

/** The key digests are made with, and the one it replaced (kept during a rotation; see the ADR). */
export interface DigestKeys {
  current: DigestKey;
  previous?: DigestKey;
  /**
   * When the key Secret was created (ms): the operator's installation. A release created later without our
   * stamp was admitted while no webhook answered (src/kube/created.ts).
   */
  since?: number;
}

/** Bytes of a digest key: 256 random bits. */
export const DIGEST_KEY_BYTES = 32;

export const V1_PREFIX = 'sha256:';
export const V2_PREFIX = 'hmac-sha256:v2:';

/** A key and its id: the first 8 hex digits of HMAC(key, "helmrelease-autopilot/key-id"), never data. */
export function digestKey(secret: Uint8Array): DigestKey {
  if (secret.byteLength < DIGEST_KEY_BYTES)
    throw new Error(`a digest key must have at least ${DIGEST_KEY_BYTES} bytes, not ${secret.byteLength}`);
  const id = createHmac('sha256', secret).update('helmrelease-autopilot/key-id').digest('hex').slice(0, 8);
  return { id, secret };
}

/**
 * Feeds a format line, then fields, to a hash: each field is its byte length (8 bytes, big endian) then its
 * bytes (strings as UTF-8), so no two different field lists share an encoding. The one encoder behind every
 * digest we store: its output must never change (see the golden vectors in digest.test.ts).
 */
function encodeFields(
  h: Hash | Hmac,
  format: string,
  write: (field: (b: Uint8Array | string) => void) => void,
): void {
  h.update(format);
  write((b) => {
    const buf = typeof b === 'string' ? Buffer.from(b, 'utf8') : b;
    const len = Buffer.alloc(8);
    len.writeBigUInt64BE(BigInt(buf.byteLength));
    h.update(len);
    h.update(buf);
  });
}

/** v1: an unkeyed sha256 over the encoded fields, as "sha256:<hex>". */
function legacyFieldDigest(format: string, write: Parameters<typeof encodeFields>[2]): string {
  const h = createHash('sha256');
  encodeFields(h, format, write);
  return V1_PREFIX + h.digest('hex');
}

/** v2: HMAC-SHA256 under `key` over the encoded fields (raw bytes). */
function keyedFieldDigest(key: DigestKey, format: string, write: Parameters<typeof encodeFields>[2]): Buffer {
  const h = createHmac('sha256', key.secret);
  encodeFields(h, format, write);
  return h.digest();
}

const v2 = (key: DigestKey, mac: Buffer) => `${V2_PREFIX}${key.id}:${mac.toString('hex')}`;

/**
 * The keyed digest of one consumed key of one object (what the values store keeps instead of its bytes):
 * HMAC over namespace, kind, name, key and the key's bytes; null when the object or the key is missing.
 */
export function keyDigest(
  key: DigestKey,
  source: SourceObject,
  valuesKey: string,
  bytes: Uint8Array | null,
): Uint8Array | null {
  if (bytes === null) return null;
  return keyedFieldDigest(key, 'helmrelease-autopilot/key-digest/v2\n', (field) => {
    field(source.namespace);
    field(source.kind);
    field(source.name);
    field(valuesKey);
    field(bytes);
  });
}

/**
 * The values digest (v2): HMAC over the release's namespace, then what Flux reads (reads.ts), each entry in
 * order: kind, name, valuesKey, targetPath, optional (with a "literal" marker when `literal` applies, i.e.
 * with a targetPath), and the key's keyed digest or a "missing" marker (an optional entry Flux skips). A
 * composition that fails at a required missing entry consumes nothing: its digest is that of the failing
 * entry alone, so changes to the other entries while it fails change nothing (Flux would fail the same way)
 * and its return does. Other keys of the same object are never read, so changing them cannot change it.
 */
export function valuesDigest(
  key: DigestKey,
  namespace: string,
  refs: readonly ValuesReference[],
  digestOf: KeyDigests,
): string {
  const reads = fluxReads(refs, digestOf);
  const entries = reads.ok ? reads.entries : [{ ref: reads.ref, bytes: null }];
  return v2(
    key,
    keyedFieldDigest(key, 'helmrelease-autopilot/values-digest/v2\n', (field) => {
      field(namespace);
      for (const { ref, bytes: d } of entries) {
        field(ref.kind);
        field(ref.name);
        field(ref.valuesKey);
        field(ref.targetPath);
        field(ref.optional ? 'optional' : 'required');
        // Only when it applies; the field that follows is never "literal", so the encoding stays unambiguous.
        if (literalApplies(ref)) field('literal');
        if (d === null) field('missing');
        else {
          field('present');
          field(d);
        }
      }
    }),
  );
}

/** The values digest (v2) straight from the bytes: keyDigest of each key, then valuesDigest. */
export function valuesDigestOfBytes(
  key: DigestKey,
  namespace: string,
  refs: readonly ValuesReference[],
  bytesOf: KeyBytes,
): string {
  return valuesDigest(key, namespace, refs, (ref) =>
    keyDigest(key, { kind: ref.kind, namespace, name: ref.name }, ref.valuesKey, bytesOf(ref)),
  );
}

/**
 * The v1 values digest: sha256 over each entry's fields and bytes (legacy: migration only). Exactly what v1
 * computed, so stored v1 digests still match: every entry (no Flux composition rules, no "literal" marker),
 * bytes as legacyKeyBytesOf reads them (a ConfigMap's binaryData too).
 */
export function legacyValuesDigest(refs: readonly ValuesReference[], bytesOf: KeyBytes): string {
  return legacyFieldDigest('helmrelease-autopilot/values-digest/v1\n', (field) => {
    for (const ref of refs) {
      field(ref.kind);
      field(ref.name);
      field(ref.valuesKey);
      field(ref.targetPath);
      field(ref.optional ? 'optional' : 'required');
      const bytes = bytesOf(ref);
      if (bytes === null) field('missing');
      else {
        field('present');
        field(bytes);
      }
    }
  });
}

/** Every key of data and binaryData, sorted, as the encoder's fields. */
function dataFields(object: ObjectData, field: (b: Uint8Array | string) => void): void {
  for (const [section, map] of [
    ['data', object.data ?? {}],
    ['binaryData', object.binaryData ?? {}],
  ] as const) {
    for (const key of Object.keys(map).sort()) {
      field(section);
      field(key);
      field(map[key] as string);
    }
  }
}

/** The link digest (v2) of an object's data: HMAC over namespace, kind, name and every key, sorted. */
export function objectDataDigest(key: DigestKey, source: SourceObject, object: ObjectData): string {
  return v2(
    key,
    keyedFieldDigest(key, 'helmrelease-autopilot/data-digest/v2\n', (field) => {
      field(source.namespace);
      field(source.kind);
      field(source.name);
      dataFields(object, field);
    }),
  );
}

/** The v1 link digest: sha256 over every key of data and binaryData, sorted (legacy: migration only). */
export function legacyObjectDataDigest(object: ObjectData): string {
  return legacyFieldDigest('helmrelease-autopilot/data-digest/v1\n', (field) => dataFields(object, field));
}

/** An older format the current data can be digested in, to compare with a digest stored in it. */
export type OlderFormat = { version: 'v1' } | { version: 'v2'; key: DigestKey };

/**
 * The older format `stored` is in, when it is one the operator can still compute: v1, or v2 under the
 * previous key. undefined for the current format and for anything else (an unknown key id, a malformed
 * value, a tombstone): those are compared as they are, so they read as changed.
 */
export function olderFormatOf(stored: string | undefined, keys: DigestKeys): OlderFormat | undefined {
  if (stored === undefined) return undefined;
  if (/^sha256:[0-9a-f]{64}$/.test(stored)) return { version: 'v1' };
  const m = /^hmac-sha256:v2:([0-9a-f]{8}):[0-9a-f]{64}$/.exec(stored);
  if (m && keys.previous && m[1] === keys.previous.id && m[1] !== keys.current.id)
    return { version: 'v2', key: keys.previous };
  return undefined;
}

/**
 * The values digest of the same data in an older format, from each entry's object (undefined: missing):
 * v1 reads the bytes as v1 did (legacyKeyBytesOf), v2 as Flux does (keyBytesOf).
 */
export function valuesDigestIn(
  format: OlderFormat,
  namespace: string,
  refs: readonly ValuesReference[],
  objectOf: (ref: ValuesReference) => ObjectData | undefined,
): string {
  return format.version === 'v1'
    ? legacyValuesDigest(refs, (ref) => legacyKeyBytesOf(ref.kind, objectOf(ref), ref.valuesKey))
    : valuesDigestOfBytes(format.key, namespace, refs, (ref) =>
        keyBytesOf(ref.kind, objectOf(ref), ref.valuesKey),
      );
}

/** The link digest of the same data in an older format. */
export function objectDataDigestIn(format: OlderFormat, source: SourceObject, object: ObjectData): string {
  return format.version === 'v1'
    ? legacyObjectDataDigest(object)
    : objectDataDigest(format.key, source, object);
}

/**
 * The bytes of one key as helm-controller reads it (reads.ts): a ConfigMap's `data` (never `binaryData`:
 * chartutil does not look there, so a key present only in `binaryData` is missing to Flux) or a Secret's
 * `data` (base64); null when the object or the key is missing. What the v2 digests cover.
 */
export function keyBytesOf(
  kind: ValuesReference['kind'],
  object: { data?: Record<string, string> } | undefined,
  key: string,
): Uint8Array | null {
  const data = object?.data?.[key];
  if (data === undefined) return null;
  return kind === 'ConfigMap' ? Buffer.from(data, 'utf8') : Buffer.from(data, 'base64');
}

/**
 * The bytes of one key as v1 read them (legacy: migration only): a ConfigMap's data, then its binaryData
 * (base64), or a Secret's data (base64); null when the object or the key is missing.
 */
export function legacyKeyBytesOf(
  kind: ValuesReference['kind'],
  object: ObjectData | undefined,
  key: string,
): Uint8Array | null {
  if (!object) return null;
  const data = object.data?.[key];
  if (kind === 'ConfigMap') {
    if (data !== undefined) return Buffer.from(data, 'utf8');
    const binary = object.binaryData?.[key];
    return binary !== undefined ? Buffer.from(binary, 'base64') : null;
  }
  return data !== undefined ? Buffer.from(data, 'base64') : null;
}
