import { describe, expect, it } from 'vitest';
import type { EventSpec } from '../../src/kube/events.ts';
import { Annotations, Flux } from '../../src/names.ts';
import { TriggerEvents } from './events.ts';

const OLD = `sha256:${'1'.repeat(64)}`;
const NEW = `sha256:${'2'.repeat(64)}`;
const TOKEN = '2026-01-01T00:00:00.123456789Z';

describe('trigger events', () => {
  it.each<[string, EventSpec, Partial<EventSpec>, string[]]>([
    [
      'values changed',
      TriggerEvents.valuesChanged(['Secret/ns/b', 'ConfigMap/ns/a'], OLD, NEW, TOKEN),
      { type: 'Normal', reason: 'ValuesChanged', action: 'Trigger' },
      ['(ConfigMap/ns/a, Secret/ns/b)', `${Flux.requestedAt}=${TOKEN}`],
    ],
    [
      'a linked source changed',
      TriggerEvents.linkedSourceChanged(['ConfigMap/other/cm'], TOKEN),
      { type: 'Normal', reason: 'LinkedSourceChanged', action: 'Trigger' },
      ['linked ConfigMap/other/cm changed', `${Flux.requestedAt}=${TOKEN}`],
    ],
    [
      'values changed, notify-only',
      TriggerEvents.valuesChangedNotify([], OLD, NEW),
      { type: 'Normal', reason: 'ValuesChanged', action: 'Notify' },
      ['valuesFrom data changed: digest', 'nothing was written'],
    ],
    [
      'a linked source changed, notify-only',
      TriggerEvents.linkedSourceChangedNotify(['Secret/ns/s']),
      { type: 'Normal', reason: 'LinkedSourceChanged', action: 'Notify' },
      ['linked Secret/ns/s changed', 'nothing was written'],
    ],
    [
      'a link refused',
      TriggerEvents.linkRefused({ namespace: 'apps', name: 'app' }, 'other'),
      { type: 'Warning', reason: 'LinkRefused', action: 'Trigger' },
      ['HelmRelease apps/app', 'namespace other', Annotations.allowSourceNamespaces],
    ],
  ])('%s', (_name, event, fields, phrases) => {
    expect(event).toMatchObject(fields);
    for (const p of phrases) expect(event.note).toContain(p);
  });

  it('name digest prefixes only, never whole digests', () => {
    const note = TriggerEvents.valuesChanged([], OLD, NEW, TOKEN).note;
    expect(note).not.toContain(OLD);
    expect(note).not.toContain(NEW);
  });
});
