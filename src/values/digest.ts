// The values digest: one sha256 over exactly the data a HelmRelease consumes through spec.valuesFrom.
// The webhook and the reconciler both call valuesDigest, so they can never disagree.
import { createHash } from 'node:crypto';
import type { ValuesReference } from '../flux/helmrelease.ts';

/** Bytes of ref.valuesKey in the referenced object, or null when the object or the key is missing. */
export type KeyBytes = (ref: ValuesReference) => Uint8Array | null;

export const DIGEST_PREFIX = 'sha256:';

/**
 * A sha256 over length-prefixed fields after a format line: each field is its byte length (8 bytes, big
 * endian) then its bytes (strings as UTF-8), so no two different field lists share an encoding. Returns
 * "sha256:<hex>". The one encoder behind every digest we store: its output must never change (see the
 * golden vectors in digest.test.ts).
 */
export function fieldDigest(
  format: string,
  write: (field: (b: Uint8Array | string) => void) => void,
): string {
  const h = createHash('sha256');
  h.update(format);
  write((b) => {
    const buf = typeof b === 'string' ? Buffer.from(b, 'utf8') : b;
    const len = Buffer.alloc(8);
    len.writeBigUInt64BE(BigInt(buf.byteLength));
    h.update(len);
    h.update(buf);
  });
  return DIGEST_PREFIX + h.digest('hex');
}

/**
 * Digest over each entry in order: kind, name, valuesKey, targetPath, optional, and the key's bytes or a
 * "missing" marker. Fields are length-prefixed, so no two different inputs share an encoding. Other keys of
 * the same object are never read, so changing them cannot change the digest.
 */
export function valuesDigest(refs: readonly ValuesReference[], bytesOf: KeyBytes): string {
  return fieldDigest('helmrelease-autopilot/values-digest/v1\n', (field) => {
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

/** The bytes of one key of a ConfigMap (data, then binaryData) or a Secret (data, base64), or null. */
export function keyBytesOf(
  kind: ValuesReference['kind'],
  object: { data?: Record<string, string>; binaryData?: Record<string, string> } | undefined,
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

/** A short prefix of a digest for events and logs. */
export function shortDigest(digest: string | undefined): string {
  if (!digest) return '(none)';
  return digest.startsWith(DIGEST_PREFIX)
    ? digest.slice(DIGEST_PREFIX.length, DIGEST_PREFIX.length + 12)
    : digest.slice(0, 12);
}
