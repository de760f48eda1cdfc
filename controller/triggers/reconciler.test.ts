import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { type HelmRelease, parseHelmRelease } from '../../src/flux/helmrelease.ts';
import type { MergePatch } from '../../src/kube/patch.ts';
import { Annotations, Flux, Labels } from '../../src/names.ts';
import { valuesDigestOfBytes } from '../../src/values/digest.ts';
import { FakeClock, flushPromises } from '../../test/support/clock.ts';
import { TEST_DIGEST_KEYS } from '../../test/support/digest-key.ts';
import { testLogger } from '../../test/support/log.ts';
import { FakeTokens } from '../../test/support/tokens.ts';
import { TriggerIndex } from './index.ts';
import { createTriggerMetrics } from './metrics.ts';
import { ObservedChanges, TriggerReconciler } from './reconciler.ts';

const KEY = 'apps/podinfo';

/** The values data a release consumes: ConfigMap "values", key values.yaml holds `data.text`. */
function valuesOf(data: { text: string }) {
  return {
    valuesDigest: async (namespace: string, refs: Parameters<typeof valuesDigestOfBytes>[2]) =>
      valuesDigestOfBytes(TEST_DIGEST_KEYS.current, namespace, refs, (ref) =>
        ref.name === 'values' ? new TextEncoder().encode(data.text) : null,
      ),
    valuesDigestAsStored: async () => undefined,
    dataDigest: async () => null,
    dataDigestAsStored: async () => undefined,
  };
}

function release(o: {
  resourceVersion?: string;
  annotations?: Record<string, string>;
  labels?: Record<string, string>;
  suspend?: boolean;
  deleting?: boolean;
}): HelmRelease {
  const p = parseHelmRelease({
    apiVersion: `${Flux.group}/${Flux.version}`,
    kind: Flux.kind,
    metadata: {
      namespace: 'apps',
      name: 'podinfo',
      uid: 'u-1',
      resourceVersion: o.resourceVersion ?? '5',
      generation: 1,
      annotations: o.annotations ?? {},
      labels: o.labels ?? {},
      ...(o.deleting ? { deletionTimestamp: '2026-01-01T00:00:00Z', finalizers: ['x'] } : {}),
    },
    spec: {
      interval: '5m',
      chart: { spec: { chart: 'c', sourceRef: { kind: 'HelmRepository', name: 'r' } } },
      valuesFrom: [{ kind: 'ConfigMap', name: 'values' }],
      ...(o.suspend ? { suspend: true } : {}),
    },
  });
  if (!p.ok) throw new Error(p.error);
  return p.value;
}

/** A release stamped with the digest of `text` (what the webhook or a trigger records). */
async function stamped(resourceVersion = '5', text = 'replicas: 1'): Promise<HelmRelease> {
  const hr = release({});
  const digest = await valuesOf({ text }).valuesDigest(hr.metadata.namespace, hr.valuesFrom);
  return release({
    resourceVersion,
    labels: { [Labels.managed]: 'true' },
    annotations: { [Annotations.valuesDigest]: digest },
  });
}

/** A reconciler over one cached release (cache.hr) consuming data.text (both replaceable). */
function setup(hr: HelmRelease | undefined, o: { tokens?: FakeTokens; notifyOnly?: boolean } = {}) {
  const data = { text: 'replicas: 1' };
  const cache: { hr: HelmRelease | undefined } = { hr };
  const tokens = o.tokens ?? new FakeTokens({ auto: true });
  const writes: MergePatch[] = [];
  let stopping = false;
  const clock = new FakeClock();
  const reconciler = new TriggerReconciler({
    client: {
      mergePatch: async (_path: string, patch: unknown) => {
        writes.push(patch as MergePatch);
        return {};
      },
    } as unknown as ConstructorParameters<typeof TriggerReconciler>[0]['client'],
    caches: {
      helmReleases: {
        get: () => cache.hr && { namespace: 'apps', name: 'podinfo', resourceVersion: '', value: cache.hr },
      },
      createdUnstamped: { has: () => false, handled: () => {} },
      configMaps: { get: () => undefined },
      secrets: { get: () => undefined },
      values: valuesOf(data),
    },
    index: new TriggerIndex(),
    events: { emit: async () => {} },
    metrics: createTriggerMetrics(new Registry(), () => 0),
    logger: testLogger(),
    clock,
    writes: tokens,
    stopped: () => stopping,
    nextToken: () => new Date(clock.now()).toISOString(),
    observed: new ObservedChanges(),
    force: false,
    notifyOnly: o.notifyOnly ?? false,
  });
  const stop = () => {
    stopping = true;
  };
  return { reconciler, cache, data, tokens, writes, stop };
}

