// The parts of a Flux HelmRelease (helm.toolkit.fluxcd.io/v2) this project reads, parsed once at the edge.
import { DEFAULT_VALUES_KEY } from '../names.ts';
import { flatKey, internNamespace } from '../util/intern.ts';
import { array, bool, isObject, num, str, stringMap } from '../util/narrow.ts';

export type ValuesSourceKind = 'ConfigMap' | 'Secret';

/** One spec.valuesFrom entry, with Flux's defaults applied. */
export interface ValuesReference {
  kind: ValuesSourceKind;
  name: string;
  valuesKey: string;
  targetPath: string;
  optional: boolean;
  /** `literal: true` (helm-controller v1.6+): the bytes are set verbatim at targetPath. Absent when false. */
  literal?: boolean;
}

export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  observedGeneration?: number;
  lastTransitionTime?: string;
}

/** spec.install / spec.upgrade: what helm-controller does after a failed attempt of that action. */
export interface FailurePolicy {
  /** strategy.name: RemediateOnFailure or RetryOnFailure (v1.4+); undefined when unset (Flux's default). */
  strategy?: string;
  /** strategy.retryInterval as written (RetryOnFailure; Flux's default 5m). */
  retryInterval?: string;
  /** remediation.retries: failed attempts beyond the first before Stalled (Flux's default 0; < 0: no limit). */
  retries: number;
}

export interface HelmReleaseStatus {
  observedGeneration?: number;
  conditions: Condition[];
  failures: number;
  installFailures: number;
  upgradeFailures: number;
  lastAttemptedGeneration?: number;
  lastAttemptedRevision?: string;
  lastAttemptedConfigDigest?: string;
  /** install or upgrade: which of spec.install / spec.upgrade governs the current failure. */
  lastAttemptedReleaseAction?: string;
  lastHandledReconcileAt?: string;
  lastHandledForceAt?: string;
  lastHandledResetAt?: string;
  /** Revision (Helm release version) of the newest history snapshot, when there is one. */
  latestReleaseVersion?: number;
}

export interface ObjectMeta {
  name: string;
  namespace: string;
  uid: string;
  resourceVersion: string;
  generation: number;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  deletionTimestamp?: string;
  /** metadata.creationTimestamp in ms (whole seconds), when set. */
  createdAtMs?: number;
}

export interface HelmRelease {
  metadata: ObjectMeta;
  suspend: boolean;
  valuesFrom: ValuesReference[];
  /** spec.install / spec.upgrade failure handling (absent in objects built by hand: Flux's defaults). */
  install?: FailurePolicy;
  upgrade?: FailurePolicy;
  status: HelmReleaseStatus;
}

export type Parsed<T> = { ok: true; value: T } | { ok: false; error: string };

export function parseObjectMeta(raw: unknown): Parsed<ObjectMeta> {
  if (!isObject(raw)) return { ok: false, error: 'metadata is not an object' };
  const name = str(raw.name);
  if (!name) return { ok: false, error: 'metadata.name is missing' };
  const deletionTimestamp = str(raw.deletionTimestamp);
  const createdAtMs = Date.parse(str(raw.creationTimestamp) ?? '');
  return {
    ok: true,
    value: {
      name,
      namespace: internNamespace(str(raw.namespace) ?? ''),
      uid: str(raw.uid) ?? '',
      resourceVersion: str(raw.resourceVersion) ?? '',
      generation: num(raw.generation) ?? 0,
      labels: stringMap(raw.labels),
      annotations: stringMap(raw.annotations),
      ...(deletionTimestamp ? { deletionTimestamp } : {}),
      ...(Number.isFinite(createdAtMs) ? { createdAtMs } : {}),
    },
  };
}

/** Parses spec.valuesFrom. Entries Flux would reject (unknown kind, no name) are reported, not dropped silently. */
export function parseValuesFrom(raw: unknown): Parsed<ValuesReference[]> {
  const refs: ValuesReference[] = [];
  for (const [i, entry] of array(raw).entries()) {
    if (!isObject(entry)) return { ok: false, error: `spec.valuesFrom[${i}] is not an object` };
    const kind = str(entry.kind);
    if (kind !== 'ConfigMap' && kind !== 'Secret') {
      return { ok: false, error: `spec.valuesFrom[${i}].kind must be ConfigMap or Secret` };
    }
    const name = str(entry.name);
    if (!name) return { ok: false, error: `spec.valuesFrom[${i}].name is missing` };
    refs.push({
      kind,
      name,
      valuesKey: str(entry.valuesKey) || DEFAULT_VALUES_KEY,
      targetPath: str(entry.targetPath) ?? '',
      optional: bool(entry.optional) ?? false,
      ...(bool(entry.literal) ? { literal: true } : {}),
    });
  }
  return { ok: true, value: refs };
}

