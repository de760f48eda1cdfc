import { describe, expect, it } from 'vitest';
import type { EventSpec } from '../../src/kube/events.ts';
import { Annotations, Flux } from '../../src/names.ts';
import { TriggerEvents } from './events.ts';

const TOKEN = '2026-01-01T00:00:00.123456789Z';
const SEEN = { seen: ['Secret/ns/b', 'ConfigMap/ns/a'], consumed: ['ConfigMap/ns/a', 'Secret/ns/b'] };
const UNSEEN = { seen: [], consumed: ['Secret/ns/b', 'ConfigMap/ns/a'] };

const ALL: [string, EventSpec][] = [
  ['values changed', TriggerEvents.valuesChanged(SEEN, TOKEN)],
  ['values changed, no change seen', TriggerEvents.valuesChanged(UNSEEN, TOKEN)],
  ['a linked source changed', TriggerEvents.linkedSourceChanged(['ConfigMap/other/cm'], TOKEN)],
  ['created unstamped', TriggerEvents.createdUnstamped(UNSEEN, TOKEN)],
  ['created unstamped, notify-only', TriggerEvents.createdUnstampedNotify(UNSEEN)],
  ['values changed, notify-only', TriggerEvents.valuesChangedNotify(UNSEEN)],
  ['a linked source changed, notify-only', TriggerEvents.linkedSourceChangedNotify(['Secret/ns/s'])],
  ['a link refused', TriggerEvents.linkRefused({ namespace: 'apps', name: 'app' }, 'other')],
];

describe('trigger events', () => {
  it.each<[string, EventSpec, Partial<EventSpec>, string[]]>([
    [
      'values changed',
      TriggerEvents.valuesChanged(SEEN, TOKEN),
      { type: 'Normal', reason: 'ValuesChanged', action: 'Trigger' },
      ['valuesFrom data changed (ConfigMap/ns/a, Secret/ns/b)', `${Flux.requestedAt}=${TOKEN}`],
    ],
    [
      'values changed while nobody watched: the consumed sources are named',
      TriggerEvents.valuesChanged(UNSEEN, TOKEN),
      { type: 'Normal', reason: 'ValuesChanged', action: 'Trigger' },
      ['since it was last recorded (one or more of ConfigMap/ns/a, Secret/ns/b)'],
    ],
    [
      'created while the webhook was bypassed: the consumed sources are named',
      TriggerEvents.createdUnstamped(UNSEEN, TOKEN),
      { type: 'Normal', reason: 'ValuesChanged', action: 'Trigger' },
      [
        'created while the webhook was bypassed',
        'ConfigMap/ns/a, Secret/ns/b',
        `${Flux.requestedAt}=${TOKEN}`,
      ],
    ],
    [
      'a linked source changed',
      TriggerEvents.linkedSourceChanged(['ConfigMap/other/cm'], TOKEN),
      { type: 'Normal', reason: 'LinkedSourceChanged', action: 'Trigger' },
      ['linked ConfigMap/other/cm changed', `${Flux.requestedAt}=${TOKEN}`],
    ],
    [
      'values changed, notify-only',
      TriggerEvents.valuesChangedNotify(SEEN),
      { type: 'Normal', reason: 'ValuesChanged', action: 'Notify' },
      ['valuesFrom data changed (ConfigMap/ns/a, Secret/ns/b)', 'nothing was written'],
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

  it.each(ALL)(
    '%s: no digest material (no run of 8 or more hex digits, no digest prefix)',
    (_name, event) => {
      const note = event.note.replaceAll(TOKEN, '');
      expect(note).not.toMatch(/[0-9a-f]{8,}/i);
      expect(note).not.toMatch(/sha256|hmac|digest/i);
    },
  );
});
