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
    note: `Retry ${attempt} of ${max} requested (${Flux.requestedAt} = ${Flux.resetAt} = ${token}) after a transient failure (${why})`,
  }),
  due: (why: string, attempt: number, max: number): EventSpec => ({
    type: 'Normal',
    reason: 'RetryDue',
    action: 'Retry',
    note: `Retry ${attempt} of ${max} is due after a transient failure (${why}); not written: --notify-only is set`,
  }),
  exhausted: (why: string, attempts: number): EventSpec => ({
    type: 'Warning',
    reason: 'RetriesExhausted',
    action: 'Retry',
    note: `Gave up after ${attempts} retries of a transient failure (${why}). No more retries until the spec, chart or values change; to start over, remove ${Annotations.retryAttempts}.`,
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
