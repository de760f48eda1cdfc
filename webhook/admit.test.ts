import fc from 'fast-check';
import Fastify, { type FastifyInstance } from 'fastify';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Annotations, Labels } from '../src/names.ts';
import { isObject, type Json, type JsonObject } from '../src/util/narrow.ts';
import type { ValuesLookup } from '../src/values/lookup.ts';
import { testLogger } from '../test/support/log.ts';
import { admissionReview, helmRelease, memoryLookup } from '../test/support/webhook.ts';
import { createWebhookMetrics } from './metrics.ts';
import { registerRoutes } from './server.ts';

const registry = new Registry();
const metrics = createWebhookMetrics(registry);

function appWith(lookup: ValuesLookup, lookupTimeoutMs = 200): FastifyInstance {
  const app = Fastify({ onProtoPoisoning: 'ignore', onConstructorPoisoning: 'ignore', bodyLimit: 1 << 20 });
  registerRoutes(app, {
    deps: { lookup, lookupTimeoutMs, metrics, logger: testLogger() },
    ready: () => lookup.hasSynced(),
    registry,
  });
  return app;
}

const lookup = memoryLookup({ 'ConfigMap/ns/v': { data: { 'values.yaml': 'a: 1' } } });
const app = appWith(lookup);
beforeAll(() => app.ready());
afterAll(() => app.close());

const post = (payload: unknown, headers: Record<string, string> = {}) =>
  app.inject({
    method: 'POST',
    url: '/mutate',
    headers: { 'content-type': 'application/json', ...headers },
    payload: typeof payload === 'string' ? payload : JSON.stringify(payload),
  });

function decodePatch(body: JsonObject): unknown[] {
  const r = body.response as JsonObject;
  return r.patch ? JSON.parse(Buffer.from(r.patch as string, 'base64').toString()) : [];
}

async function counter(name: string, labels: Record<string, string>): Promise<number> {
  const m = (await registry.getMetricsAsJSON()).find((x) => x.name === name);
  const v = m?.values.find((x) => Object.entries(labels).every(([k, val]) => x.labels[k] === val));
  return v?.value ?? 0;
}