describe('TriggerReconciler: write tokens are for writes only', () => {
  it.each<[string, () => Promise<HelmRelease | undefined>]>([
    ['stamped with the current digest (start-up pass, echo of our own patch)', () => stamped()],
    ['suspended', async () => release({ suspend: true })],
    ['ignored', async () => release({ annotations: { [Annotations.ignore]: 'true' } })],
    ['being deleted', async () => release({ deleting: true })],
    ['gone from the cache', async () => undefined],
  ])('%s: decided without a token, nothing written', async (_case, hr) => {
    const tokens = new FakeTokens();
    const r = setup(await hr(), { tokens });
    await r.reconciler.reconcile(KEY);
    expect(tokens.taken).toBe(0);
    expect(r.writes).toEqual([]);
  });

  it('notify-only: a change is told without a token', async () => {
    const tokens = new FakeTokens();
    const r = setup(await stamped(), { tokens, notifyOnly: true });
    r.data.text = 'replicas: 2';
    await r.reconciler.reconcile(KEY);
    expect(tokens.taken).toBe(0);
    expect(r.writes).toEqual([]);
  });

  it('a trigger takes its token, then reads the release again: the patch carries the fresh resourceVersion', async () => {
    const tokens = new FakeTokens();
    const r = setup(await stamped('5'), { tokens });
    r.data.text = 'replicas: 2';
    const run = r.reconciler.reconcile(KEY);
    await flushPromises();
    expect(tokens.waiters).toBe(1);
    expect(r.writes).toEqual([]);
    r.cache.hr = await stamped('6'); // Flux wrote status meanwhile
    tokens.grant();
    await run;
    expect(tokens.taken).toBe(1);
    expect(r.writes).toHaveLength(1);
    expect(r.writes[0]?.metadata.resourceVersion).toBe('6');
    expect(r.writes[0]?.metadata.annotations[Flux.requestedAt]).toBeDefined();
  });

  it('a write waits for its token at the priority its key runs at', async () => {
    const tokens = new FakeTokens({ auto: true });
    const r = setup(await stamped('5'), { tokens });
    r.data.text = 'replicas: 2';
    await r.reconciler.reconcile(KEY, 'low'); // the start-up pass found the change
    r.data.text = 'replicas: 3';
    r.cache.hr = await stamped('6', 'replicas: 2');
    await r.reconciler.reconcile(KEY, 'high'); // a change seen now
    expect(tokens.priorities).toEqual(['low', 'high']);
    expect(r.writes).toHaveLength(2);
  });

  it('a write re-decided after its token acts on the new decision (stamped meanwhile: nothing)', async () => {
    const tokens = new FakeTokens();
    const r = setup(release({}), { tokens }); // unstamped: a backfill is due
    const run = r.reconciler.reconcile(KEY);
    await flushPromises();
    expect(tokens.waiters).toBe(1);
    r.cache.hr = await stamped('7'); // the webhook stamped it on an update meanwhile
    tokens.grant();
    await run;
    expect(r.writes).toEqual([]);
  });

  it('stopping while it waits for its token: writes nothing', async () => {
    const tokens = new FakeTokens();
    const r = setup(release({}), { tokens });
    const run = r.reconciler.reconcile(KEY);
    await flushPromises();
    r.stop();
    tokens.grant();
    await run;
    expect(r.writes).toEqual([]);
  });
});
