// Start-up warm-up, planned purely: every release is examined once after a start, which needs the consumed
// keys of every referenced ConfigMap and Secret. Where a namespace's referenced objects are many and most
// of what a LIST would return, one paged LIST per namespace beats a GET per object (10,000 releases:
// ~80 requests instead of ~20,000). Helm's own release Secrets (large, never consumed) are left out of
// the LIST by label and out of the count by name.
import type { HelmRelease, ValuesSourceKind } from '../flux/helmrelease.ts';

/** Helm's release Secrets: named sh.helm.release.v1.<release>.v<revision> and labelled owner=helm. */
export const HELM_SECRET_PREFIX = 'sh.helm.release.v1.';
export const HELM_SECRET_EXCLUDE_SELECTOR = 'owner!=helm';

export interface WarmupGroup {
  kind: ValuesSourceKind;
  namespace: string;
  /** name -> keys to keep */
  wanted: Map<string, string[]>;
  labelSelector?: string;
}

export interface WarmupOptions {
  /** Fewer referenced objects than this in a namespace: GETs are cheap enough. */
  minObjects: number;
  /** Referenced objects must be at least this share of what the LIST returns. */
  minShare: number;
}

export const DEFAULT_WARMUP: WarmupOptions = { minObjects: 20, minShare: 0.5 };

/**
 * Groups the references of `releases` by kind and namespace and keeps the groups worth a LIST.
 * `listed(kind, namespace)` is how many objects that LIST would return (from the metadata cache).
 */
export function planWarmup(
  releases: Iterable<HelmRelease>,
  listed: (kind: ValuesSourceKind, namespace: string) => number,
  o: WarmupOptions = DEFAULT_WARMUP,
): WarmupGroup[] {
  const groups = new Map<string, WarmupGroup>();
  for (const hr of releases) {
    const namespace = hr.metadata.namespace;
    for (const ref of hr.valuesFrom) {
      const gk = `${ref.kind}/${namespace}`;
      let g = groups.get(gk);
      if (!g) {
        g = {
          kind: ref.kind,
          namespace,
          wanted: new Map(),
          ...(ref.kind === 'Secret' ? { labelSelector: HELM_SECRET_EXCLUDE_SELECTOR } : {}),
        };
        groups.set(gk, g);
      }
      const keys = g.wanted.get(ref.name) ?? [];
      if (!keys.includes(ref.valuesKey)) keys.push(ref.valuesKey);
      g.wanted.set(ref.name, keys);
    }
  }
  return [...groups.values()].filter((g) => {
    const n = g.wanted.size;
    return n >= o.minObjects && n >= o.minShare * listed(g.kind, g.namespace);
  });
}
