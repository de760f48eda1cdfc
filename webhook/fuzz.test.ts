// Fuzz: generated AdmissionReviews (valid, malformed, huge, deeply nested) through the webhook's handler.
// Property: it never throws or crashes; every AdmissionReview with a request uid is answered 200,
// allowed: true, with that uid; anything else gets a 4xx (never a 5xx). Time per review is printed.
// 100,000 go through admit() (the handler the route calls) and 10,000 through the HTTP layer (fastify
// inject: content-type parser, body limit, serialization): inject costs ~10x more per request, and the
// whole file has to stay within about a minute on a 2-core machine.
import { performance } from 'node:perf_hooks';
import fc from 'fast-check';
import Fastify from 'fastify';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { summary } from '../bench/stats.ts';
import { Annotations, Flux, Labels } from '../src/names.ts';
import { testLogger } from '../test/support/log.ts';
import { memoryLookup } from '../test/support/webhook.ts';
import { type AdmitDeps, admit } from './admit.ts';
import { createWebhookMetrics } from './metrics.ts';
import { BODY_LIMIT, registerRoutes } from './server.ts';

const HANDLER_REVIEWS = 100_000;
const HTTP_REVIEWS = 10_000;
const BATCH = 2_000;

const registry = new Registry();
const deps: AdmitDeps = {
  lookup: memoryLookup({
    'ConfigMap/apps/v': { data: { 'values.yaml': 'a: 1' } },
    'Secret/apps/s': { data: { 'values.yaml': Buffer.from('password: x').toString('base64') } },
    'ConfigMap/other/v': { data: { x: 'y' } },
  }),
  lookupTimeoutMs: 200,
  metrics: createWebhookMetrics(registry),
  logger: testLogger(),
};

// --- generators -------------------------------------------------------------------------------------

const shortString = fc.string({ maxLength: 24 });
/** A value of the wrong type: mostly cheap scalars and empty containers, sometimes any JSON. */
const junk = fc.oneof(
  { weight: 8, arbitrary: fc.oneof(fc.constant(null), fc.integer(), fc.boolean(), shortString) },
  { weight: 2, arbitrary: fc.constantFrom<unknown>([], {}, [1, 'a'], { a: null }) },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 2 }) },
);
/** Mostly the right type, sometimes junk. */
const maybe = <T>(right: fc.Arbitrary<T>) =>
  fc.oneof({ weight: 9, arbitrary: right as fc.Arbitrary<unknown> }, { weight: 1, arbitrary: junk });
const name = fc.oneof(fc.constantFrom('v', 's', 'absent', 'app', ''), shortString);
const namespace = fc.oneof(fc.constantFrom('apps', 'other', 'kube-system', ''), shortString);
const ourKeys = [...Object.values(Annotations), ...Object.values(Labels), Flux.requestedAt, Flux.forceAt];
const key = fc.oneof(fc.constantFrom(...ourKeys), shortString);
const stringMapArb = fc.dictionary(key, fc.oneof(shortString, fc.constantFrom('true', 'sha256:00', '')), {
  maxKeys: 6,
});

const valuesRef = fc.record(
  {
    kind: maybe(fc.constantFrom('ConfigMap', 'Secret', 'HelmRepository')),
    name: maybe(name),
    valuesKey: maybe(fc.oneof(fc.constantFrom('values.yaml', 'x'), shortString)),
    targetPath: maybe(shortString),
    optional: maybe(fc.boolean()),
  },
  { requiredKeys: [] },
);

const helmRelease = fc.record(
  {
    apiVersion: fc.oneof(fc.constant('helm.toolkit.fluxcd.io/v2'), shortString),
    kind: fc.oneof(fc.constant('HelmRelease'), shortString),
    metadata: maybe(
      fc.record(
        { name, namespace, labels: maybe(stringMapArb), annotations: maybe(stringMapArb) },
        { requiredKeys: [] },
      ),
    ),
    spec: maybe(
      fc.record(
        {
          valuesFrom: maybe(fc.array(maybe(valuesRef), { maxLength: 8 })),
          suspend: maybe(fc.boolean()),
          values: junk,
        },
        { requiredKeys: [] },
      ),
    ),
  },
  { requiredKeys: [] },
);

const request = fc.record(
  {
    uid: fc.oneof(fc.uuid(), fc.string({ minLength: 1, maxLength: 40 })),
    kind: maybe(fc.constant({ group: 'helm.toolkit.fluxcd.io', version: 'v2', kind: 'HelmRelease' })),
    resource: maybe(
      fc.constant({ group: 'helm.toolkit.fluxcd.io', version: 'v2', resource: 'helmreleases' }),
    ),
    subResource: maybe(fc.constantFrom('', 'status')),
    operation: maybe(
      fc.oneof(
        { weight: 9, arbitrary: fc.constantFrom('CREATE', 'UPDATE', 'DELETE', 'CONNECT') },
        { weight: 1, arbitrary: shortString },
      ),
    ),
    namespace: maybe(namespace),
    name: maybe(name),
    userInfo: maybe(
      fc.record({
        username: fc.constantFrom(
          'alice',
          'system:anonymous',
          'system:serviceaccount:helmrelease-autopilot:helmrelease-autopilot',
        ),
      }),
    ),
    object: maybe(helmRelease),
    oldObject: maybe(helmRelease),
    dryRun: maybe(fc.boolean()),
  },
  { requiredKeys: ['uid'] },
);

