// The soak's oracle: it records every version of every ConfigMap/Secret the generator wrote (the generator is
// their only writer, so each version comes with its exact resourceVersion), every release's life (created,
// stamped or not, suspended, resumed, deleted) and every trigger (a new reconcile.fluxcd.io/requestedAt seen
// by the harness's watch), and decides at the end, offline and in resourceVersion order:
// - a consumed change: a version after which what Flux reads for a release differs (src/values/reads.ts:
//   valuesKey, whole composition, optional, a required entry missing) — or, for an explicitly linked
//   source, its data differs. Compared on the data itself, never on the operator's digest.
// - lost: a consumed change not followed by a trigger (or a resume: Flux reconciles a resumed release) with
//   a higher resourceVersion, while the release exists — unless it was undone within seconds, back to what
//   Flux read at the last reconcile (nothing is due then: the operator compares states, not events);
// - spurious: a trigger with no consumed change since the previous trigger (or the creation). Two cases are
//   told apart rather than counted: the first trigger of a release created unstamped or labelled without a
//   digest (the webhook was out, or its lookup failed: the operator triggers it once, by design), and "raced": the digest the operator recorded with the previous
//   trigger was not the data at that trigger's write (a change landed between its read and its write; the
//   next trigger catches it up: redundant for Flux, which read after the write, but not knowable by the
//   operator) — decided with the operator's own digest code under the soak's known key. A first trigger
//   after a stamped creation whose stamp was not the data at the creation is spurious (the webhook stamped
//   from a stale or incomplete cache).
import type { ValuesReference } from '../../src/flux/helmrelease.ts';
import { formatLinkDigests, MISSING_LINK } from '../../src/triggers/decide.ts';
import type { SourceId } from '../../src/triggers/links.ts';
import { parseSourceId } from '../../src/triggers/links.ts';
import { objectDataDigest, valuesDigestOfBytes } from '../../src/values/digest.ts';
import { fluxReads } from '../../src/values/reads.ts';
import { BENCH_DIGEST_KEYS } from '../triggers/objects.ts';

/** How soon an undone change must be undone to need no trigger (the 2 s debounce and a failover's margin). */
export const REVERT_MS = 15_000;

/** A ConfigMap's or Secret's data as the API returns it (a Secret's base64), or null: it does not exist. */
export type SourceState = Record<string, string> | null;

interface Version {
  rv: number;
  at: number;
  state: SourceState;
}

export interface ReleaseLife {
  key: string;
  namespace: string;
  name: string;
  refs: ValuesReference[];
  links: SourceId[];
  createdRv: number;
  createdAt: number;
  /** Carried our label and digest when created (the webhook stamped it, or the harness did). */
  stamped: boolean;
  /** [suspend rv, resume rv or Infinity). */
  suspensions: { from: number; to: number }[];
  resumes: number[];
  deletedAt?: number;
}

export interface Trigger {
  key: string;
  rv: number;
  at: number;
  /** Our values digest and link digests on the release just before this write. */
  before: { valuesDigest?: string; linkDigests?: string };
}

export interface Change {
  key: string;
  source: SourceId;
  rv: number;
  at: number;
  suspended: boolean;
  coveredBy?: { kind: 'trigger' | 'resume'; rv: number; at: number };
  droppedByDelete?: boolean;
  /** Made before the operator's first write to a release created unstamped (finding (b)). */
  beforeBackfillOfUnstamped?: boolean;
}

export interface Verdict {
  consumed: Change[];
  lost: Change[];
  spurious: (Trigger & { why: 'no-change' | 'stamp-not-the-data-at-creation' })[];
  raced: Trigger[];
  unstampedCreation: Trigger[];
  latenciesMs: number[];
  coveredByResume: number;
  /** Uncovered changes undone soon after: nothing was due (see reverted). */
  reverted: number;
  droppedByDelete: number;
  suspendedChanges: number;
  suspendedTriggeredAfterResume: number;
}

const bytesOf = (kind: string, state: SourceState, key: string): Uint8Array | null => {
  const v = state?.[key];
  if (v === undefined) return null;
  return kind === 'Secret' ? Buffer.from(v, 'base64') : Buffer.from(v);
};

const sortedJson = (state: SourceState) =>
  state === null
    ? 'null'
    : JSON.stringify(
        Object.keys(state)
          .sort()
          .map((k) => [k, state[k]]),
      );

