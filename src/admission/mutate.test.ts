import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Annotations, Labels } from '../names.ts';
import { isObject, type Json, type JsonObject } from '../util/narrow.ts';
import type { PatchOp } from './jsonpatch.ts';
import {
  CARRIED_STATE,
  type DigestOutcome,
  decideAdmission,
  digestNeed,
  mutate,
  planAdmission,
} from './mutate.ts';
import type { AdmissionRequest } from './review.ts';

const D1 = `sha256:${'1'.repeat(64)}`;
const D2 = `sha256:${'2'.repeat(64)}`;
const OK: DigestOutcome = { ok: true, digest: D1 };
const FAILED: DigestOutcome = { ok: false, error: 'cache not synced' };
const MANAGED = Labels.managed;
const DIGEST = Annotations.valuesDigest;

const spec = (valuesFrom: Json[] = [{ kind: 'ConfigMap', name: 'v' }]): JsonObject => ({
  interval: '5m',
  chart: { spec: { chart: 'c', sourceRef: { kind: 'HelmRepository', name: 'r' } } },
  valuesFrom,
});

function hr(
  o: { labels?: Record<string, string>; annotations?: Record<string, string>; spec?: JsonObject } = {},
): JsonObject {
  const metadata: JsonObject = { name: 'app', namespace: 'ns' };
  if (o.labels) metadata.labels = o.labels;
  if (o.annotations) metadata.annotations = o.annotations;
  return { apiVersion: 'helm.toolkit.fluxcd.io/v2', kind: 'HelmRelease', metadata, spec: o.spec ?? spec() };
}

function request(over: Partial<AdmissionRequest> = {}): AdmissionRequest {
  return {
    uid: 'u1',
    kind: { group: 'helm.toolkit.fluxcd.io', version: 'v2', kind: 'HelmRelease' },
    resource: { group: 'helm.toolkit.fluxcd.io', version: 'v2', resource: 'helmreleases' },
    subResource: '',
    operation: 'CREATE',
    namespace: 'ns',
    name: 'app',
    username: 'alice',
    dryRun: false,
    object: hr(),
    oldObject: undefined,
    ...over,
  };
}

/** Applies add/remove operations as RFC 6902 does (enough for metadata maps). */
function applyPatch(doc: JsonObject, ops: readonly PatchOp[]): JsonObject {
  const out = structuredClone(doc);
  for (const op of ops) {
    const tokens = op.path
      .split('/')
      .slice(1)
      .map((t) => t.replaceAll('~1', '/').replaceAll('~0', '~'));
    const last = tokens.pop() as string;
    let parent: Json = out;
    for (const t of tokens) {
      if (!isObject(parent) || !isObject(parent[t])) throw new Error(`no parent for ${op.path}`);
      parent = parent[t];
    }
    if (!isObject(parent)) throw new Error(`no parent for ${op.path}`);
    if (op.op === 'add') parent[last] = op.value;
    else {
      if (!Object.hasOwn(parent, last)) throw new Error(`remove of missing ${op.path}`);
      delete parent[last];
    }
  }
  return out;
}

const patched = (req: AdmissionRequest, outcome: DigestOutcome | undefined) =>
  applyPatch(req.object as JsonObject, mutate(req, outcome).patch);
const meta = (o: JsonObject) => o.metadata as JsonObject;

describe('mutate: which requests are touched', () => {
  it.each([
    [
      'another group',
      { kind: { group: 'apps', version: 'v1', kind: 'Deployment' } },
      'skipped:not-helmrelease',
    ],
    [
      'another kind',
      { kind: { group: 'helm.toolkit.fluxcd.io', version: 'v2', kind: 'Foo' } },
      'skipped:not-helmrelease',
    ],
    ['the status subresource', { operation: 'UPDATE', subResource: 'status' }, 'skipped:subresource'],
    ['DELETE', { operation: 'DELETE' }, 'skipped:operation'],
    ['CONNECT', { operation: 'CONNECT' }, 'skipped:operation'],
    ['no object', { object: null }, 'skipped:no-object'],
    ['an object without metadata', { object: { spec: {} } }, 'skipped:no-object'],
    [
      'a release being deleted',
      { object: { ...hr(), metadata: { name: 'a', deletionTimestamp: '2024-01-01T00:00:00Z' } } },
      'skipped:deleting',
    ],
    [
      'a malformed valuesFrom',
      { object: hr({ spec: spec([{ kind: 'Foo', name: 'x' }]) }) },
      'skipped:invalid-valuesfrom',
    ],
  ] as [string, Partial<AdmissionRequest>, string][])('%s: allowed, no patch', (_, over, reason) => {
    const d = mutate(request(over), OK);
    expect(d).toEqual({ allowed: true, patch: [], warnings: [], reason });
  });

  it.each([
    ['in scope', (ns: string) => ns === 'ns', 'stamped:lookup', true],
    [
      'out of scope (--watch-namespace, --exclude-namespaces)',
      (ns: string) => ns !== 'ns',
      'skipped:out-of-scope',
      false,
    ],
  ])('a HelmRelease %s', (_name, inScope, reason, needsLookup) => {
    const plan = planAdmission(request(), inScope);
    expect(digestNeed(plan) !== undefined).toBe(needsLookup);
    const d = decideAdmission(plan, needsLookup ? OK : undefined);
    expect(d.reason).toBe(reason);
    expect(d.patch.length > 0).toBe(needsLookup);
  });

  it.each(['v2', 'v2beta2', 'v2beta1'])('stamps HelmRelease %s', (version) => {
    const req = request({ kind: { group: 'helm.toolkit.fluxcd.io', version, kind: 'HelmRelease' } });
    expect(meta(patched(req, OK)).labels).toEqual({ [MANAGED]: 'true' });
  });
});