const envelope = (req: unknown) => ({
  apiVersion: 'admission.k8s.io/v1',
  kind: 'AdmissionReview',
  request: req,
});

/** Not an AdmissionReview v1 with a uid: wrong envelope, missing or non-string uid, not an object at all. */
const malformed = fc.oneof(
  junk,
  fc.record({ apiVersion: junk, kind: junk, request }),
  request.map((r) => envelope({ ...r, uid: undefined })),
  fc.tuple(request, junk).map(([r, uid]) => envelope({ ...r, uid })),
  junk.map((r) => envelope(r)),
);

/** A review carrying megabytes: long annotation values, thousands of references and annotations. */
const huge = fc.constantFrom(0, 1, 2, 3).map((variant) => {
  const big = 'x'.repeat(1 << 20);
  const annotations: Record<string, string> =
    variant === 0
      ? { [Annotations.valuesDigest]: big, [Annotations.retryAttempts]: big }
      : Object.fromEntries(Array.from({ length: 10_000 }, (_, i) => [`k${i}`, `v${i}`]));
  const valuesFrom =
    variant === 2
      ? Array.from({ length: 5_000 }, (_, i) => ({ kind: i % 2 ? 'Secret' : 'ConfigMap', name: `n${i}` }))
      : [{ kind: 'ConfigMap', name: big }];
  const hr = { metadata: { name: 'huge', annotations }, spec: { valuesFrom, values: { blob: big } } };
  return envelope({
    uid: `huge-${variant}`,
    kind: { group: 'helm.toolkit.fluxcd.io', version: 'v2', kind: 'HelmRelease' },
    resource: { group: 'helm.toolkit.fluxcd.io', version: 'v2', resource: 'helmreleases' },
    operation: variant === 3 ? 'UPDATE' : 'CREATE',
    namespace: 'apps',
    name: 'huge',
    userInfo: { username: 'alice' },
    object: hr,
    oldObject: variant === 3 ? hr : null,
  });
});

function nested(depth: number, leaf: unknown): unknown {
  let v = leaf;
  for (let i = 0; i < depth; i++) v = i % 2 ? [v] : { a: v };
  return v;
}

/** Deeply nested values wherever the object has room for them (and where it should have strings). */
const deep = fc.integer({ min: 1_000, max: 5_000 }).map((depth) =>
  envelope({
    uid: `deep-${depth}`,
    kind: { group: 'helm.toolkit.fluxcd.io', version: 'v2', kind: 'HelmRelease' },
    resource: { group: 'helm.toolkit.fluxcd.io', version: 'v2', resource: 'helmreleases' },
    operation: 'UPDATE',
    namespace: 'apps',
    name: 'deep',
    userInfo: { username: 'alice' },
    object: {
      metadata: { name: 'deep', labels: nested(depth, 'x'), annotations: nested(depth, 'x') },
      spec: { valuesFrom: [nested(depth, { kind: 'ConfigMap', name: 'v' })], values: nested(depth, 1) },
    },
    oldObject: { metadata: { name: 'deep', annotations: { [Annotations.retryAttempts]: nested(depth, 1) } } },
  }),
);

/** The JSON text of a review nested `depth` levels deep in spec.values (too deep to build with stringify). */
function deepReviewText(depth: number): string {
  const head = JSON.stringify(
    envelope({
      uid: `deep-text-${depth}`,
      kind: { group: 'helm.toolkit.fluxcd.io', version: 'v2', kind: 'HelmRelease' },
      operation: 'CREATE',
      namespace: 'apps',
      name: 'deep',
      object: {
        metadata: { name: 'deep' },
        spec: { valuesFrom: [{ kind: 'ConfigMap', name: 'v' }], values: 0 },
      },
    }),
  );
  const at = head.indexOf('"values":0') + '"values":'.length;
  return `${head.slice(0, at)}${'{"a":['.repeat(depth)}1${']}'.repeat(depth)}${head.slice(at + 1)}`;
}

type Category = 'valid' | 'malformed' | 'huge' | 'deep';
const review: fc.Arbitrary<{ category: Category; body: unknown }> = fc.oneof(
  { weight: 601, arbitrary: request.map((r) => ({ category: 'valid' as const, body: envelope(r) })) },
  { weight: 390, arbitrary: malformed.map((b) => ({ category: 'malformed' as const, body: b })) },
  { weight: 1, arbitrary: huge.map((b) => ({ category: 'huge' as const, body: b })) },
  { weight: 8, arbitrary: deep.map((b) => ({ category: 'deep' as const, body: b })) },
);