export class Oracle {
  private readonly sources = new Map<SourceId, Version[]>();
  readonly releases = new Map<string, ReleaseLife>();
  /** Every release life, also of names deleted and created again. */
  readonly lives: ReleaseLife[] = [];
  readonly triggers: Trigger[] = [];
  /** rv of the first write of the operator to each release life (by key), for finding (b). */
  readonly firstOperatorWrite = new Map<ReleaseLife, number>();

  source(id: SourceId, rv: number, at: number, state: SourceState): void {
    const list = this.sources.get(id) ?? [];
    if (!list.some((v) => v.rv === rv)) list.push({ rv, at, state });
    list.sort((a, b) => a.rv - b.rv);
    this.sources.set(id, list);
  }

  created(life: Omit<ReleaseLife, 'suspensions' | 'resumes'>): void {
    const full: ReleaseLife = { ...life, suspensions: [], resumes: [] };
    this.releases.set(life.key, full);
    this.lives.push(full);
  }

  suspended(key: string, rv: number): void {
    this.releases.get(key)?.suspensions.push({ from: rv, to: Number.POSITIVE_INFINITY });
  }

  resumed(key: string, rv: number): void {
    const life = this.releases.get(key);
    const open = life?.suspensions.find((s) => s.to === Number.POSITIVE_INFINITY);
    if (!life || !open) return;
    open.to = rv;
    life.resumes.push(rv);
  }

  deleted(key: string, at: number): void {
    const life = this.releases.get(key);
    if (!life) return;
    life.deletedAt = at;
    this.releases.delete(key);
  }

  /** A write of the operator to a release (seen by the watch), trigger or not. */
  operatorWrite(key: string, rv: number): void {
    const life = this.releases.get(key);
    if (life && !this.firstOperatorWrite.has(life)) this.firstOperatorWrite.set(life, rv);
  }

  trigger(t: Trigger): void {
    this.triggers.push(t);
  }

  /** The state of a source at resourceVersion rv (the last version at or before it). */
  private stateAt(id: SourceId, rv: number): SourceState {
    let state: SourceState = null;
    for (const v of this.sources.get(id) ?? []) {
      if (v.rv > rv) break;
      state = v.state;
    }
    return state;
  }

  /** What Flux reads for the release at rv (reads.ts), and the data of each linked source, as one string. */
  private readsAt(life: ReleaseLife, rv: number): string {
    const reads = fluxReads(life.refs, (ref) =>
      bytesOf(ref.kind, this.stateAt(`${ref.kind}/${life.namespace}/${ref.name}`, rv), ref.valuesKey),
    );
    const values = reads.ok
      ? reads.entries.map((e) => (e.bytes === null ? null : Buffer.from(e.bytes).toString('base64')))
      : { failsAt: reads.index };
    const links = life.links.map((id) => sortedJson(this.stateAt(id, rv)));
    return JSON.stringify([values, links]);
  }

  /** The digests the operator would record for the data at rv (its own code, the soak's key). */
  private digestsAt(life: ReleaseLife, rv: number): { valuesDigest: string; linkDigests: string | null } {
    const key = BENCH_DIGEST_KEYS.current;
    const valuesDigest = valuesDigestOfBytes(key, life.namespace, life.refs, (ref) =>
      bytesOf(ref.kind, this.stateAt(`${ref.kind}/${life.namespace}/${ref.name}`, rv), ref.valuesKey),
    );
    const links: Record<string, string> = {};
    for (const id of life.links) {
      const state = this.stateAt(id, rv);
      links[id] = state === null ? MISSING_LINK : objectDataDigest(key, parseSourceId(id), { data: state });
    }
    return { valuesDigest, linkDigests: formatLinkDigests(links) };
  }

  /** The consumed changes of one release life, in resourceVersion order. */
  private consumedChanges(life: ReleaseLife): Change[] {
    const ids = [...life.refs.map((r) => `${r.kind}/${life.namespace}/${r.name}`), ...life.links];
    const versions = [...new Set(ids)]
      .flatMap((id) => (this.sources.get(id) ?? []).map((v) => ({ id, v })))
      .filter(({ v }) => v.rv > life.createdRv && (life.deletedAt === undefined || v.at < life.deletedAt))
      .sort((a, b) => a.v.rv - b.v.rv);
    const out: Change[] = [];
    for (const { id, v } of versions) {
      if (this.readsAt(life, v.rv) === this.readsAt(life, v.rv - 1)) continue;
      out.push({
        key: life.key,
        source: id,
        rv: v.rv,
        at: v.at,
        suspended: life.suspensions.some((s) => s.from < v.rv && v.rv < s.to),
      });
    }
    return out;
  }

