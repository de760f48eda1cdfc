import { describe, expect, it } from 'vitest';
import { jsonEqual } from './mutate.ts';
import { parseAdmissionReview, reviewResponse } from './review.ts';

describe('parseAdmissionReview', () => {
  it.each([
    ['a non-object', 'x', 'body is not a JSON object'],
    ['an array', [], 'body is not a JSON object'],
    ['another kind', { apiVersion: 'admission.k8s.io/v1', kind: 'Status' }, 'body is not an AdmissionReview'],
    [
      'v1beta1',
      { apiVersion: 'admission.k8s.io/v1beta1', kind: 'AdmissionReview' },
      'body is not an AdmissionReview',
    ],
    ['no request', { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' }, 'request is missing'],
    [
      'no uid',
      { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { uid: 3 } },
      'request.uid is missing',
    ],
  ])('rejects %s', (_, body, error) => {
    const r = parseAdmissionReview(body);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error).toContain(error);
  });

  it('narrows a request and defaults what is missing', () => {
    const r = parseAdmissionReview({
      apiVersion: 'admission.k8s.io/v1',
      kind: 'AdmissionReview',
      request: {
        uid: 'u',
        kind: { group: 'g', version: 'v', kind: 'K' },
        operation: 'UPDATE',
        userInfo: { username: 'bob', groups: ['x'] },
        dryRun: true,
        object: { a: 1 },
      },
    });
    expect(r).toEqual({
      ok: true,
      request: {
        uid: 'u',
        kind: { group: 'g', version: 'v', kind: 'K' },
        resource: { group: '', version: '', resource: '' },
        subResource: '',
        operation: 'UPDATE',
        namespace: '',
        name: '',
        username: 'bob',
        dryRun: true,
        object: { a: 1 },
        oldObject: undefined,
      },
    });
  });
});

describe('reviewResponse', () => {
  it('allows without patch fields when there is no patch', () => {
    expect(reviewResponse('u', [], [])).toEqual({
      apiVersion: 'admission.k8s.io/v1',
      kind: 'AdmissionReview',
      response: { uid: 'u', allowed: true },
    });
  });

  it('encodes the patch as base64 JSON and passes warnings', () => {
    const ops = [{ op: 'remove', path: '/metadata/labels/a~1b' }];
    const r = reviewResponse('u', ops, ['w']).response;
    expect(r.patchType).toBe('JSONPatch');
    expect(JSON.parse(Buffer.from(r.patch as string, 'base64').toString())).toEqual(ops);
    expect(r.warnings).toEqual(['w']);
  });
});

describe('jsonEqual', () => {
  it.each([
    [{ a: 1, b: [1, { c: 2 }] }, { b: [1, { c: 2 }], a: 1 }, true],
    [{ a: 1 }, { a: 1, b: null }, false],
    [[1, 2], [2, 1], false],
    [{ a: undefined }, { b: undefined }, false],
    [null, {}, false],
    ['1', 1, false],
    [Object.assign(Object.create(null), { a: 1 }), { a: 1 }, true],
  ])('%j == %j: %s', (a, b, want) => {
    expect(jsonEqual(a, b)).toBe(want);
  });
});
