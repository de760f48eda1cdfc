// JSON Patch (RFC 6902) operations on metadata.labels / metadata.annotations: the only places this
// project ever patches at admission. Paths are JSON Pointers (RFC 6901), so "/" in a key is "~1".
import { type MapChanges, mapChanges } from '../kube/patch.ts';
import { isObject, type JsonObject } from '../util/narrow.ts';

export type { MapChanges };

export type PatchOp =
  | { op: 'add'; path: string; value: string | Record<string, string> }
  | { op: 'remove'; path: string };

/** Escapes one JSON Pointer reference token: "~" first, then "/". */
export function escapePointer(token: string): string {
  return token.replaceAll('~', '~0').replaceAll('/', '~1');
}

/**
 * The operations that bring metadata[field] to `desired`. Empty when it already is (so a second pass over
 * the patched object yields nothing). An absent (or null) map is created whole, since "add" into a
 * missing parent fails.
 */
export function mapPatch(
  metadata: JsonObject,
  field: 'labels' | 'annotations',
  desired: MapChanges,
): PatchOp[] {
  const current = metadata[field];
  const keys = Object.keys(desired).sort();
  if (!isObject(current)) {
    const value: Record<string, string> = {};
    for (const k of keys) {
      const v = desired[k];
      if (typeof v === 'string') value[k] = v;
    }
    return Object.keys(value).length > 0 ? [{ op: 'add', path: `/metadata/${field}`, value }] : [];
  }
  return Object.entries(mapChanges(current, desired)).map(([k, want]): PatchOp => {
    const path = `/metadata/${field}/${escapePointer(k)}`;
    return want === null ? { op: 'remove', path } : { op: 'add', path, value: want };
  });
}