  /** Triggers of one release (names are never reused in a soak, so the key identifies its life). */
  private triggersOf(life: ReleaseLife, byKey: Map<string, Trigger[]>): Trigger[] {
    return (byKey.get(life.key) ?? []).filter((t) => t.rv > life.createdRv).sort((a, b) => a.rv - b.rv);
  }

  verdict(): Verdict {
    const v: Verdict = {
      consumed: [],
      lost: [],
      spurious: [],
      raced: [],
      unstampedCreation: [],
      latenciesMs: [],
      coveredByResume: 0,
      reverted: 0,
      droppedByDelete: 0,
      suspendedChanges: 0,
      suspendedTriggeredAfterResume: 0,
    };
    const byKey = new Map<string, Trigger[]>();
    for (const t of this.triggers) byKey.set(t.key, [...(byKey.get(t.key) ?? []), t]);
    for (const life of this.lives) {
      const changes = this.consumedChanges(life);
      const triggers = this.triggersOf(life, byKey);
      for (const c of changes) {
        v.consumed.push(c);
        const t = triggers.find((x) => x.rv > c.rv);
        const resume = life.resumes.find((rv) => rv > c.rv);
        if (c.suspended) {
          v.suspendedChanges++;
          if (t) v.suspendedTriggeredAfterResume++;
        }
        if (t && (resume === undefined || t.rv < resume)) {
          c.coveredBy = { kind: 'trigger', rv: t.rv, at: t.at };
          v.latenciesMs.push(Math.max(0, t.at - c.at));
        } else if (resume !== undefined) {
          c.coveredBy = { kind: 'resume', rv: resume, at: 0 };
          v.coveredByResume++;
        } else if (life.deletedAt !== undefined) {
          c.droppedByDelete = true;
          v.droppedByDelete++;
        } else if (this.reverted(life, c, changes, triggers)) {
          v.reverted++;
        } else {
          const first = this.firstOperatorWrite.get(life);
          if (!life.stamped && (first === undefined || c.rv < first)) c.beforeBackfillOfUnstamped = true;
          v.lost.push(c);
        }
      }
      let baseline = life.createdRv;
      for (const [i, t] of triggers.entries()) {
        const since = changes.some((c) => c.rv > baseline && c.rv < t.rv);
        if (!since) {
          const at = this.digestsAt(life, baseline);
          const lagged =
            t.before.valuesDigest !== at.valuesDigest ||
            (life.links.length > 0 && (t.before.linkDigests ?? null) !== at.linkDigests);
          if (i === 0 && !life.stamped) v.unstampedCreation.push(t);
          else if (i > 0 && lagged) v.raced.push(t);
          else v.spurious.push({ ...t, why: lagged ? 'stamp-not-the-data-at-creation' : 'no-change' });
        }
        baseline = t.rv;
      }
    }
    return v;
  }

  /**
   * An uncovered change undone soon after: what Flux reads is back to what it read at the release's last
   * reconcile (trigger, resume or creation) within REVERT_MS of the change and stays so; the operator
   * compares states, not events, so nothing is due (e.g. an optional ConfigMap created and deleted again
   * within the debounce).
   */
  private reverted(life: ReleaseLife, c: Change, changes: Change[], triggers: Trigger[]): boolean {
    const reconciled = Math.max(
      life.createdRv,
      ...triggers.filter((t) => t.rv < c.rv).map((t) => t.rv),
      ...life.resumes.filter((rv) => rv < c.rv),
    );
    const last = changes.at(-1) as Change;
    return (
      last.at - c.at <= REVERT_MS &&
      this.readsAt(life, Number.MAX_SAFE_INTEGER) === this.readsAt(life, reconciled)
    );
  }

  /** Consumed changes not yet covered (for the settle wait). */
  uncovered(): number {
    return this.verdict().lost.length;
  }
}
