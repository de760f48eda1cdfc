// AdmissionReview v1, parsed once at the edge into the narrow types the decision reads, and the answer
// built back. Anything that is not an AdmissionReview v1 with a request uid is rejected here (HTTP 400);
// anything that is one gets an answer, even when its object is nonsense.
import { isObject, type Json, type JsonObject, str } from '../util/narrow.ts';

export const ADMISSION_API_VERSION = 'admission.k8s.io/v1';
export const ADMISSION_KIND = 'AdmissionReview';

export type Operation = 'CREATE' | 'UPDATE' | 'DELETE' | 'CONNECT';

export interface GroupVersionKind {
  group: string;
  version: string;
  kind: string;
}

export interface AdmissionRequest {
  uid: string;
  kind: GroupVersionKind;
  /** The resource as requested (plural); subResource is "" for the main resource. */
  resource: { group: string; version: string; resource: string };
  subResource: string;
  operation: Operation | string;
  namespace: string;
  name: string;
  username: string;
  dryRun: boolean;
  /** The object as it will be stored (CREATE/UPDATE); unknown: the decision narrows it. */
  object: unknown;
  /** The stored object before this UPDATE. */
  oldObject: unknown;
}

export type ParsedReview = { ok: true; request: AdmissionRequest } | { ok: false; error: string };

function gvk(raw: unknown): GroupVersionKind {
  const o = isObject(raw) ? raw : {};
  return { group: str(o.group) ?? '', version: str(o.version) ?? '', kind: str(o.kind) ?? '' };
}

/** Parses a request body. Only the envelope (apiVersion, kind, request.uid) must be well formed. */
export function parseAdmissionReview(body: unknown): ParsedReview {
  if (!isObject(body)) return { ok: false, error: 'body is not a JSON object' };
  if (body.apiVersion !== ADMISSION_API_VERSION || body.kind !== ADMISSION_KIND) {
    return { ok: false, error: `body is not an ${ADMISSION_KIND} ${ADMISSION_API_VERSION}` };
  }
  const req = body.request;
  if (!isObject(req)) return { ok: false, error: 'request is missing' };
  const uid = str(req.uid);
  if (!uid) return { ok: false, error: 'request.uid is missing' };
  const resource = isObject(req.resource) ? req.resource : {};
  const userInfo = isObject(req.userInfo) ? req.userInfo : {};
  return {
    ok: true,
    request: {
      uid,
      kind: gvk(req.kind),
      resource: {
        group: str(resource.group) ?? '',
        version: str(resource.version) ?? '',
        resource: str(resource.resource) ?? '',
      },
      subResource: str(req.subResource) ?? '',
      operation: str(req.operation) ?? '',
      namespace: str(req.namespace) ?? '',
      name: str(req.name) ?? '',
      username: str(userInfo.username) ?? '',
      dryRun: req.dryRun === true,
      object: req.object,
      oldObject: req.oldObject,
    },
  };
}

export interface AdmissionResponse {
  uid: string;
  allowed: true;
  patchType?: 'JSONPatch';
  /** base64 of the JSON Patch. */
  patch?: string;
  warnings?: string[];
}

export interface AdmissionReviewResponse {
  apiVersion: typeof ADMISSION_API_VERSION;
  kind: typeof ADMISSION_KIND;
  response: AdmissionResponse;
}

/** The answer: always allowed (this webhook never denies); the patch only when there is one. */
export function reviewResponse(
  uid: string,
  patch: readonly Json[],
  warnings: readonly string[],
): AdmissionReviewResponse {
  const response: AdmissionResponse = { uid, allowed: true };
  if (patch.length > 0) {
    response.patchType = 'JSONPatch';
    response.patch = Buffer.from(JSON.stringify(patch)).toString('base64');
  }
  if (warnings.length > 0) response.warnings = [...warnings];
  return { apiVersion: ADMISSION_API_VERSION, kind: ADMISSION_KIND, response };
}

/** The metadata object of a raw Kubernetes object, when it has one. */
export function metadataOf(obj: unknown): JsonObject | undefined {
  return isObject(obj) && isObject(obj.metadata) ? obj.metadata : undefined;
}