describe('mutate: the stamp', () => {
  it('CREATE: creates the label and annotation maps when absent', () => {
    const d = mutate(request(), OK);
    expect(d.patch).toEqual([
      { op: 'add', path: '/metadata/labels', value: { [MANAGED]: 'true' } },
      { op: 'add', path: '/metadata/annotations', value: { [DIGEST]: D1 } },
    ]);
    expect(d.reason).toBe('stamped:lookup');
  });

  it('escapes "/" in keys as ~1 and keeps the other keys', () => {
    const req = request({ object: hr({ labels: { app: 'x' }, annotations: { note: 'n' } }) });
    const d = mutate(req, OK);
    expect(d.patch).toEqual([
      { op: 'add', path: '/metadata/labels/helmrelease-autopilot.dev~1managed', value: 'true' },
      { op: 'add', path: '/metadata/annotations/helmrelease-autopilot.dev~1values-digest', value: D1 },
    ]);
    expect(meta(applyPatch(req.object as JsonObject, d.patch))).toMatchObject({
      labels: { app: 'x', [MANAGED]: 'true' },
      annotations: { note: 'n', [DIGEST]: D1 },
    });
  });

  it('CREATE overwrites a digest the object brought along (it describes other data)', () => {
    const req = request({ object: hr({ annotations: { [DIGEST]: D2 } }) });
    expect(meta(patched(req, OK)).annotations).toEqual({ [DIGEST]: D1 });
  });

  it('asks for a lookup of the refs with Flux defaults, in the request namespace', () => {
    const req = request({ object: hr({ spec: spec([{ kind: 'Secret', name: 's', optional: true }]) }) });
    expect(digestNeed(planAdmission(req))).toEqual({
      namespace: 'ns',
      refs: [{ kind: 'Secret', name: 's', valuesKey: 'values.yaml', targetPath: '', optional: true }],
    });
  });

  it('a failed lookup admits with the label, no digest and a warning', () => {
    const req = request({ object: hr({ annotations: { [DIGEST]: D2 } }) });
    const d = mutate(req, FAILED);
    expect(d.allowed).toBe(true);
    expect(d.reason).toBe('stamped:lookup-failed');
    expect(d.warnings).toHaveLength(1);
    expect(d.warnings[0]).toContain('cache not synced');
    expect(meta(applyPatch(req.object as JsonObject, d.patch))).toMatchObject({
      labels: { [MANAGED]: 'true' },
      annotations: {},
    });
  });

  it.each([
    ['valuesFrom is empty', hr({ spec: spec([]) })],
    ['valuesFrom is absent', { ...hr(), spec: { interval: '1m' } }],
    ['the release opted out', hr({ annotations: { [Annotations.ignore]: 'true' } })],
  ])('removes label and digest when %s', (_, object) => {
    const m = meta(object);
    m.labels = { [MANAGED]: 'true', keep: 'k' };
    m.annotations = { ...(m.annotations as JsonObject), [DIGEST]: D1 };
    const req = request({ operation: 'UPDATE', object, oldObject: object });
    const d = mutate(req, undefined);
    expect(digestNeed(planAdmission(req))).toBeUndefined();
    expect(d.patch).toEqual([
      { op: 'remove', path: '/metadata/labels/helmrelease-autopilot.dev~1managed' },
      { op: 'remove', path: '/metadata/annotations/helmrelease-autopilot.dev~1values-digest' },
    ]);
    expect(d.reason).toBe('unmanaged');
  });

  it('a changed spec whose lookup fails keeps the stored digest, not none (soak finding)', () => {
    const old = hr({ labels: { [MANAGED]: 'true' }, annotations: { [DIGEST]: D2 } });
    const object = hr({ labels: { [MANAGED]: 'true' }, spec: { ...spec(), suspend: true } });
    const req = request({ operation: 'UPDATE', object, oldObject: old });
    const d = mutate(req, FAILED);
    expect(d.reason).toBe('stamped:lookup-failed-kept');
    expect(d.warnings[0]).toContain('kept as it was');
    expect(meta(applyPatch(object, d.patch)).annotations).toEqual({ [DIGEST]: D2 });
    // The lookup, when it answers, still records the current digest.
    expect(meta(applyPatch(object, mutate(req, OK).patch)).annotations).toEqual({ [DIGEST]: D1 });
  });

  it('an unmanaged release without our keys gets no patch', () => {
    expect(mutate(request({ object: hr({ spec: spec([]) }) }), undefined).patch).toEqual([]);
  });
});