function parseCondition(raw: unknown): Condition | undefined {
  if (!isObject(raw)) return undefined;
  const type = str(raw.type);
  const status = str(raw.status);
  if (!type || (status !== 'True' && status !== 'False' && status !== 'Unknown')) return undefined;
  const observedGeneration = num(raw.observedGeneration);
  const lastTransitionTime = str(raw.lastTransitionTime);
  return {
    type,
    status,
    reason: str(raw.reason) ?? '',
    message: str(raw.message) ?? '',
    ...(observedGeneration !== undefined ? { observedGeneration } : {}),
    ...(lastTransitionTime ? { lastTransitionTime } : {}),
  };
}

function parseStatus(raw: unknown): HelmReleaseStatus {
  const s = isObject(raw) ? raw : {};
  const history = array(s.history);
  const latest = isObject(history[0]) ? num(history[0].version) : undefined;
  const optional = {
    observedGeneration: num(s.observedGeneration),
    lastAttemptedGeneration: num(s.lastAttemptedGeneration),
    lastAttemptedRevision: str(s.lastAttemptedRevision),
    lastAttemptedConfigDigest: str(s.lastAttemptedConfigDigest),
    lastAttemptedReleaseAction: str(s.lastAttemptedReleaseAction),
    lastHandledReconcileAt: str(s.lastHandledReconcileAt),
    lastHandledForceAt: str(s.lastHandledForceAt),
    lastHandledResetAt: str(s.lastHandledResetAt),
    latestReleaseVersion: latest,
  };
  const status: HelmReleaseStatus = {
    conditions: array(s.conditions)
      .map(parseCondition)
      .filter((c): c is Condition => c !== undefined),
    failures: num(s.failures) ?? 0,
    installFailures: num(s.installFailures) ?? 0,
    upgradeFailures: num(s.upgradeFailures) ?? 0,
  };
  for (const [k, v] of Object.entries(optional)) {
    if (v !== undefined) Object.assign(status, { [k]: v });
  }
  return status;
}

function parseFailurePolicy(raw: unknown): FailurePolicy {
  const action = isObject(raw) ? raw : {};
  const strategy = isObject(action.strategy) ? action.strategy : {};
  const remediation = isObject(action.remediation) ? action.remediation : {};
  const name = str(strategy.name);
  const retryInterval = str(strategy.retryInterval);
  const retries = num(remediation.retries) ?? 0;
  // Most releases set none of it: one shared object instead of 20,000 at 10,000 releases.
  if (!name && !retryInterval && retries === 0) return NO_FAILURE_POLICY;
  return {
    ...(name ? { strategy: name } : {}),
    ...(retryInterval ? { retryInterval } : {}),
    retries,
  };
}

const NO_FAILURE_POLICY: FailurePolicy = Object.freeze({ retries: 0 });

/** The failure policy of the action Flux attempted last (helm-controller's GetActiveRemediation/Retry). */
export function activeFailurePolicy(hr: HelmRelease): FailurePolicy | undefined {
  const action = hr.status.lastAttemptedReleaseAction;
  if (action === 'install') return hr.install ?? { retries: 0 };
  if (action === 'upgrade') return hr.upgrade ?? { retries: 0 };
  return undefined;
}

/** Parses a HelmRelease from its JSON form. Unknown fields are ignored; a malformed valuesFrom is an error. */
export function parseHelmRelease(raw: unknown): Parsed<HelmRelease> {
  if (!isObject(raw)) return { ok: false, error: 'object is not a JSON object' };
  const meta = parseObjectMeta(raw.metadata);
  if (!meta.ok) return meta;
  const spec = isObject(raw.spec) ? raw.spec : {};
  const valuesFrom = parseValuesFrom(spec.valuesFrom);
  if (!valuesFrom.ok) return valuesFrom;
  return {
    ok: true,
    value: {
      metadata: meta.value,
      suspend: bool(spec.suspend) ?? false,
      valuesFrom: valuesFrom.value,
      install: parseFailurePolicy(spec.install),
      upgrade: parseFailurePolicy(spec.upgrade),
      status: parseStatus(raw.status),
    },
  };
}

export function findCondition(hr: HelmRelease, type: string): Condition | undefined {
  return hr.status.conditions.find((c) => c.type === type);
}

export function releaseKey(namespace: string, name: string): string {
  return flatKey(namespace, name);
}

/** The inverse of releaseKey (a namespace never contains "/"). */
export function parseReleaseKey(key: string): { namespace: string; name: string } {
  const slash = key.indexOf('/');
  return { namespace: key.slice(0, slash), name: key.slice(slash + 1) };
}