describe('POST /mutate', () => {
  it('stamps a HelmRelease and echoes the uid', async () => {
    const res = await post(admissionReview('uid-1', helmRelease('a', [{ kind: 'ConfigMap', name: 'v' }])));
    expect(res.statusCode).toBe(200);
    const body = res.json() as JsonObject;
    expect(body).toMatchObject({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' });
    expect(body.response).toMatchObject({ uid: 'uid-1', allowed: true, patchType: 'JSONPatch' });
    expect(decodePatch(body)).toEqual([
      { op: 'add', path: '/metadata/labels', value: { [Labels.managed]: 'true' } },
      {
        op: 'add',
        path: '/metadata/annotations',
        value: {
          [Annotations.valuesDigest]: expect.stringMatching(/^hmac-sha256:v2:[0-9a-f]{8}:[0-9a-f]{64}$/),
        },
      },
    ]);
  });

  it.each([
    ['invalid JSON', '{"apiVersion":'],
    ['a JSON array', '[]'],
    ['another kind', { apiVersion: 'v1', kind: 'Status' }],
    ['a review without uid', { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: {} }],
  ])('answers 400 to %s', async (_, payload) => {
    expect((await post(payload)).statusCode).toBe(400);
  });

  it('reads a body sent with another content type as JSON', async () => {
    const res = await post(admissionReview('uid-ct', helmRelease('a', [])), { 'content-type': 'text/plain' });
    expect(res.statusCode).toBe(200);
  });

  it('treats "__proto__" in Helm values as data', async () => {
    const hr = helmRelease('a', [{ kind: 'ConfigMap', name: 'v' }]);
    const payload = JSON.stringify(admissionReview('uid-proto', hr)).replace(
      '"interval":"5m"',
      '"interval":"5m","values":{"__proto__":{"x":1},"constructor":{"prototype":{}}}',
    );
    const res = await post(payload);
    expect(res.statusCode).toBe(200);
    expect(decodePatch(res.json())).toHaveLength(2);
  });

  it('a lookup that fails admits without digest, with a warning and a metric', async () => {
    const failing = appWith({ hasSynced: () => true, valuesDigest: () => Promise.reject(new Error('boom')) });
    const before = await counter('helmrelease_autopilot_webhook_errors_total', { type: 'lookup_failed' });
    const res = await failing.inject({
      method: 'POST',
      url: '/mutate',
      payload: admissionReview('uid-f', helmRelease('a', [{ kind: 'ConfigMap', name: 'v' }])),
    });
    const body = res.json() as JsonObject;
    expect(body.response).toMatchObject({
      uid: 'uid-f',
      allowed: true,
      warnings: [expect.stringContaining('boom')],
    });
    expect(decodePatch(body)).toEqual([
      { op: 'add', path: '/metadata/labels', value: { [Labels.managed]: 'true' } },
    ]);
    expect(await counter('helmrelease_autopilot_webhook_errors_total', { type: 'lookup_failed' })).toBe(
      before + 1,
    );
    await failing.close();
  });

  it('a lookup that hangs is cut off at its budget', async () => {
    let aborted = false;
    const hanging = appWith(
      {
        hasSynced: () => true,
        valuesDigest: (_ns, _refs, signal) =>
          new Promise(() =>
            signal?.addEventListener('abort', () => {
              aborted = true;
            }),
          ),
      },
      100,
    );
    const started = Date.now();
    const res = await hanging.inject({
      method: 'POST',
      url: '/mutate',
      payload: admissionReview('uid-t', helmRelease('a', [{ kind: 'ConfigMap', name: 'v' }])),
    });
    expect(Date.now() - started).toBeLessThan(1000);
    expect(res.json().response).toMatchObject({
      allowed: true,
      warnings: [expect.stringContaining('100 ms')],
    });
    expect(aborted).toBe(true);
    expect(
      await counter('helmrelease_autopilot_webhook_errors_total', { type: 'lookup_timeout' }),
    ).toBeGreaterThan(0);
    await hanging.close();
  });
});

describe('health and metrics', () => {
  it('/healthz answers, /readyz follows the lookup sync, /metrics lists ours', async () => {
    expect((await app.inject({ url: '/healthz' })).statusCode).toBe(200);
    expect((await app.inject({ url: '/readyz' })).statusCode).toBe(200);
    const notSynced = appWith(memoryLookup({}, false));
    expect((await notSynced.inject({ url: '/readyz' })).statusCode).toBe(503);
    await notSynced.close();
    const text = (await app.inject({ url: '/metrics' })).body;
    expect(text).toContain('helmrelease_autopilot_webhook_admission_duration_seconds_bucket');
    expect(text).toContain('helmrelease_autopilot_webhook_decisions_total{reason="stamped:lookup"}');
  });
});

// Fuzzing: random JSON, and valid reviews with random parts replaced by random JSON.
// fast-check's JsonValue admits -0 and such; as data they are plain JSON.
const anyJson = fc.jsonValue({ maxDepth: 4 }).map((v) => v as Json);
const validReview = fc
  .record({
    operation: fc.constantFrom('CREATE', 'UPDATE', 'DELETE', 'CONNECT', 'X'),
    valuesFrom: fc.array(
      fc.record({
        kind: fc.constantFrom('ConfigMap', 'Secret', 'Other'),
        name: fc.constantFrom('v', 'w', ''),
      }),
      { maxLength: 3 },
    ),
    uid: fc.string({ minLength: 1, maxLength: 20 }),
  })
  .map(({ operation, valuesFrom, uid }) =>
    admissionReview(uid, helmRelease('a', valuesFrom), {
      operation,
      oldObject: helmRelease('a', valuesFrom, { annotations: { [Annotations.valuesDigest]: 'sha256:1' } }),
    }),
  );
const paths = [
  ['request', 'object'],
  ['request', 'oldObject'],
  ['request', 'object', 'metadata'],
  ['request', 'object', 'metadata', 'labels'],
  ['request', 'object', 'metadata', 'annotations'],
  ['request', 'object', 'spec'],
  ['request', 'object', 'spec', 'valuesFrom'],
  ['request', 'oldObject', 'spec'],
  ['request', 'kind'],
  ['request', 'subResource'],
  ['request', 'operation'],
  ['request', 'namespace'],
  ['request', 'userInfo'],
  ['request', 'dryRun'],
];
const mutatedReview = fc
  .tuple(validReview, fc.array(fc.tuple(fc.constantFrom(...paths), anyJson), { minLength: 1, maxLength: 3 }))
  .map(([review, edits]) => {
    for (const [path, value] of edits) {
      let node: unknown = review;
      for (const p of path.slice(0, -1)) node = isObject(node) ? node[p] : undefined;
      if (isObject(node)) node[path[path.length - 1] as string] = value;
    }
    return review;
  });

describe('fuzz: no input crashes the handler', () => {
  it('random and mutated reviews: a valid answer with the uid echoed, or 400 for non-reviews', async () => {
    await fc.assert(
      fc.asyncProperty(fc.oneof(validReview, mutatedReview, anyJson), async (body) => {
        const res = await post(body);
        const uid = isObject(body) && isObject(body.request) ? body.request.uid : undefined;
        const isReview =
          isObject(body) &&
          body.apiVersion === 'admission.k8s.io/v1' &&
          body.kind === 'AdmissionReview' &&
          typeof uid === 'string' &&
          uid !== '';
        if (!isReview) {
          expect(res.statusCode).toBe(400);
          return;
        }
        expect(res.statusCode).toBe(200);
        const answer = res.json() as JsonObject;
        expect(answer.apiVersion).toBe('admission.k8s.io/v1');
        expect(answer.kind).toBe('AdmissionReview');
        const r = answer.response as JsonObject;
        expect(r.uid).toBe(uid);
        expect(r.allowed).toBe(true);
        if (r.patch !== undefined) {
          expect(r.patchType).toBe('JSONPatch');
          expect(Array.isArray(decodePatch(answer))).toBe(true);
        }
      }),
      { numRuns: 3000 },
    );
    expect(await counter('helmrelease_autopilot_webhook_errors_total', { type: 'internal' })).toBe(0);
  });
});
