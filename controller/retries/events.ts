// What the retry reconciler tells users through Events on the HelmRelease (`kubectl describe hr`).
import { formatDuration } from '../../src/config.ts';
import type { EventSpec } from '../../src/kube/events.ts';
import { Annotations, Flux } from '../../src/names.ts';

const roundUp = (ms: number) => formatDuration(Math.ceil(ms / 1000) * 1000);

export const RetryEvents = {
  scheduled: (why: string, attempt: number, max: number, delayMs: number): EventSpec => ({
    type: 'Normal',
    reason: 'RetryScheduled',
    action: 'Retry',
    note: `Transient failure (${why}): retry ${attempt} of ${max} in ${roundUp(delayMs)}`,
  }),
  triggered: (why: string, attempt: number, max: number, token: string): EventSpec => ({
    type: 'Normal',
    reason: 'RetryTriggered',
    action: 'Retry',
    note: `Retry ${attempt} of ${max} requested (${Flux.requestedAt} = ${Flux.forceAt} = ${token}) after a transient failure (${why})`,
  }),
  due: (why: string, attempt: number, max: number): EventSpec => ({
    type: 'Normal',
    reason: 'RetryDue',
    action: 'Retry',
    note: `Retry ${attempt} of ${max} is due after a transient failure (${why}); not written: --notify-only is set`,
  }),
  exhausted: (why: string, attempts: number, failed: number): EventSpec => ({
    type: 'Warning',
    reason: 'RetriesExhausted',
    action: 'Retry',
    note: `Gave up after ${failed} failed attempts (${attempts} of them retries of ours) of a transient failure (${why}). No more retries until the spec, chart or values change; to start over, set ${Annotations.retryResetAt} to a new value (e.g. the current time).`,
  }),
  restarted: (handled: string, token: string | undefined, notifyOnly: boolean): EventSpec => ({
    type: 'Normal',
    reason: 'RetriesRestarted',
    action: 'Retry',
    note: notifyOnly
      ? `${Annotations.retryResetAt} = ${handled} would restart the retry budget; not written: --notify-only is set`
      : `Retry budget restarted by ${Annotations.retryResetAt} = ${handled}${token ? `; retry requested (${Flux.requestedAt} = ${Flux.resetAt} = ${token})` : ''}`,
  }),
  fluxRetrying: (why: string): EventSpec => ({
    type: 'Normal',
    reason: 'FluxRetries',
    action: 'Retry',
    note: `${why}: no retries from helmrelease-autopilot for this failure`,
  }),
  /** Once per release: a lockdown flag makes us ignore annotations it carries. */
  settingsIgnored: (annotations: readonly string[]): EventSpec => ({
    type: 'Warning',
    reason: 'RetrySettingsIgnored',
    action: 'Retry',
    note: `Ignored ${annotations.join(', ')}: the operator runs with --no-release-retry-patterns, so only its own transient patterns apply.`,
  }),
  invalidSettings: (problems: readonly string[]): EventSpec => ({
    type: 'Warning',
    reason: 'InvalidRetrySettings',
    action: 'Retry',
    note: `Ignored malformed retry settings (defaults used): ${problems.join('; ')}. Fix or remove the annotation (${Annotations.retryPatterns} holds one regular expression per line).`,
  }),
};
