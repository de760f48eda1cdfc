// Is helm-controller working on a release right now? A pure reading of the release, shared by the trigger
// decision (never send a new requestedAt into a running install/upgrade) and the rollout budget (a release
// counts as in flight until Flux has handled our request and stopped working on it).
//
// Why it matters: with the CancelHealthCheckOnNewRevision gate (opt-in since helm-controller v1.5.0) any new
// reconcile request for a release — a bare new requestedAt is enough — cancels the health check of the
// reconcile that is running, from its start to its end (fluxcd/pkg runtime/controller: the listener is
// registered when the reconcile starts and the cancel is sticky). The cancelled upgrade counts as failed and,
// with the default remediation (retries 0), stalls. Without the gate the request merely queues one more
// reconcile after the running one, so holding it until then loses nothing either way.
//
// The shapes (helm-controller v1.6.4 internal/reconcile/atomic_release.go, internal/controller):
// - a reconcile starts:  Reconciling=True, reason Progressing, "Fulfilling prerequisites";
// - before an action:    Reconciling=True and (release actions) Ready=Unknown, reason Progressing,
//                        "Running '<install|upgrade|rollback|...>' action with timeout of <d>";
// - the end:             Reconciling removed (or ProgressingWithRetry: waiting for its retry interval, no
//                        action running), Ready summarised; lastHandledReconcileAt = the requestedAt it saw,
//                        written by the reconcile's last patch.
// Conditions can outlive a controller that died mid-action: a running action counts only until its timeout
// plus a margin has passed since the condition's transition.
import { Flux } from '../names.ts';
import { type Condition, findCondition, type HelmRelease } from './helmrelease.ts';

export type FluxActivity =
  | { busy: false }
  | {
      busy: true;
      reason: 'request-pending' | 'action-running' | 'reconciling';
      detail: string;
      /** When the condition stops counting (a controller that died mid-action); absent: until Flux reports. */
      untilMs?: number;
    };

/** How long after its timeout a "Running ..." condition still counts as a running action. */
export const STALE_ACTION_MARGIN_MS = 60_000;
/** How long "Fulfilling prerequisites" (no action started yet) counts as a running reconcile. */
export const PREREQUISITES_MS = 120_000;

const RUNNING = /^Running '([^']+)' action with timeout of (\S+)/;

/** What helm-controller is doing with the release, as far as its object tells (see the top of this file). */
export function fluxActivity(hr: HelmRelease, nowMs: number): FluxActivity {
  const requested = hr.metadata.annotations[Flux.requestedAt];
  if (requested !== undefined && requested !== hr.status.lastHandledReconcileAt) {
    return {
      busy: true,
      reason: 'request-pending',
      detail: `Flux has not yet handled requestedAt "${requested}"`,
    };
  }
  const ready = findCondition(hr, 'Ready');
  const reconciling = findCondition(hr, 'Reconciling');
  const progressing =
    ready?.status === 'Unknown' && ready.reason === 'Progressing'
      ? ready
      : reconciling?.status === 'True' && reconciling.reason === 'Progressing'
        ? reconciling
        : undefined;
  if (!progressing) return { busy: false };
  const untilMs = progressingUntil(progressing);
  if (untilMs !== undefined && nowMs >= untilMs) return { busy: false };
  const action = RUNNING.exec(progressing.message);
  return {
    busy: true,
    reason: action ? 'action-running' : 'reconciling',
    detail: action
      ? `helm-controller is running '${action[1]}' (${progressing.type}=${progressing.status} since ${progressing.lastTransitionTime ?? '?'})`
      : `helm-controller is reconciling (${progressing.message || progressing.reason})`,
    ...(untilMs !== undefined ? { untilMs } : {}),
  };
}

/**
 * Whether a request we wrote (`token`) is over: Flux handled it — or, once the release was seen carrying it
 * (`seen`), a later request that replaced it — and no action runs any more. Before our token was seen, an
 * older handled request on a stale read must not count.
 */
export function requestSettled(hr: HelmRelease, token: string, seen: boolean, nowMs: number): boolean {
  const requested = hr.metadata.annotations[Flux.requestedAt];
  const handled = hr.status.lastHandledReconcileAt === token || (seen && requested !== token);
  return handled && !fluxActivity(hr, nowMs).busy;
}

/** When a Progressing condition stops counting: its transition + the action's timeout + a margin. */
function progressingUntil(c: Condition): number | undefined {
  const since = c.lastTransitionTime ? Date.parse(c.lastTransitionTime) : Number.NaN;
  if (!Number.isFinite(since)) return undefined;
  const action = RUNNING.exec(c.message);
  if (!action) return since + PREREQUISITES_MS;
  const timeout = parseGoDuration(action[2] as string);
  return timeout === undefined ? undefined : since + timeout + STALE_ACTION_MARGIN_MS;
}

/** Milliseconds of a Go time.Duration string ("5m0s", "1h0m0s", "1m30.5s", "300ms"), or undefined. */
export function parseGoDuration(s: string): number | undefined {
  const units: Record<string, number> = {
    h: 3_600_000,
    m: 60_000,
    s: 1000,
    ms: 1,
    us: 1e-3,
    µs: 1e-3,
    ns: 1e-6,
  };
  const re = /(\d+(?:\.\d+)?)(h|ms|m|s|us|µs|ns)/y;
  let total = 0;
  let pos = 0;
  if (s === '0') return 0;
  while (pos < s.length) {
    re.lastIndex = pos;
    const m = re.exec(s);
    if (!m) return undefined;
    total += Number(m[1]) * (units[m[2] as string] as number);
    pos = re.lastIndex;
  }
  return pos === 0 ? undefined : Math.round(total);
}