/** The uid the answer must echo: present when the body is an AdmissionReview v1 with a string uid. */
function expectedUid(body: unknown): string | undefined {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return undefined;
  const b = body as Record<string, unknown>;
  if (b.apiVersion !== 'admission.k8s.io/v1' || b.kind !== 'AdmissionReview') return undefined;
  const r = b.request;
  if (typeof r !== 'object' || r === null || Array.isArray(r)) return undefined;
  const uid = (r as Record<string, unknown>).uid;
  return typeof uid === 'string' && uid !== '' ? uid : undefined;
}

/** What is wrong with an answer, or undefined. */
function problem(uid: string | undefined, status: number, answer: unknown): string | undefined {
  if (uid === undefined) return status >= 400 && status < 500 ? undefined : `non-review answered ${status}`;
  const response = (answer as { response?: { uid?: unknown; allowed?: unknown } }).response;
  if (status !== 200) return `review answered ${status}`;
  if (response?.allowed !== true) return 'not allowed';
  if (response.uid !== uid) return `uid ${String(response.uid)} instead of ${uid}`;
  return undefined;
}

function report(what: string, times: Map<Category, number[]>) {
  const all = [...times.values()].flat();
  const lines = [`${what}: ${all.length} reviews, ms per review ${JSON.stringify(summary(all, 4))}`];
  for (const [category, t] of times) lines.push(`  ${category}: ${JSON.stringify(summary(t, 4))}`);
  console.log(lines.join('\n'));
}

const sample = (n: number, seed: number) => fc.sample(review, { numRuns: n, seed });
const describeBody = (body: unknown) => JSON.stringify(body)?.slice(0, 300) ?? String(body);

describe('fuzz: generated AdmissionReviews', () => {
  it(`${HANDLER_REVIEWS} through the handler: no crash, every review allowed with its uid`, async () => {
    const times = new Map<Category, number[]>();
    const failures: string[] = [];
    for (let done = 0; done < HANDLER_REVIEWS; done += BATCH) {
      for (const { category, body } of sample(Math.min(BATCH, HANDLER_REVIEWS - done), 42 + done)) {
        const started = performance.now();
        let outcome: string | undefined;
        try {
          const result = await admit(body, deps);
          outcome = problem(expectedUid(body), result.status, result.body);
        } catch (err) {
          outcome = `threw ${String(err)}`;
        }
        const t = times.get(category) ?? [];
        t.push(performance.now() - started);
        times.set(category, t);
        if (outcome && failures.length < 5) failures.push(`${category}: ${outcome}: ${describeBody(body)}`);
      }
    }
    report('admit()', times);
    expect(failures).toEqual([]);
    expect([...times.values()].flat()).toHaveLength(HANDLER_REVIEWS);
    expect(times.get('huge')?.length).toBeGreaterThan(0);
    expect(times.get('deep')?.length).toBeGreaterThan(0);
  }, 120_000);

  it(`${HTTP_REVIEWS} through the HTTP layer (inject), also as broken JSON: never a 5xx`, async () => {
    const app = Fastify({
      bodyLimit: BODY_LIMIT,
      onProtoPoisoning: 'ignore',
      onConstructorPoisoning: 'ignore',
      logger: false,
    });
    registerRoutes(app, { deps, ready: () => true, registry });
    await app.ready();
    const times = new Map<Category, number[]>();
    const failures: string[] = [];
    try {
      const bodies = sample(HTTP_REVIEWS, 7);
      for (let i = 0; i < bodies.length; i++) {
        const { category, body } = bodies[i] as { category: Category; body: unknown };
        // Deep bodies are written as text, 20 times deeper than the handler's (tens of thousands of levels,
        // for the JSON parser); every tenth body is cut short (invalid JSON).
        const depth =
          category === 'deep' ? Number(/deep-(\d+)/.exec(JSON.stringify(expectedUid(body)))?.[1]) : 0;
        let payload = depth ? deepReviewText(depth * 20) : (JSON.stringify(body) ?? 'undefined');
        if (i % 10 === 0) payload = payload.slice(0, Math.floor(payload.length / 2));
        const contentType = i % 7 === 0 ? 'text/plain' : 'application/json';
        const started = performance.now();
        const res = await app.inject({
          method: 'POST',
          url: '/mutate',
          headers: { 'content-type': contentType },
          payload,
        });
        const t = times.get(category) ?? [];
        t.push(performance.now() - started);
        times.set(category, t);
        let parsed: unknown;
        let uid: string | undefined;
        try {
          parsed = JSON.parse(payload);
          uid = expectedUid(parsed);
        } catch {
          uid = undefined;
        }
        const outcome =
          res.statusCode >= 500
            ? `HTTP ${res.statusCode}`
            : problem(uid, res.statusCode, uid ? res.json() : undefined);
        if (outcome && failures.length < 5)
          failures.push(`${category}: ${outcome}: ${payload.slice(0, 300)}`);
      }
    } finally {
      await app.close();
    }
    report('inject()', times);
    expect(failures).toEqual([]);
  }, 120_000);
});
