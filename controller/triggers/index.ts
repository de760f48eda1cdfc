// Who consumes what: (kind, namespace, name) of a ConfigMap/Secret -> the releases that read it through
// valuesFrom or that it links to explicitly. Kept current from the informers' events, so a source event
// finds its releases without scanning every HelmRelease.
import type { ValuesReference, ValuesSourceKind } from '../../src/flux/helmrelease.ts';
import { releaseKey } from '../../src/flux/helmrelease.ts';
import { type LinkTarget, type SourceId, sourceId } from '../../src/triggers/links.ts';

/** A many-to-many relation with both directions indexed. */
/**
 * A many-to-many relation kept small for the common shape (a release consumes a few sources, a source is
 * consumed by one release): `from` maps to a deduplicated array, and `to` back to the one `from` as a plain
 * string, or to a Set once two or more point at it (a ConfigMap shared by thousands of releases).
 */
class Relation {
  private readonly forward = new Map<string, readonly string[]>();
  private readonly backward = new Map<string, string | Set<string>>();

  /** Replaces everything `from` points to. */
  set(from: string, to: Iterable<string>): void {
    this.clear(from);
    const targets = [...new Set(to)];
    if (targets.length === 0) return;
    this.forward.set(from, targets);
    for (const t of targets) {
      const s = this.backward.get(t);
      if (s === undefined) this.backward.set(t, from);
      else if (typeof s === 'string') {
        if (s !== from) this.backward.set(t, new Set([s, from]));
      } else s.add(from);
    }
  }

  clear(from: string): void {
    const old = this.forward.get(from);
    if (!old) return;
    this.forward.delete(from);
    for (const t of old) {
      const s = this.backward.get(t);
      if (s === from) this.backward.delete(t);
      else if (s instanceof Set) {
        s.delete(from);
        if (s.size === 1) this.backward.set(t, s.values().next().value as string);
      }
    }
  }

  to(from: string): readonly string[] {
    return this.forward.get(from) ?? NONE;
  }

  from(to: string): readonly string[] {
    const s = this.backward.get(to);
    return s === undefined ? NONE : typeof s === 'string' ? [s] : [...s];
  }

  get size(): number {
    return this.forward.size;
  }
}

const NONE: readonly string[] = Object.freeze([]);

export class TriggerIndex {
  /** release key -> sources it consumes through valuesFrom (always in its own namespace). */
  private readonly consumes = new Relation();
  /** source -> release keys it links to through annotations (any namespace). */
  private readonly links = new Relation();

  setRelease(namespace: string, name: string, valuesFrom: readonly ValuesReference[]): void {
    this.consumes.set(
      releaseKey(namespace, name),
      valuesFrom.map((r) => sourceId(r.kind, namespace, r.name)),
    );
  }

  deleteRelease(namespace: string, name: string): void {
    this.consumes.clear(releaseKey(namespace, name));
  }

  /** Replaces the links of one source; returns the release keys it linked to before (to re-examine them). */
  setLinks(
    kind: ValuesSourceKind,
    namespace: string,
    name: string,
    targets: readonly LinkTarget[],
  ): string[] {
    const id = sourceId(kind, namespace, name);
    const before = [...this.links.to(id)];
    this.links.set(
      id,
      targets.map((t) => releaseKey(t.namespace, t.name)),
    );
    return before;
  }

  /** Every release a change of this source may concern: consumers and link targets. */
  releasesOf(kind: ValuesSourceKind, namespace: string, name: string): Set<string> {
    const id = sourceId(kind, namespace, name);
    return new Set([...this.consumes.from(id), ...this.links.to(id)]);
  }

  /** The sources that link to a release (their namespaces may differ from the release's). */
  linkedSources(namespace: string, name: string): SourceId[] {
    return [...this.links.from(releaseKey(namespace, name))];
  }

  get stats(): { releases: number; linkingSources: number } {
    return { releases: this.consumes.size, linkingSources: this.links.size };
  }
}
