// The admission decision, pure: which HelmRelease requests to touch, where the digest comes from, and the
// JSON Patch that applies the stamp. The server does the one I/O step in between (the values lookup).
// See docs/adr/0001-digest-carry-over-on-update.md for why an unchanged spec keeps the previous digest.
import { parseValuesFrom, type ValuesReference } from '../flux/helmrelease.ts';
import { Annotations, Flux } from '../names.ts';
import { isObject, type JsonObject, stringMap } from '../util/narrow.ts';
import { mapPatch, type PatchOp } from './jsonpatch.ts';
import type { AdmissionRequest } from './review.ts';
import { desiredStamp, isManaged, type StampSubject } from './stamp.ts';

/** The result of a values lookup: the current digest, or why there is none. */
export type DigestOutcome = { ok: true; digest: string } | { ok: false; error: string };

/** What must be looked up to compute the digest. */
export interface DigestNeed {
  namespace: string;
  refs: readonly ValuesReference[];
}

/** Where the recorded digest comes from. */
export type DigestSource =
  | { from: 'none' }
  /**
   * Managed, but which data Flux read is unknown (an unchanged spec that carries no digest): the label
   * without a digest, which the reconciler answers with one trigger (src/triggers/decide.ts).
   */
  | { from: 'unknown' }
  | { from: 'incoming' | 'carried'; digest: string }
  /**
   * Look up the current digest. `fallback`: the digest stored before a spec change, kept when the lookup
   * fails (see digestSource).
   */
  | { from: 'lookup'; need: DigestNeed; fallback?: string };

export type Plan =
  | { action: 'skip'; reason: string }
  | {
      action: 'stamp';
      metadata: JsonObject;
      subject: StampSubject;
      digest: DigestSource;
      /** Operator state an UPDATE dropped, restored from oldObject. */
      carried: Record<string, string>;
    };

/**
 * The operator's own state besides the values digest. An UPDATE that lacks these (a PUT or an applier that
 * omits them) gets them back from oldObject: a lost link digest would lose a trigger, lost retry counters
 * would grant a new budget, a lost retry-reset-handled would let a retry-reset-at token act twice. The
 * operator's own writes are not sent here (matchConditions), so its removals stand. A user's removal is
 * undone too (admission cannot tell it from an applier's): the way to restart retries is a new
 * retry-reset-at token, which nothing carries (ADR 0001).
 */
export const CARRIED_STATE = [
  Annotations.linkDigests,
  Annotations.retryAttempts,
  Annotations.retryLastAttempt,
  Annotations.retryEpisode,
  Annotations.retryExhausted,
  Annotations.retryResetHandled,
] as const;

export interface Decision {
  allowed: true;
  patch: PatchOp[];
  warnings: string[];
  /** Why, for logs and metrics: skipped:<reason>, unmanaged, or stamped:<digest source>. */
  reason: string;
}

const skip = (reason: string): Plan => ({ action: 'skip', reason });

/** Decides what a request needs, before any lookup. `inScope`: the operator's namespace scope (src/scope.ts). */
export function planAdmission(
  req: AdmissionRequest,
  inScope: (namespace: string) => boolean = () => true,
): Plan {
  if (req.kind.group !== Flux.group || req.kind.kind !== Flux.kind) return skip('not-helmrelease');
  // Neither stamped nor looked up: the reconcilers do not act there either.
  if (!inScope(req.namespace)) return skip('out-of-scope');
  if (req.subResource !== '') return skip('subresource');
  if (req.operation !== 'CREATE' && req.operation !== 'UPDATE') return skip('operation');
  const object = isObject(req.object) ? req.object : undefined;
  const metadata = object && isObject(object.metadata) ? object.metadata : undefined;
  if (!object || !metadata) return skip('no-object');
  // A release on its way out (finalizers being removed) gains nothing from a stamp.
  if (metadata.deletionTimestamp) return skip('deleting');
  const spec = isObject(object.spec) ? object.spec : {};
  const valuesFrom = parseValuesFrom(spec.valuesFrom);
  // The CRD schema rejects a malformed valuesFrom after mutation; nothing to stamp until then.
  if (!valuesFrom.ok) return skip('invalid-valuesfrom');
  const annotations = stringMap(metadata.annotations);
  const subject: StampSubject = { metadata: { annotations }, valuesFrom: valuesFrom.value };
  const carried = carriedState(req, annotations);
  if (!isManaged(subject)) return { action: 'stamp', metadata, subject, digest: { from: 'none' }, carried };
  return {
    action: 'stamp',
    metadata,
    subject,
    digest: digestSource(req, spec, annotations, valuesFrom.value),
    carried,
  };
}

