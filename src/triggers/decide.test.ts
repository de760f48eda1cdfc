import { describe, expect, it } from 'vitest';
import type { HelmRelease } from '../flux/helmrelease.ts';
import { Annotations, Flux, Labels } from '../names.ts';
import {
  decideTrigger,
  formatLinkDigests,
  type LinkSourceState,
  linkDigests,
  MISSING_LINK,
  parseLinkDigests,
  type TriggerAction,
  type TriggerInput,
} from './decide.ts';

const D1 = 'sha256:1111';
const D2 = 'sha256:2222';
const TOKEN = '2026-01-01T00:00:00.123456789Z';
const NOW = Date.parse('2026-01-01T00:00:00Z');
const CM = 'ConfigMap/ns/linked';

function release(o: {
  annotations?: Record<string, string>;
  labels?: Record<string, string>;
  suspend?: boolean;
  valuesFrom?: boolean;
  deleting?: boolean;
  failed?: boolean;
}): HelmRelease {
  return {
    metadata: {
      name: 'app',
      namespace: 'ns',
      uid: 'u',
      resourceVersion: '42',
      generation: 1,
      labels: o.labels ?? {},
      annotations: o.annotations ?? {},
      ...(o.deleting ? { deletionTimestamp: '2026-01-01T00:00:00Z' } : {}),
    },
    suspend: o.suspend ?? false,
    valuesFrom:
      o.valuesFrom === false
        ? []
        : [{ kind: 'ConfigMap', name: 'cm', valuesKey: 'values.yaml', targetPath: '', optional: false }],
    status: {
      conditions: o.failed
        ? [{ type: 'Ready', status: 'False', reason: 'UpgradeFailed', message: 'context deadline exceeded' }]
        : [],
      failures: o.failed ? 1 : 0,
      installFailures: 0,
      upgradeFailures: o.failed ? 1 : 0,
    },
  };
}

const stamped = (digest: string, extra: Record<string, string> = {}) => ({
  labels: { [Labels.managed]: 'true' },
  annotations: { [Annotations.valuesDigest]: digest, ...extra },
});

const linked = (digest: string): LinkSourceState => ({ state: 'linked', digest });
const GONE: LinkSourceState = { state: 'gone' };

const decision = (input: Partial<TriggerInput> & { hr: HelmRelease }, force = false) =>
  decideTrigger({ valuesDigest: D2, links: {}, ...input }, { force, token: TOKEN, nowMs: NOW });
const decide = (input: Partial<TriggerInput> & { hr: HelmRelease }, force = false) =>
  decision(input, force).action;

