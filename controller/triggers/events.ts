// What the trigger reconciler tells users through Events: on the HelmRelease it triggered (or, in
// notify-only mode, would have triggered), and on a ConfigMap/Secret whose cross-namespace link it refused.
// Notes name sources and digest prefixes; never data.
import type { EventSpec } from '../../src/kube/events.ts';
import { Annotations, Flux } from '../../src/names.ts';
import type { SourceId } from '../../src/triggers/links.ts';
import { shortDigest } from '../../src/values/digest.ts';

const valuesChangedNote = (
  sources: readonly SourceId[],
  oldDigest: string | undefined,
  newDigest: string | undefined,
) =>
  `valuesFrom data changed${sources.length > 0 ? ` (${[...sources].sort().join(', ')})` : ''}: digest ${shortDigest(oldDigest)} -> ${shortDigest(newDigest)}`;
const linkedSourceChangedNote = (changed: readonly SourceId[]) => `linked ${changed.join(', ')} changed`;
const requested = (token: string) => `; requested a reconcile (${Flux.requestedAt}=${token})`;
const NOTHING_WRITTEN = ' (notify-only: nothing was written)';

export const TriggerEvents = {
  /** `sources`: the consumed sources seen changing (may be empty: a release's own change, or a restart). */
  valuesChanged: (
    sources: readonly SourceId[],
    oldDigest: string | undefined,
    newDigest: string | undefined,
    token: string,
  ): EventSpec => ({
    type: 'Normal',
    reason: 'ValuesChanged',
    action: 'Trigger',
    note: `${valuesChangedNote(sources, oldDigest, newDigest)}${requested(token)}`,
  }),
  linkedSourceChanged: (changed: readonly SourceId[], token: string): EventSpec => ({
    type: 'Normal',
    reason: 'LinkedSourceChanged',
    action: 'Trigger',
    note: `${linkedSourceChangedNote(changed)}${requested(token)}`,
  }),
  valuesChangedNotify: (
    sources: readonly SourceId[],
    oldDigest: string | undefined,
    newDigest: string | undefined,
  ): EventSpec => ({
    type: 'Normal',
    reason: 'ValuesChanged',
    action: 'Notify',
    note: `${valuesChangedNote(sources, oldDigest, newDigest)}${NOTHING_WRITTEN}`,
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
