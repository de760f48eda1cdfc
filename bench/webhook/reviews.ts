// The requests under test: AdmissionReviews of a HelmRelease as the API server sends them.
import { Annotations, Labels } from '../../src/names.ts';
import type { JsonObject } from '../../src/util/narrow.ts';
import { admissionReview, helmRelease } from '../../test/support/webhook.ts';

/** A HelmRelease CREATE as the API server sends it: two valuesFrom entries and ~2 kB of inline values. */
export function createReviewBody(namespace: string): JsonObject {
  const hr = helmRelease('bench', [
    { kind: 'ConfigMap', name: 'values' },
    { kind: 'Secret', name: 'secret-values', optional: true },
  ]);
  (hr.spec as JsonObject).values = {
    items: Array.from({ length: 40 }, (_, i) => ({ name: `item-${i}`, value: 'x'.repeat(30) })),
  };
  (hr.metadata as JsonObject).namespace = namespace;
  return admissionReview('00000000-0000-0000-0000-000000000000', hr, { namespace });
}

/** An UPDATE with an unchanged spec whose incoming object dropped the digest (carried over; no lookup). */
export function updateReviewBody(namespace: string): JsonObject {
  const create = createReviewBody(namespace);
  const object = (create.request as JsonObject).object as JsonObject;
  const old = structuredClone(object);
  (old.metadata as JsonObject).annotations = { [Annotations.valuesDigest]: `sha256:${'a'.repeat(64)}` };
  (old.metadata as JsonObject).labels = { [Labels.managed]: 'true' };
  return admissionReview('00000000-0000-0000-0000-000000000001', object, {
    operation: 'UPDATE',
    namespace,
    oldObject: old,
  });
}
