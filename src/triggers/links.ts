// Explicit links, pure: which releases a ConfigMap/Secret names through its annotations, and whether a
// release lets a source in another namespace trigger it.
import type { ValuesSourceKind } from '../flux/helmrelease.ts';
import { Annotations, COMPAT_DEFAULT_RELEASE_NAMESPACE, CompatLinkAnnotations } from '../names.ts';
import { flatKey } from '../util/intern.ts';

/** A ConfigMap or Secret, by kind, namespace and name: "ConfigMap/ns/name". */
export type SourceId = string;

export function sourceId(kind: ValuesSourceKind, namespace: string, name: string): SourceId {
  return flatKey(kind, namespace, name);
}

export function parseSourceId(id: SourceId): { kind: ValuesSourceKind; namespace: string; name: string } {
  const [kind, namespace, name] = id.split('/') as [ValuesSourceKind, string, string];
  return { kind, namespace, name };
}

export interface LinkTarget {
  namespace: string;
  name: string;
}

/** Comma-separated names, spaces trimmed, empties and duplicates dropped. */
export function splitNames(raw: string | undefined): string[] {
  if (!raw) return [];
  return [...new Set(raw.split(',').map((s) => s.trim()))].filter((s) => s !== '');
}

/**
 * The releases a source's annotations link to. Ours default to the source's own namespace;
 * helmrelease-trigger-operator's keys (only with `compat`) default to flux-system, as that project does.
 */
export function linkTargets(
  sourceNamespace: string,
  annotations: Readonly<Record<string, string>>,
  compat: boolean,
): LinkTarget[] {
  const sets = [
    {
      releases: Annotations.linkReleases,
      namespace: Annotations.linkNamespace,
      defaultNamespace: sourceNamespace,
    },
    ...(compat
      ? CompatLinkAnnotations.map((c) => ({ ...c, defaultNamespace: COMPAT_DEFAULT_RELEASE_NAMESPACE }))
      : []),
  ];
  const seen = new Set<string>();
  const out: LinkTarget[] = [];
  for (const set of sets) {
    const namespace = annotations[set.namespace]?.trim() || set.defaultNamespace;
    for (const name of splitNames(annotations[set.releases])) {
      const k = `${namespace}/${name}`;
      if (seen.has(k)) continue;
      seen.add(k);
      out.push({ namespace, name });
    }
  }
  return out;
}

/**
 * A source may trigger a release in its own namespace, or in another one that lists it (or "*") — unless
 * `noCrossNamespace` (--no-cross-namespace-links) refuses every other namespace, whatever the release lists.
 */
export function sourceAllowed(
  releaseNamespace: string,
  releaseAnnotations: Readonly<Record<string, string>>,
  sourceNamespace: string,
  noCrossNamespace = false,
): boolean {
  if (sourceNamespace === releaseNamespace) return true;
  if (noCrossNamespace) return false;
  const allowed = splitNames(releaseAnnotations[Annotations.allowSourceNamespaces]);
  return allowed.includes('*') || allowed.includes(sourceNamespace);
}
