// The one shape of our writes to a HelmRelease: a JSON merge patch (RFC 7386) of metadata labels and
// annotations, conditional on the resourceVersion that was read (a 409 when anyone wrote since), and the
// one map-diff helper that builds its maps (the webhook's JSON Patch is built from the same diff).

/** The wanted state of some keys of a string map: a string sets the key, null removes it. Other keys are left alone. */
export type MapChanges = Readonly<Record<string, string | null>>;

export interface MergePatch {
  metadata: {
    resourceVersion: string;
    labels?: MapChanges;
    annotations: MapChanges;
  };
}

/** The entries of `desired` that differ from `current` (null: remove a key that is present). */
export function mapChanges(
  current: Readonly<Record<string, unknown>>,
  desired: MapChanges,
): Record<string, string | null> {
  const out: Record<string, string | null> = {};
  for (const k of Object.keys(desired).sort()) {
    const v = desired[k] as string | null;
    if (v === null ? Object.hasOwn(current, k) : current[k] !== v) out[k] = v;
  }
  return out;
}
