// The values digest: one sha256 over exactly the data a HelmRelease consumes through spec.valuesFrom.
// The webhook and the reconciler both call valuesDigest, so they can never disagree.
import { createHash } from 'node:crypto';
import type { ValuesReference } from '../flux/helmrelease.ts';
import { fluxReads, literalApplies } from './reads.ts';

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
 * Digest over what Flux reads (reads.ts), each entry in order: kind, name, valuesKey, targetPath, optional
 * (with a "literal" marker when `literal` applies, i.e. with a targetPath), and the key's bytes or a
 * "missing" marker (an optional entry Flux skips). A composition that fails at a required missing entry
 * consumes nothing: its digest is that of the failing entry alone, so changes to the other entries while
 * it fails change nothing (Flux would fail the same way) and its return does. Other keys of the same
 * object are never read, so changing them cannot change the digest.
 */
export function valuesDigest(refs: readonly ValuesReference[], bytesOf: KeyBytes): string {
  const reads = fluxReads(refs, bytesOf);
  const entries = reads.ok ? reads.entries : [{ ref: reads.ref, bytes: null }];
  return fieldDigest('helmrelease-autopilot/values-digest/v1\n', (field) => {
    for (const { ref, bytes } of entries) {
      field(ref.kind);
      field(ref.name);
      field(ref.valuesKey);
      field(ref.targetPath);
      field(ref.optional ? 'optional' : 'required');
      // Only when it applies, so the digests of releases without it are what they always were; the field
      // that follows is never "literal", so the encoding stays unambiguous.
      if (literalApplies(ref)) field('literal');
      if (bytes === null) field('missing');
      else {
        field('present');
        field(bytes);
      }
    }
  });
}

/**
 * The bytes of one key as helm-controller reads it (reads.ts): a ConfigMap's `data` (never `binaryData`:
 * chartutil does not look there, so a key present only in `binaryData` is missing to Flux) or a Secret's
 * `data` (base64); null when the object or the key is missing.
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

/** A short prefix of a digest for events and logs. */
export function shortDigest(digest: string | undefined): string {
  if (!digest) return '(none)';
  return digest.startsWith(DIGEST_PREFIX)
    ? digest.slice(DIGEST_PREFIX.length, DIGEST_PREFIX.length + 12)
    : digest.slice(0, 12);
}
