// The soak's oracle (bench/soak/oracle.ts) judges the operator: its rules, each on a small history.
import { describe, expect, it } from 'vitest';
import { Oracle, type SourceState } from '../../bench/soak/oracle.ts';
import { BENCH_DIGEST_KEYS } from '../../bench/triggers/objects.ts';
import type { ValuesReference } from '../../src/flux/helmrelease.ts';
import { valuesDigestOfBytes } from '../../src/values/digest.ts';

const CM = 'ConfigMap/ns/cm';
const OPT = 'ConfigMap/ns/opt';
const refs: ValuesReference[] = [
  { kind: 'ConfigMap', name: 'cm', valuesKey: 'values.yaml', targetPath: '', optional: false },
  { kind: 'ConfigMap', name: 'opt', valuesKey: 'values.yaml', targetPath: '', optional: true },
];
const data = (values: string, other = 'o'): SourceState => ({ 'values.yaml': values, other });
/** The digest the operator records for cm's values.yaml (opt absent). */
const digestOf = (values: string) =>
  valuesDigestOfBytes(BENCH_DIGEST_KEYS.current, 'ns', refs, (r) =>
    r.name === 'cm' ? Buffer.from(values) : null,
  );

/** A release ns/app created at rv 10 over cm (values "a") and no opt, stamped unless said otherwise. */
function world(stamped = true): Oracle {
  const o = new Oracle();
  o.source(CM, 5, 0, data('a'));
  o.created({
    key: 'ns/app',
    namespace: 'ns',
    name: 'app',
    refs,
    links: [],
    createdRv: 10,
    createdAt: 0,
    stamped,
  });
  return o;
}
const trigger = (o: Oracle, rv: number, at: number, recorded = digestOf('a')) =>
  o.trigger({ key: 'ns/app', rv, at, before: { valuesDigest: recorded } });

describe('soak oracle', () => {
  it('a consumed change followed by a trigger: nothing lost, its latency measured', () => {
    const o = world();
    o.source(CM, 20, 1000, data('b'));
    trigger(o, 21, 3000);
    const v = o.verdict();
    expect([v.consumed.length, v.lost.length, v.spurious.length]).toEqual([1, 0, 0]);
    expect(v.latenciesMs).toEqual([2000]);
  });

  it('a consumed change with no trigger after it is lost; a trigger written before it does not cover it', () => {
    const o = world();
    o.source(CM, 20, 1000, data('b'));
    trigger(o, 21, 3000);
    o.source(CM, 30, 4000, data('c'));
    expect(o.verdict().lost.map((c) => c.rv)).toEqual([30]);
  });

  it('a key Flux does not read and a metadata-only write are no changes: a trigger after them is spurious', () => {
    const o = world();
    o.source(CM, 20, 1000, data('a', 'other changed'));
    o.source(CM, 21, 1100, data('a', 'other changed'));
    trigger(o, 22, 3000);
    const v = o.verdict();
    expect(v.consumed).toEqual([]);
    expect(v.spurious.map((t) => [t.rv, t.why])).toEqual([[22, 'no-change']]);
  });

  it('an optional source appearing is a change; so is its going', () => {
    const o = world();
    o.source(OPT, 20, 1000, data('x'));
    trigger(o, 21, 2000);
    o.source(OPT, 30, 3000, null);
    expect(o.verdict().lost.map((c) => [c.source, c.rv])).toEqual([[OPT, 30]]);
  });

  it('a change undone within seconds, back to what Flux last read, needs no trigger; undone later, it was lost', () => {
    const soon = world();
    soon.source(OPT, 20, 1000, data('x'));
    soon.source(OPT, 21, 3000, null);
    expect([soon.verdict().lost.length, soon.verdict().reverted]).toEqual([0, 2]);
    const late = world();
    late.source(OPT, 20, 1000, data('x'));
    late.source(OPT, 21, 60_000, null);
    // The first change went untriggered for a minute: lost. The one that undid it needed nothing.
    expect(late.verdict().lost.map((c) => c.rv)).toEqual([20]);
  });

  it('a change while suspended is covered by the resume (Flux reconciles the new generation)', () => {
    const o = world();
    o.suspended('ns/app', 15);
    o.source(CM, 20, 1000, data('b'));
    o.resumed('ns/app', 25);
    const v = o.verdict();
    expect([v.lost.length, v.coveredByResume, v.suspendedChanges]).toEqual([0, 1, 1]);
  });

  it('the first trigger of a release created unstamped is allowed, a second one without a change is not', () => {
    const o = world(false);
    trigger(o, 20, 1000);
    trigger(o, 30, 2000);
    const v = o.verdict();
    expect(v.unstampedCreation.map((t) => t.rv)).toEqual([20]);
    expect(v.spurious.map((t) => t.rv)).toEqual([30]);
  });

  it('a trigger that catches up a change landed between the previous trigger`s read and write is raced', () => {
    const o = world();
    o.source(CM, 20, 1000, data('b'));
    trigger(o, 21, 3000); // read before rv 20: it recorded "a" (the stamp's digest)
    trigger(o, 30, 5000, digestOf('a')); // the release still carries "a": the operator catches "b" up
    const v = o.verdict();
    expect(v.raced.map((t) => t.rv)).toEqual([30]);
    expect(v.spurious).toEqual([]);
  });

  it('a first trigger after a stamp that was not the data at creation is spurious', () => {
    const o = world();
    trigger(o, 20, 1000, digestOf('stale'));
    expect(o.verdict().spurious.map((t) => t.why)).toEqual(['stamp-not-the-data-at-creation']);
  });
});