function carriedState(req: AdmissionRequest, annotations: Record<string, string>): Record<string, string> {
  if (req.operation !== 'UPDATE') return {};
  const old = isObject(req.oldObject) && isObject(req.oldObject.metadata) ? req.oldObject.metadata : {};
  const oldAnnotations = stringMap(old.annotations);
  const carried: Record<string, string> = {};
  for (const key of CARRIED_STATE) {
    const value = oldAnnotations[key];
    if (value !== undefined && annotations[key] === undefined) carried[key] = value;
  }
  return carried;
}

function digestSource(
  req: AdmissionRequest,
  spec: JsonObject,
  annotations: Record<string, string>,
  refs: readonly ValuesReference[],
): DigestSource {
  const lookup: DigestSource = { from: 'lookup', need: { namespace: req.namespace, refs } };
  if (req.operation !== 'UPDATE') return lookup;
  const old = isObject(req.oldObject) ? req.oldObject : {};
  const oldSpec = isObject(old.spec) ? old.spec : {};
  const carried = stringMap(isObject(old.metadata) ? old.metadata.annotations : undefined)[
    Annotations.valuesDigest
  ];
  // A changed spec makes Flux reconcile with the current data: record the current digest. Should the lookup
  // fail, keep the stored one rather than none: the reconciler then triggers only if the data differs from
  // it, whereas no digest makes it trigger once whatever the data (found by the soak: a suspend admitted
  // while etcd restarted cost a reconcile of unchanged data).
  if (!jsonEqual(spec, oldSpec)) return carried ? { ...lookup, fallback: carried } : lookup;
  // Unchanged spec: the recorded digest is the trigger's state. Keep what the writer sent (the operator
  // itself updates it), else what was stored (an applier dropped it).
  const incoming = annotations[Annotations.valuesDigest];
  if (incoming) return { from: 'incoming', digest: incoming };
  if (carried) return { from: 'carried', digest: carried };
  // No digest anywhere and the spec unchanged: admitted without one (a webhook outage, a failed lookup, an
  // opt-in). Flux reconciled it with data of some earlier moment, not of now: recording today's digest would
  // hide a change made since (found by the soak and its second reader). The label alone: the reconciler
  // triggers it once and records the digest then.
  return { from: 'unknown' };
}

/** Deep equality of JSON values: key order and prototypes do not matter, array order does. */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a))
    return Array.isArray(b) && a.length === b.length && a.every((v, i) => jsonEqual(v, b[i]));
  if (!isObject(a) || !isObject(b)) return false;
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length && ka.every((k) => Object.hasOwn(b, k) && jsonEqual(a[k], b[k]));
}

/** The lookup a plan needs, if any. */
export function digestNeed(plan: Plan): DigestNeed | undefined {
  return plan.action === 'stamp' && plan.digest.from === 'lookup' ? plan.digest.need : undefined;
}

const MAX_ERROR_IN_WARNING = 160;

/** Turns a plan and the lookup's outcome (when it needed one) into the answer. Never denies. */
export function decideAdmission(plan: Plan, outcome: DigestOutcome | undefined): Decision {
  if (plan.action === 'skip')
    return { allowed: true, patch: [], warnings: [], reason: `skipped:${plan.reason}` };
  const warnings: string[] = [];
  let digest: string | undefined;
  const source = plan.digest;
  if (source.from === 'incoming' || source.from === 'carried') digest = source.digest;
  else if (source.from === 'lookup') {
    if (outcome?.ok) digest = outcome.digest;
    else {
      const why = (outcome?.error ?? 'lookup not run').slice(0, MAX_ERROR_IN_WARNING);
      digest = source.fallback;
      warnings.push(
        digest
          ? `${Annotations.valuesDigest} kept as it was (values lookup failed: ${why}); the reconciler will request a reconcile if the data differs from it`
          : `${Annotations.valuesDigest} not recorded (values lookup failed: ${why}); the reconciler will record it and request one reconcile`,
      );
    }
  }
  const stamp = desiredStamp(plan.subject, digest);
  const patch = [
    ...mapPatch(plan.metadata, 'labels', stamp.labels),
    ...mapPatch(plan.metadata, 'annotations', { ...plan.carried, ...stamp.annotations }),
  ];
  const reason = source.from === 'none' ? 'unmanaged' : `stamped:${stampReason(source, outcome)}`;
  return { allowed: true, patch, warnings, reason };
}

/** lookup, lookup-failed (no digest), lookup-failed-kept (the stored one kept), incoming, carried or unknown. */
function stampReason(source: Exclude<DigestSource, { from: 'none' }>, outcome: DigestOutcome | undefined) {
  if (source.from !== 'lookup' || outcome?.ok) return source.from;
  return source.fallback ? 'lookup-failed-kept' : 'lookup-failed';
}

/** The whole decision for one request, given the lookup's outcome: mutate(review, lookup result). */
export function mutate(req: AdmissionRequest, outcome: DigestOutcome | undefined): Decision {
  return decideAdmission(planAdmission(req), outcome);
}