describe('decideTrigger', () => {
  it.each([
    ['opted out', release({ ...stamped(D1, { [Annotations.ignore]: 'true' }) }), 'ignored'],
    ['being deleted', release({ ...stamped(D1), deleting: true }), 'deleting'],
    ['suspended with a change', release({ ...stamped(D1), suspend: true }), 'suspended'],
    ['suspended without a stamp', release({ suspend: true }), 'suspended'],
    ['unchanged', release(stamped(D2)), 'unchanged'],
  ])('skips a release that is %s', (_name, hr, reason) => {
    expect(decide({ hr })).toEqual({ action: 'skip', reason });
  });

  it('triggers a changed digest with one patch: requestedAt and the new digest, under a precondition', () => {
    expect(decide({ hr: release(stamped(D1)) })).toEqual({
      action: 'trigger',
      reason: 'values-changed',
      changedLinks: [],
      newDigest: D2,
      patch: {
        metadata: {
          resourceVersion: '42',
          annotations: { [Annotations.valuesDigest]: D2, [Flux.requestedAt]: TOKEN },
        },
      },
    });
  });

  it.each<[string, Record<string, unknown>, Record<string, string>, Record<string, unknown>]>([
    [
      'a request Flux has not handled yet (ours or anyone’s)',
      {},
      { [Flux.requestedAt]: '2025-12-31T00:00:00Z' },
      { action: 'skip', reason: 'in-flight' },
    ],
    [
      'an upgrade running',
      {
        conditions: [
          {
            type: 'Ready',
            status: 'Unknown',
            reason: 'Progressing',
            message: "Running 'upgrade' action with timeout of 5m0s",
            lastTransitionTime: '2026-01-01T00:00:00Z',
          },
        ],
      },
      {},
      { action: 'skip', reason: 'in-flight', recheckAtMs: NOW + 6 * 60_000 },
    ],
  ])('holds a trigger while Flux works on the release: %s', (_name, status, annotations, expected) => {
    const hr = release(stamped(D1, annotations));
    Object.assign(hr.status, status);
    expect(decide({ hr })).toMatchObject(expected);
  });

  it('holds nothing but triggers: a backfill is written while Flux works', () => {
    const hr = release({ annotations: { [Flux.requestedAt]: '2025-12-31T00:00:00Z' } });
    expect(decide({ hr }).action).toBe('backfill');
  });

  const WATCHED = 'ConfigMap/ns/cm';
  const OTHER = 'Secret/ns/other';
  const twoSources = (hr: HelmRelease): HelmRelease => ({
    ...hr,
    valuesFrom: [
      ...hr.valuesFrom,
      { kind: 'Secret', name: 'other', valuesKey: 'values.yaml', targetPath: '', optional: false },
    ],
  });
  it.each<[string, HelmRelease, Partial<TriggerInput>, TriggerAction['action'], string]>([
    [
      'every consumed source watched by Flux',
      release(stamped(D1)),
      { fluxWatched: [WATCHED] },
      'backfill',
      'flux-watched',
    ],
    [
      'every consumed source watched, with --force: still no second (forced) upgrade',
      release(stamped(D1, { [Annotations.force]: 'true' })),
      { fluxWatched: [WATCHED] },
      'backfill',
      'flux-watched',
    ],
    [
      'a mixed release, only the watched source seen changing',
      twoSources(release(stamped(D1))),
      { fluxWatched: [WATCHED], changedSources: [WATCHED] },
      'backfill',
      'flux-watched',
    ],
    [
      'a mixed release, the unwatched source seen changing',
      twoSources(release(stamped(D1))),
      { fluxWatched: [WATCHED], changedSources: [WATCHED, OTHER] },
      'trigger',
      'values-changed',
    ],
    [
      'a mixed release, changes unknown (after a start)',
      twoSources(release(stamped(D1))),
      { fluxWatched: [WATCHED] },
      'trigger',
      'values-changed',
    ],
    [
      'no source watched (the default)',
      release(stamped(D1)),
      { fluxWatched: [] },
      'trigger',
      'values-changed',
    ],
  ])('sources Flux watches itself: %s -> %s', (_name, hr, extra, action, reason) => {
    const d = decide({ hr, ...extra });
    expect(d).toMatchObject({ action, reason });
    if (d.action === 'backfill') {
      expect(d.patch.metadata.annotations).toEqual({ [Annotations.valuesDigest]: D2 });
    }
  });

  it('triggers failed releases too (a values fix is what they need)', () => {
    expect(decide({ hr: release({ ...stamped(D1), failed: true }) }).action).toBe('trigger');
  });

  it.each([
    ['the release asks for it', release(stamped(D1, { [Annotations.force]: 'true' })), false],
    ['the flag asks for it', release(stamped(D1)), true],
  ])('adds forceAt with the same token when %s', (_name, hr, force) => {
    const d = decide({ hr }, force);
    expect(d.action === 'trigger' && d.patch.metadata.annotations[Flux.forceAt]).toBe(TOKEN);
  });

  it.each([
    ['the release asks for it: ignored', release(stamped(D1, { [Annotations.force]: 'true' })), false, false],
    ['the flag asks for it: still forced', release(stamped(D1)), true, true],
  ])('with --no-release-force, %s', (_name, hr, force, forced) => {
    const d = decideTrigger(
      { valuesDigest: D2, links: {}, hr },
      { force, token: TOKEN, ignoreReleaseForce: true, nowMs: NOW },
    ).action;
    expect(d.action).toBe('trigger');
    expect(d.action === 'trigger' && Flux.forceAt in d.patch.metadata.annotations).toBe(forced);
  });

  it('never adds forceAt unasked', () => {
    const d = decide({ hr: release(stamped(D1, { [Annotations.force]: 'false' })) });
    expect(d.action === 'trigger' && Flux.forceAt in d.patch.metadata.annotations).toBe(false);
  });

  const OLD = '2025-12-31T00:00:00Z';
  // Flux handled the request OLD, but the reconcile failed before the release step (ValuesError,
  // SourceNotReady), so forceAt/resetAt written with it were never evaluated.
  it.each([
    ["a retry's forceAt Flux has not evaluated", Flux.forceAt, undefined, true],
    ['a resetAt Flux has not evaluated', Flux.resetAt, undefined, true],
    ['a resetAt Flux already handled', Flux.resetAt, OLD, false],
  ])('with %s, the new requestedAt carries %s along: %s', (_name, annotation, lastHandled, carried) => {
    const hr = release(stamped(D1, { [Flux.requestedAt]: OLD, [annotation]: OLD }));
    hr.status.lastHandledReconcileAt = OLD;
    if (lastHandled) {
      hr.status.lastHandledResetAt = lastHandled;
      hr.status.lastHandledForceAt = lastHandled;
    }
    const d = decide({ hr });
    expect(d.action === 'trigger' && d.patch.metadata.annotations[annotation]).toBe(
      carried ? TOKEN : undefined,
    );
  });

  it('does not carry a resetAt written with an older request', () => {
    const hr = release(stamped(D1, { [Flux.requestedAt]: OLD, [Flux.resetAt]: '2025-01-01T00:00:00Z' }));
    hr.status.lastHandledReconcileAt = OLD;
    const d = decide({ hr });
    expect(d.action === 'trigger' && Flux.resetAt in d.patch.metadata.annotations).toBe(false);
  });

  it('backfills label and digest of a managed release the webhook missed, without requestedAt', () => {
    expect(decide({ hr: release({}) })).toEqual({
      action: 'backfill',
      reason: 'stamp',
      patch: {
        metadata: {
          resourceVersion: '42',
          labels: { [Labels.managed]: 'true' },
          annotations: { [Annotations.valuesDigest]: D2 },
        },
      },
    });
  });

  it('backfills a missing label alone', () => {
    const d = decide({ hr: release({ annotations: { [Annotations.valuesDigest]: D2 } }) });
    expect(d).toMatchObject({
      action: 'backfill',
      patch: { metadata: { labels: { [Labels.managed]: 'true' } } },
    });
    expect(d.action === 'backfill' && d.patch.metadata.annotations).toEqual({});
  });

  it('removes our stamp from a release that no longer consumes valuesFrom', () => {
    const d = decide({ hr: release({ ...stamped(D1), valuesFrom: false }), valuesDigest: undefined });
    expect(d).toMatchObject({
      action: 'backfill',
      patch: {
        metadata: { labels: { [Labels.managed]: null }, annotations: { [Annotations.valuesDigest]: null } },
      },
    });
  });

  it('records a new link without triggering', () => {
    const d = decide({ hr: release(stamped(D2)), links: { [CM]: linked(D1) } });
    expect(d).toMatchObject({
      action: 'backfill',
      reason: 'link-digests',
      patch: { metadata: { annotations: { [Annotations.linkDigests]: JSON.stringify({ [CM]: D1 }) } } },
    });
  });

  it('triggers when a linked source changed, and records its new digest', () => {
    const hr = release(stamped(D2, { [Annotations.linkDigests]: JSON.stringify({ [CM]: D1 }) }));
    const d = decide({ hr, links: { [CM]: linked(D2) } });
    expect(d).toMatchObject({ action: 'trigger', reason: 'link-changed', changedLinks: [CM] });
    expect(d.action === 'trigger' && d.patch.metadata.annotations).toEqual({
      [Annotations.linkDigests]: JSON.stringify({ [CM]: D2 }),
      [Flux.requestedAt]: TOKEN,
    });
  });

  it.each([
    ['deleted (recorded digest, now a tombstone)', D1, GONE],
    ['recreated (tombstone, now data)', MISSING_LINK, linked(D2)],
  ])('triggers when a linked source is %s', (_name, before, now) => {
    const hr = release(stamped(D2, { [Annotations.linkDigests]: JSON.stringify({ [CM]: before }) }));
    expect(decide({ hr, links: { [CM]: now } })).toMatchObject({ action: 'trigger', changedLinks: [CM] });
  });

  it('triggers once a labelled release whose digest is unknown (the webhook lookup failed)', () => {
    const d = decide({ hr: release({ labels: { [Labels.managed]: 'true' } }) });
    expect(d).toMatchObject({
      action: 'trigger',
      reason: 'values-changed',
      newDigest: D2,
    });
    expect(d.action === 'trigger' && d.patch.metadata.annotations[Flux.requestedAt]).toBe(TOKEN);
  });

  it('triggers once, then stamps, a release the operator saw created without our stamp (webhook outage)', () => {
    const d = decide({ hr: release({}), createdUnstamped: true });
    expect(d).toEqual({
      action: 'trigger',
      reason: 'created-unstamped',
      changedLinks: [],
      newDigest: D2,
      patch: {
        metadata: {
          resourceVersion: '42',
          labels: { [Labels.managed]: 'true' },
          annotations: { [Annotations.valuesDigest]: D2, [Flux.requestedAt]: TOKEN },
        },
      },
    });
  });

  it.each<[string, Partial<TriggerInput> & { hr: HelmRelease }, Partial<TriggerAction>]>([
    [
      'of the first list (migration): backfilled',
      { hr: release({}) },
      { action: 'backfill', reason: 'stamp' },
    ],
    [
      'created unstamped, stamped by the webhook since (its data of then, not of the creation): triggered',
      { hr: release(stamped(D2)), createdUnstamped: true },
      { action: 'trigger', reason: 'created-unstamped' },
    ],
    [
      'created unstamped, consuming no values: nothing to trigger',
      { hr: release({ valuesFrom: false }), valuesDigest: undefined, createdUnstamped: true },
      { action: 'skip', reason: 'unchanged' },
    ],
    [
      'created unstamped while Flux works on it: held',
      {
        hr: release({ annotations: { [Flux.requestedAt]: '2025-12-31T00:00:00Z' } }),
        createdUnstamped: true,
      },
      { action: 'skip', reason: 'in-flight' },
    ],
    [
      'created unstamped, every consumed source watched by Flux: Flux acted itself',
      { hr: release({}), createdUnstamped: true, fluxWatched: ['ConfigMap/ns/cm'] },
      { action: 'backfill', reason: 'flux-watched' },
    ],
    [
      'created unstamped, suspended: skipped (the trigger waits for the resume)',
      { hr: release({ suspend: true }), createdUnstamped: true },
      { action: 'skip', reason: 'suspended' },
    ],
  ])('a release without our label: %s', (_name, input, expected) => {
    expect(decide(input)).toMatchObject(expected);
  });

  it('is unchanged for a linked source whose data is the same', () => {
    const hr = release(stamped(D2, { [Annotations.linkDigests]: JSON.stringify({ [CM]: D1 }) }));
    expect(decide({ hr, links: { [CM]: linked(D1) } })).toEqual({ action: 'skip', reason: 'unchanged' });
  });

  it('forgets a link that is gone on the next write', () => {
    const hr = release(stamped(D2, { [Annotations.linkDigests]: JSON.stringify({ [CM]: D1 }) }));
    expect(decide({ hr, links: { [CM]: { state: 'unlinked' } } })).toMatchObject({
      action: 'backfill',
      patch: { metadata: { annotations: { [Annotations.linkDigests]: null } } },
    });
  });

  it('never writes spec', () => {
    const d = decide({ hr: release(stamped(D1)) });
    expect(Object.keys(d.action === 'trigger' ? d.patch : {})).toEqual(['metadata']);
  });
});

