// Who consumes what: (kind, namespace, name) of a ConfigMap/Secret -> the releases that read it through
// valuesFrom or that it links to explicitly. Kept current from the informers' events, so a source event
// finds its releases without scanning every HelmRelease.
import type { ValuesReference, ValuesSourceKind } from '../../src/flux/helmrelease.ts';
import { releaseKey } from '../../src/flux/helmrelease.ts';
import { type LinkTarget, type SourceId, sourceId } from '../../src/triggers/links.ts';

/** A many-to-many relation with both directions indexed. */
class Relation {
  private readonly forward = new Map<string, Set<string>>();
  private readonly backward = new Map<string, Set<string>>();

  /** Replaces everything `from` points to. */
  set(from: string, to: Iterable<string>): void {
    this.clear(from);
    const targets = new Set(to);
    if (targets.size === 0) return;
    this.forward.set(from, targets);
    for (const t of targets) {
      let s = this.backward.get(t);
      if (!s) {
        s = new Set();
        this.backward.set(t, s);
      }
      s.add(from);
    }
  }

  clear(from: string): void {
    const old = this.forward.get(from);
    if (!old) return;
    this.forward.delete(from);
    for (const t of old) {
      const s = this.backward.get(t);
      s?.delete(from);
      if (s?.size === 0) this.backward.delete(t);
    }
  }

  to(from: string): ReadonlySet<string> {
    return this.forward.get(from) ?? EMPTY;
  }

  from(to: string): ReadonlySet<string> {
    return this.backward.get(to) ?? EMPTY;
  }

  get size(): number {
    return this.forward.size;
  }
}

const EMPTY: ReadonlySet<string> = new Set();

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
