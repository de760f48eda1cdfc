// What the trigger reconciler tells users through Events: on the HelmRelease it triggered (or, in
// notify-only mode, would have triggered), and on a ConfigMap/Secret whose cross-namespace link it refused.
// Notes name the sources; never data, and no digest either (not even a prefix: a digest is derived from
// Secret data, and Events are readable by more people than the Secrets are).
import type { EventSpec } from '../../src/kube/events.ts';
import { Annotations, Flux } from '../../src/names.ts';
import type { SourceId } from '../../src/triggers/links.ts';

/** What the values-changed notes name: the sources seen changing, or (none seen) those the release consumes. */
export interface ChangedValues {
  /** Consumed sources whose change was observed (empty: a change made while no one watched, or a restart). */
  seen: readonly SourceId[];
  /** Every source the release consumes through valuesFrom. */
  consumed: readonly SourceId[];
}

const list = (ids: readonly SourceId[]) => [...new Set(ids)].sort().join(', ');
const valuesChangedNote = (v: ChangedValues) =>
  v.seen.length > 0
    ? `valuesFrom data changed (${list(v.seen)})`
    : `valuesFrom data changed since it was last recorded (one or more of ${list(v.consumed)})`;
const linkedSourceChangedNote = (changed: readonly SourceId[]) => `linked ${changed.join(', ')} changed`;
const createdUnstampedNote = (v: ChangedValues) =>
  `created while the webhook was bypassed (no stamp): the valuesFrom data Flux read then is unknown (${list(v.consumed)})`;
const requested = (token: string) => `; requested a reconcile (${Flux.requestedAt}=${token})`;
const NOTHING_WRITTEN = ' (notify-only: nothing was written)';

export const TriggerEvents = {
  valuesChanged: (values: ChangedValues, token: string): EventSpec => ({
    type: 'Normal',
    reason: 'ValuesChanged',
    action: 'Trigger',
    note: `${valuesChangedNote(values)}${requested(token)}`,
  }),
  linkedSourceChanged: (changed: readonly SourceId[], token: string): EventSpec => ({
    type: 'Normal',
    reason: 'LinkedSourceChanged',
    action: 'Trigger',
    note: `${linkedSourceChangedNote(changed)}${requested(token)}`,
  }),
  /** A release seen created without our stamp (admitted during a webhook outage): triggered once. */
  createdUnstamped: (values: ChangedValues, token: string): EventSpec => ({
    type: 'Normal',
    reason: 'ValuesChanged',
    action: 'Trigger',
    note: `${createdUnstampedNote(values)}${requested(token)}`,
  }),
  createdUnstampedNotify: (values: ChangedValues): EventSpec => ({
    type: 'Normal',
    reason: 'ValuesChanged',
    action: 'Notify',
    note: `${createdUnstampedNote(values)}${NOTHING_WRITTEN}`,
  }),
  valuesChangedNotify: (values: ChangedValues): EventSpec => ({
    type: 'Normal',
    reason: 'ValuesChanged',
    action: 'Notify',
    note: `${valuesChangedNote(values)}${NOTHING_WRITTEN}`,
  }),
  linkedSourceChangedNotify: (changed: readonly SourceId[]): EventSpec => ({
    type: 'Normal',
    reason: 'LinkedSourceChanged',
    action: 'Notify',
    note: `${linkedSourceChangedNote(changed)}${NOTHING_WRITTEN}`,
  }),
  /** On the source: the release it links to does not allow sources from the source's namespace. */
  linkRefused: (release: { namespace: string; name: string }, sourceNamespace: string): EventSpec => ({
    type: 'Warning',
    reason: 'LinkRefused',
    action: 'Trigger',
    note: `HelmRelease ${release.namespace}/${release.name} does not allow sources from namespace ${sourceNamespace}; add it to its ${Annotations.allowSourceNamespaces} annotation to allow this link.`,
  }),
  /** On the source: the operator refuses every cross-namespace link (--no-cross-namespace-links). */
  linkRefusedByLockdown: (release: { namespace: string; name: string }): EventSpec => ({
    type: 'Warning',
    reason: 'LinkRefused',
    action: 'Trigger',
    note: `HelmRelease ${release.namespace}/${release.name} is in another namespace, and the operator refuses every cross-namespace link (--no-cross-namespace-links), whatever the release's ${Annotations.allowSourceNamespaces} says.`,
  }),
};