describe('upgrading digests stored in an older format (v1, or v2 under the previous key)', () => {
  // The gatherer supplies the data now in the stored digest's format (storedFormatDigest) only when the
  // stored digest is in an older format; V2_NOW is the current-format digest of the data now.
  const V1_SAME = `sha256:${'a'.repeat(64)}`;
  const V1_OLD = `sha256:${'b'.repeat(64)}`;
  const PREV_SAME = `hmac-sha256:v2:0000000a:${'c'.repeat(64)}`;
  const V2_NOW = `hmac-sha256:v2:0000000b:${'d'.repeat(64)}`;
  const V2_NOW_LINK = `hmac-sha256:v2:0000000b:${'e'.repeat(64)}`;
  const links = (recorded: Record<string, string>) => ({
    [Annotations.linkDigests]: JSON.stringify(recorded),
  });

  it.each<[string, Partial<TriggerInput> & { hr: HelmRelease }, Partial<TriggerAction>]>([
    [
      'a v1 values digest that matches the data now: re-stamped in v2, no requestedAt',
      { hr: release(stamped(V1_SAME)), valuesDigest: V2_NOW, storedFormatDigest: V1_SAME },
      {
        action: 'backfill',
        reason: 'restamp',
        patch: { metadata: { resourceVersion: '42', annotations: { [Annotations.valuesDigest]: V2_NOW } } },
      },
    ],
    [
      'a v1 values digest of older data: triggered (the data changed during the upgrade)',
      { hr: release(stamped(V1_OLD)), valuesDigest: V2_NOW, storedFormatDigest: V1_SAME },
      { action: 'trigger', reason: 'values-changed', newDigest: V2_NOW },
    ],
    [
      'a digest under the previous key that matches: re-stamped under the current key',
      { hr: release(stamped(PREV_SAME)), valuesDigest: V2_NOW, storedFormatDigest: PREV_SAME },
      { action: 'backfill', reason: 'restamp' },
    ],
    [
      'a digest the gatherer could not recompute (unknown key): triggered',
      { hr: release(stamped(PREV_SAME)), valuesDigest: V2_NOW },
      { action: 'trigger', reason: 'values-changed' },
    ],
    [
      'a v1 link digest that matches: re-stamped',
      {
        hr: release(stamped(V2_NOW, links({ [CM]: V1_SAME }))),
        valuesDigest: V2_NOW,
        links: { [CM]: { state: 'linked', digest: V2_NOW_LINK, storedFormatDigest: V1_SAME } },
      },
      {
        action: 'backfill',
        reason: 'restamp',
        patch: {
          metadata: {
            resourceVersion: '42',
            annotations: { [Annotations.linkDigests]: JSON.stringify({ [CM]: V2_NOW_LINK }) },
          },
        },
      },
    ],
    [
      'a v1 link digest of older data: triggered as a link change',
      {
        hr: release(stamped(V2_NOW, links({ [CM]: V1_OLD }))),
        valuesDigest: V2_NOW,
        links: { [CM]: { state: 'linked', digest: V2_NOW_LINK, storedFormatDigest: V1_SAME } },
      },
      { action: 'trigger', reason: 'link-changed', changedLinks: [CM] },
    ],
    [
      'v1 values and link digests that both match: one re-stamp',
      {
        hr: release(stamped(V1_SAME, links({ [CM]: V1_SAME }))),
        valuesDigest: V2_NOW,
        storedFormatDigest: V1_SAME,
        links: { [CM]: { state: 'linked', digest: V2_NOW_LINK, storedFormatDigest: V1_SAME } },
      },
      { action: 'backfill', reason: 'restamp' },
    ],
    [
      'a matching v1 values digest and a v1 link of older data: triggered for the link',
      {
        hr: release(stamped(V1_SAME, links({ [CM]: V1_OLD }))),
        valuesDigest: V2_NOW,
        storedFormatDigest: V1_SAME,
        links: { [CM]: { state: 'linked', digest: V2_NOW_LINK, storedFormatDigest: V1_SAME } },
      },
      { action: 'trigger', reason: 'link-changed', changedLinks: [CM] },
    ],
    [
      'a matching v1 link beside a new link: recorded, not re-stamp only',
      {
        hr: release(stamped(V2_NOW, links({ [CM]: V1_SAME }))),
        valuesDigest: V2_NOW,
        links: {
          [CM]: { state: 'linked', digest: V2_NOW_LINK, storedFormatDigest: V1_SAME },
          'Secret/ns/new': linked(D1),
        },
      },
      { action: 'backfill', reason: 'link-digests' },
    ],
    [
      'a matching v1 digest on a release that lost its label: re-stamped with the label',
      {
        hr: release({ annotations: { [Annotations.valuesDigest]: V1_SAME } }),
        valuesDigest: V2_NOW,
        storedFormatDigest: V1_SAME,
      },
      { action: 'backfill', reason: 'stamp' },
    ],
  ])('%s', (_name, input, expected) => {
    const d = decide(input);
    expect(d).toMatchObject(expected);
    if (d.action !== 'trigger')
      expect(Flux.requestedAt in (d.action === 'backfill' ? d.patch.metadata.annotations : {})).toBe(false);
  });
});