describe('mutate: UPDATE keeps the previous digest while the spec is unchanged', () => {
  const old = hr({ labels: { [MANAGED]: 'true' }, annotations: { [DIGEST]: D2 } });

  it.each([
    ['an applier dropped it: carried over from oldObject', hr(), D2, 'carried'],
    ['the writer sent one (the operator): kept', hr({ annotations: { [DIGEST]: D1 } }), D1, 'incoming'],
    [
      'key order of the spec does not matter',
      { ...hr(), spec: Object.fromEntries(Object.entries(spec()).reverse()) },
      D2,
      'carried',
    ],
  ] as [string, JsonObject, string, string][])('%s', (_, object, want, source) => {
    const req = request({ operation: 'UPDATE', object, oldObject: old });
    expect(digestNeed(planAdmission(req))).toBeUndefined();
    const d = mutate(req, FAILED);
    expect(d.reason).toBe(`stamped:${source}`);
    expect(d.warnings).toEqual([]);
    expect(meta(applyPatch(object, d.patch)).annotations).toEqual({ [DIGEST]: want });
  });

  // After an upgrade, releases still carry v1 digests until the reconciler re-stamps them (ADR 0010): an
  // applier's UPDATE must keep that v1 digest, not replace it by a v2 one (which would hide a change made
  // while the operator was upgraded); a changed spec records the current (v2) digest as always.
  const V1 = `sha256:${'3'.repeat(64)}`;
  const V2: DigestOutcome = { ok: true, digest: `hmac-sha256:v2:0123abcd:${'4'.repeat(64)}` };
  it.each<[string, JsonObject, string]>([
    ['an unchanged spec carries a v1 digest over', hr(), V1],
    ['an unchanged spec keeps a v1 digest the writer sent', hr({ annotations: { [DIGEST]: V1 } }), V1],
    ['a changed spec records the v2 digest', hr({ spec: { ...spec(), interval: '1m' } }), V2.digest],
  ])('v1 digests until the reconciler migrates them: %s', (_, object, want) => {
    const oldV1 = hr({ labels: { [MANAGED]: 'true' }, annotations: { [DIGEST]: V1 } });
    const req = request({ operation: 'UPDATE', object, oldObject: oldV1 });
    expect(meta(applyPatch(object, mutate(req, V2).patch)).annotations).toEqual({ [DIGEST]: want });
  });

  it('a changed spec records the current digest', () => {
    const object = hr({ spec: { ...spec(), interval: '1m' } });
    const req = request({ operation: 'UPDATE', object, oldObject: old });
    expect(digestNeed(planAdmission(req))).toBeDefined();
    expect(meta(patched(req, OK)).annotations).toEqual({ [DIGEST]: D1 });
  });

  it.each([
    ['admitted unstamped (webhook outage)', hr()],
    ['labelled, its lookup failed at creation', hr({ labels: { [MANAGED]: 'true' } })],
  ])(
    'no digest anywhere, spec unchanged (%s): the label only, no lookup (the reconciler triggers once)',
    (_, old) => {
      const req = request({ operation: 'UPDATE', object: hr(), oldObject: old });
      expect(digestNeed(planAdmission(req))).toBeUndefined();
      const d = mutate(req, OK);
      expect(d.reason).toBe('stamped:unknown');
      const after = meta(applyPatch(hr(), d.patch));
      expect(after.labels).toEqual({ [MANAGED]: 'true' });
      expect((after.annotations as JsonObject | undefined)?.[DIGEST]).toBeUndefined();
    },
  );
});

// Random HelmRelease-ish objects: our keys present or not, other keys, maps absent, valuesFrom varied.
const key = fc.constantFrom(
  MANAGED,
  DIGEST,
  Annotations.ignore,
  'a',
  'b/c',
  'x~y',
  'helmrelease-autopilot.dev/other',
);
const value = fc.constantFrom('true', 'false', D1, D2, '');
const map = fc.option(fc.dictionary(key, value, { maxKeys: 4 }), { nil: undefined });
const valuesFrom = fc.array(
  fc.record(
    { kind: fc.constantFrom('ConfigMap', 'Secret'), name: fc.constantFrom('a', 'b'), optional: fc.boolean() },
    { requiredKeys: ['kind', 'name'] },
  ),
  { maxLength: 3 },
);
const object = fc
  .record({ labels: map, annotations: map, valuesFrom, interval: fc.constantFrom('1m', '5m') })
  .map(({ labels, annotations, valuesFrom, interval }) =>
    hr({
      ...(labels ? { labels } : {}),
      ...(annotations ? { annotations } : {}),
      spec: { ...spec(valuesFrom), interval },
    }),
  );
