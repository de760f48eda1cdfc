// One AdmissionReview in, one answer out: parse, plan, look the digest up (bounded), decide. Transport-free,
// so it is tested with app.inject and benchmarked in-process. Never denies; only a non-review gets 400.
import { performance } from 'node:perf_hooks';
import type { PatchOp } from '../src/admission/jsonpatch.ts';
import {
  type DigestNeed,
  type DigestOutcome,
  decideAdmission,
  digestNeed,
  planAdmission,
} from '../src/admission/mutate.ts';
import {
  type AdmissionReviewResponse,
  parseAdmissionReview,
  reviewResponse,
} from '../src/admission/review.ts';
import type { Logger } from '../src/log.ts';
import { errorMessage } from '../src/util/errors.ts';
import type { ValuesLookup } from '../src/values/lookup.ts';
import type { WebhookMetrics } from './metrics.ts';

export interface AdmitDeps {
  lookup: ValuesLookup;
  /** Budget of one values lookup; past it the request is admitted without a digest. */
  lookupTimeoutMs: number;
  metrics: WebhookMetrics;
  logger: Logger;
  /** Releases outside the operator's namespace scope are admitted untouched (src/scope.ts); default all. */
  inScope?: (namespace: string) => boolean;
}

export type AdmitResult =
  | { status: 200; body: AdmissionReviewResponse }
  | { status: 400; body: { message: string } };

class LookupTimeout extends Error {}

const OPERATIONS = new Set(['CREATE', 'UPDATE', 'DELETE', 'CONNECT']);
/** Metric label of an operation; anything unknown is "other", so input cannot grow the label set. */
const operationLabel = (op: string) => (OPERATIONS.has(op) ? op : 'other');

/** The digest of what `need` refers to, or why there is none; never rejects. */
export async function lookupDigest(
  lookup: ValuesLookup,
  need: DigestNeed,
  timeoutMs: number,
): Promise<DigestOutcome & { timedOut?: boolean }> {
  const abort = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      abort.abort();
      reject(new LookupTimeout(`no answer within ${timeoutMs} ms`));
    }, timeoutMs);
  });
  try {
    const digest = await Promise.race([
      lookup.valuesDigest(need.namespace, need.refs, abort.signal),
      timeout,
    ]);
    return { ok: true, digest };
  } catch (err) {
    return {
      ok: false,
      error: errorMessage(err),
      ...(err instanceof LookupTimeout ? { timedOut: true } : {}),
    };
  } finally {
    clearTimeout(timer);
  }
}

/** What a patch touches, without its values: digests are derived from Secret data and stay out of logs. */
export function patchSummary(patch: readonly PatchOp[]): string[] {
  return patch.map((op) =>
    op.op === 'add' && typeof op.value === 'object'
      ? `${op.op} ${op.path} {${Object.keys(op.value).join(', ')}}`
      : `${op.op} ${op.path}`,
  );
}

export async function admit(body: unknown, deps: AdmitDeps): Promise<AdmitResult> {
  const started = performance.now();
  const parsed = parseAdmissionReview(body);
  if (!parsed.ok) {
    deps.metrics.errors.inc({ type: 'bad_request' });
    deps.logger.warn({ err: parsed.error }, 'rejected a request that is not an AdmissionReview');
    return { status: 400, body: { message: parsed.error } };
  }
  const req = parsed.request;
  const log = deps.logger.child({
    uid: req.uid,
    kind: req.kind.kind,
    namespace: req.namespace,
    name: req.name,
    operation: req.operation,
    dryRun: req.dryRun,
  });
  let outcome = 'skipped';
  try {
    const plan = planAdmission(req, deps.inScope);
    const need = digestNeed(plan);
    let digest: DigestOutcome | undefined;
    if (need) {
      const result = await lookupDigest(deps.lookup, need, deps.lookupTimeoutMs);
      if (!result.ok) {
        deps.metrics.errors.inc({ type: result.timedOut ? 'lookup_timeout' : 'lookup_failed' });
        log.warn({ err: result.error }, 'values lookup failed; admitting without a digest');
      }
      digest = result;
    }
    const decision = decideAdmission(plan, digest);
    deps.metrics.decisions.inc({ reason: decision.reason });
    outcome = plan.action === 'skip' ? 'skipped' : decision.patch.length > 0 ? 'patched' : 'unchanged';
    if (decision.patch.length > 0)
      log.info({ reason: decision.reason, patch: patchSummary(decision.patch) }, 'stamping HelmRelease');
    else log.debug({ reason: decision.reason }, 'nothing to stamp');
    return { status: 200, body: reviewResponse(req.uid, decision.patch, decision.warnings) };
  } catch (err) {
    // A bug must not block admission: answer allowed, unpatched, and count it.
    outcome = 'error';
    deps.metrics.errors.inc({ type: 'internal' });
    log.error({ err: errorMessage(err) }, 'admission decision failed; admitting unchanged');
    return { status: 200, body: reviewResponse(req.uid, [], []) };
  } finally {
    deps.metrics.duration.observe(
      { operation: operationLabel(req.operation), outcome },
      (performance.now() - started) / 1000,
    );
  }
}