describe('the tombstone rule: which link digests a release records', () => {
  const recorded = (digest: string | undefined): Record<string, string> =>
    digest === undefined ? {} : { [Annotations.linkDigests]: JSON.stringify({ [CM]: digest }) };
  const UNLINKED: LinkSourceState = { state: 'unlinked' };
  const REFUSED: LinkSourceState = { state: 'refused' };

  it.each<[string, string | undefined, LinkSourceState, string | null | undefined, TriggerAction['action']]>([
    ['a recorded source that is gone keeps a tombstone', D1, GONE, MISSING_LINK, 'trigger'],
    ['a tombstone of a source still gone stays as it is', MISSING_LINK, GONE, undefined, 'skip'],
    [
      'a linked source gone before it was recorded is recorded as a tombstone',
      undefined,
      GONE,
      MISSING_LINK,
      'backfill',
    ],
    ['a tombstone whose source returned records its data', MISSING_LINK, linked(D2), D2, 'trigger'],
    ['a recorded source that exists but no longer links is dropped', D1, UNLINKED, null, 'backfill'],
    [
      'a tombstone whose source returned without the link is dropped',
      MISSING_LINK,
      UNLINKED,
      null,
      'backfill',
    ],
    ['a recorded source that is now refused is dropped', D1, REFUSED, null, 'backfill'],
    ['a refused source is never recorded', undefined, REFUSED, undefined, 'skip'],
    ['a new link is recorded', undefined, linked(D1), D1, 'backfill'],
  ])('%s', (_name, before, now, after, action) => {
    const d = decide({ hr: release(stamped(D2, recorded(before))), links: { [CM]: now } });
    expect(d.action).toBe(action);
    const written = d.action === 'skip' ? undefined : d.patch.metadata.annotations[Annotations.linkDigests];
    expect(written).toBe(typeof after === 'string' ? JSON.stringify({ [CM]: after }) : after);
  });

  it('linkDigests keeps data digests and tombstones, and drops unlinked and refused sources', () => {
    expect(linkDigests({ a: linked(D1), b: GONE, c: UNLINKED, d: REFUSED })).toEqual({
      a: D1,
      b: MISSING_LINK,
    });
  });
});