const outcome: fc.Arbitrary<DigestOutcome | undefined> = fc.oneof(
  fc.constant(undefined),
  fc.constant(FAILED),
  fc.constantFrom(D1, D2).map((digest): DigestOutcome => ({ ok: true, digest })),
);

describe('mutate: properties', () => {
  it('a second pass over the patched object yields an empty patch (reinvocation is a no-op)', () => {
    fc.assert(
      fc.property(
        fc.constantFrom('CREATE', 'UPDATE'),
        object,
        object,
        outcome,
        (operation, obj, old, out) => {
          const first = request({
            operation,
            object: obj,
            oldObject: operation === 'UPDATE' ? old : undefined,
          });
          const once = applyPatch(obj, mutate(first, out).patch);
          // Reinvocation sees the patched object as the new incoming object, same oldObject, same data.
          const second = mutate({ ...first, object: once }, out);
          expect(second.patch).toEqual([]);
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('never touches anything but our label and digest annotation, and never denies', () => {
    fc.assert(
      fc.property(
        fc.constantFrom('CREATE', 'UPDATE'),
        object,
        object,
        outcome,
        (operation, obj, old, out) => {
          const d = mutate(request({ operation, object: obj, oldObject: old }), out);
          expect(d.allowed).toBe(true);
          for (const op of d.patch) {
            expect([
              '/metadata/labels',
              '/metadata/annotations',
              '/metadata/labels/helmrelease-autopilot.dev~1managed',
              '/metadata/annotations/helmrelease-autopilot.dev~1values-digest',
            ]).toContain(op.path);
          }
        },
      ),
      { numRuns: 2000 },
    );
  });
});

describe('mutate: the operator state an UPDATE dropped comes back', () => {
  const state = {
    [Annotations.linkDigests]: '{"ConfigMap/ns/l":"sha256:ab"}',
    [Annotations.retryAttempts]: '2',
    [Annotations.retryLastAttempt]: '2026-01-01T00:00:00Z',
    [Annotations.retryEpisode]: 'e1',
    [Annotations.retryExhausted]: '2026-01-01T01:00:00Z',
    [Annotations.retryResetHandled]: 'restart-1',
  };

  it("carries exactly the operator state: the user's retry-reset-at token is never carried", () => {
    expect([...CARRIED_STATE].sort()).toEqual(Object.keys(state).sort());
    const oldObject = hr({ annotations: { ...state, [Annotations.retryResetAt]: 'restart-2' } });
    const req = request({ operation: 'UPDATE', object: hr(), oldObject });
    expect((meta(patched(req, OK)).annotations as JsonObject)[Annotations.retryResetAt]).toBeUndefined();
  });

  it.each([
    ['a managed release, spec unchanged', spec(), spec()],
    ['a managed release whose spec changed', spec(), spec([{ kind: 'Secret', name: 's' }])],
    ['a release without valuesFrom (retries apply to every release)', spec([]), spec([])],
  ])('%s', (_name, oldSpec, newSpec) => {
    const oldObject = hr({ annotations: { ...state, [DIGEST]: D1 }, spec: oldSpec });
    const req = request({ operation: 'UPDATE', object: hr({ spec: newSpec }), oldObject });
    const annotations = meta(patched(req, OK)).annotations as JsonObject;
    for (const [k, v] of Object.entries(state)) expect(annotations[k]).toBe(v);
  });

  it('keeps a value the writer sent, and restores nothing on CREATE', () => {
    const oldObject = hr({ annotations: state });
    const sent = { ...state, [Annotations.retryAttempts]: '3' };
    const update = request({ operation: 'UPDATE', object: hr({ annotations: sent }), oldObject });
    expect((meta(patched(update, OK)).annotations as JsonObject)[Annotations.retryAttempts]).toBe('3');
    const create = request({ object: hr() });
    const annotations = (meta(patched(create, OK)).annotations ?? {}) as JsonObject;
    for (const k of Object.keys(state)) expect(annotations[k]).toBeUndefined();
  });

  it('is idempotent: a second pass over the restored object patches nothing', () => {
    const oldObject = hr({ annotations: { ...state, [DIGEST]: D1 } });
    const req = request({ operation: 'UPDATE', object: hr(), oldObject });
    const once = patched(req, OK);
    expect(mutate({ ...req, object: once }, OK).patch).toEqual([]);
  });
});