describe('refused links', () => {
  const links = {
    'Secret/z/s': { state: 'refused' },
    [CM]: linked(D1),
    'ConfigMap/a/c': { state: 'refused' },
  } as const;

  it('are named in the decision, sorted, beside its action', () => {
    expect(decision({ hr: release(stamped(D2)), links })).toEqual({
      action: {
        action: 'backfill',
        reason: 'link-digests',
        patch: {
          metadata: {
            resourceVersion: '42',
            annotations: { [Annotations.linkDigests]: JSON.stringify({ [CM]: D1 }) },
          },
        },
      },
      refused: ['ConfigMap/a/c', 'Secret/z/s'],
    });
  });

  it('are not named for a release skipped before the lookup', () => {
    expect(decision({ hr: release({ ...stamped(D2), suspend: true }), links }).refused).toEqual([]);
  });
});

describe('link digests annotation', () => {
  it.each([
    [undefined, {}],
    ['', {}],
    ['not json', {}],
    ['[1]', {}],
    ['{"a":1,"b":"x"}', { b: 'x' }],
  ])('parses %j leniently', (raw, want) => {
    expect(parseLinkDigests(raw)).toEqual(want);
  });

  it('formats canonically', () => {
    expect(formatLinkDigests({ b: '2', a: '1' })).toBe('{"a":"1","b":"2"}');
    expect(formatLinkDigests({})).toBeNull();
  });
});
