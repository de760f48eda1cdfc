// No lost change for a release admitted during a webhook outage (issue #15): no webhook is registered here, so
// the API server admits releases without our stamp, as failurePolicy: Ignore does while the webhook is down.
// A release the operator sees created while it runs is triggered once (the data Flux read at its creation is
// unknown), even when its consumed data changed before the operator evaluated it; a release that was there
// before the operator started (its first list: the migration case) is still stamped without a trigger.
import { afterEach, describe, expect, it } from 'vitest';
import type { KubeClient } from '../../src/kube/client.ts';
import { ConfigMaps, collectionPath, HelmReleases } from '../../src/kube/resources.ts';
import { Annotations, Flux, Labels } from '../../src/names.ts';
import { isObject, stringMap } from '../../src/util/narrow.ts';
import { adminClient, createNamespace, eventually, operatorClient } from '../support/cluster.ts';
import { testDigestKeys } from '../support/digest-key.ts';
import {
  countWrites,
  createConfigMap,
  eventsIn,
  patchConfigMap,
  releaseMeta,
  requestedAt,
  sleep,
  startOperator,
} from './triggers-harness.ts';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** The debounce that places a change between a release's creation and the operator's first look at it. */
const DEBOUNCE_MS = 1500;

async function setup() {
  const client = await adminClient();
  cleanups.push(() => client.close());
  const ns = await createNamespace(client, 'trg-outage');
  await createConfigMap(client, ns, 'cm', { data: { 'values.yaml': 'a: 1' } });
  return { client, ns };
}

/** installedAt: when the operator was installed (the digest key Secret's creation); default unknown. */
async function operator(ns: string, installedAt?: number) {
  const asOperator = await operatorClient();
  const keys =
    installedAt === undefined ? testDigestKeys : () => ({ ...testDigestKeys(), since: installedAt });
  const op = await startOperator(asOperator, [ns], { debounce: DEBOUNCE_MS }, keys);
  cleanups.push(async () => {
    await op.stop();
    asOperator.close();
  });
  return op;
}

async function writes(client: KubeClient, ns: string) {
  const w = await countWrites(client, ns);
  cleanups.push(() => w.stop());
  return w;
}

/** Creates the release and returns the labels it was admitted with (no webhook: none of ours). */
async function createApp(client: KubeClient, ns: string): Promise<Record<string, string>> {
  const created = await client.create(collectionPath(HelmReleases, ns), {
    apiVersion: 'helm.toolkit.fluxcd.io/v2',
    kind: 'HelmRelease',
    metadata: { name: 'app' },
    spec: {
      interval: '5m',
      chart: { spec: { chart: 'c', sourceRef: { kind: 'HelmRepository', name: 'r' } } },
      valuesFrom: [{ kind: 'ConfigMap', name: 'cm' }],
    },
  });
  return isObject(created) && isObject(created.metadata) ? stringMap(created.metadata.labels) : {};
}

describe('a release admitted while the webhook is down', () => {
  it('created while the operator runs, its consumed key changed before the operator looked: exactly one requestedAt, then stamped', async () => {
    const { client, ns } = await setup();
    const op = await operator(ns);
    const w = await writes(client, ns);
    const labels = await createApp(client, ns);
    expect(labels[Labels.managed]).toBeUndefined(); // admitted without our stamp
    // Flux may have read a: 1 at creation; the change lands before the operator evaluates the release.
    await patchConfigMap(client, ns, 'cm', { data: { 'values.yaml': 'a: 2' } });

    const token = await eventually(() => requestedAt(client, ns, 'app'), {
      timeoutMs: DEBOUNCE_MS + 5000,
      what: 'requestedAt',
    });
    await sleep(DEBOUNCE_MS + 500); // another window: a second trigger would land in it
    await op.controller.whenIdle();
    expect(w.writes).toEqual([{ name: 'app', requestedAt: token }]); // one write: trigger and stamp together
    const after = await releaseMeta(client, ns, 'app');
    expect(after.labels[Labels.managed]).toBe('true');
    expect(after.annotations[Annotations.valuesDigest]).toBeDefined();
    expect(after.annotations[Flux.requestedAt]).toBe(token);
    expect(op.caches.createdUnstamped.size).toBe(0); // forgotten once stamped
    const events = await eventually(
      async () => (await eventsIn(client, ns)).filter((e) => e.reason === 'ValuesChanged'),
      { what: 'ValuesChanged event' },
    );
    expect(events.map((e) => e.note)).toEqual([
      expect.stringContaining('created while the webhook was bypassed'),
    ]);
  });

  it('stamped by someone else before the operator wrote for it (the webhook, back, on an update): still triggered once', async () => {
    const { client, ns } = await setup();
    const op = await operator(ns);
    const w = await writes(client, ns);
    await createApp(client, ns);
    await patchConfigMap(client, ns, 'cm', { data: { 'values.yaml': 'a: 2' } });
    // Within the debounce window: what the webhook does on an update of a release that has neither our label
    // nor a digest to carry over, the label and the digest of the data now (a: 2), which Flux never read.
    const cm = await client.get(`${collectionPath(ConfigMaps, ns)}/cm`);
    const rv = isObject(cm) && isObject(cm.metadata) ? cm.metadata.resourceVersion : undefined;
    await eventually(() => op.caches.configMaps.get(ns, 'cm')?.resourceVersion === rv || undefined, {
      what: 'the operator saw the change',
    });
    const digest = await op.caches.values.valuesDigest(ns, [
      { kind: 'ConfigMap', name: 'cm', valuesKey: 'values.yaml', targetPath: '', optional: false },
    ]);
    await client.mergePatch(`${collectionPath(HelmReleases, ns)}/app`, {
      metadata: { labels: { [Labels.managed]: 'true' }, annotations: { [Annotations.valuesDigest]: digest } },
    });

    const token = await eventually(() => requestedAt(client, ns, 'app'), {
      timeoutMs: DEBOUNCE_MS + 5000,
      what: 'requestedAt',
    });
    await sleep(DEBOUNCE_MS + 500);
    await op.controller.whenIdle();
    // The stamp (our admin patch) and the trigger; no second trigger.
    expect(w.writes.filter((x) => x.requestedAt !== undefined)).toEqual([
      { name: 'app', requestedAt: token },
    ]);
    expect(op.caches.createdUnstamped.size).toBe(0); // forgotten once the operator wrote
  });

  it('there before the operator started (its first list): stamped without a trigger; a later change triggers once', async () => {
    const { client, ns } = await setup();
    const labels = await createApp(client, ns);
    expect(labels[Labels.managed]).toBeUndefined();
    const w = await writes(client, ns);
    const op = await operator(ns);
    const stamped = await eventually(
      async () => {
        const m = await releaseMeta(client, ns, 'app');
        return m.labels[Labels.managed] === 'true' && m.annotations[Annotations.valuesDigest] ? m : undefined;
      },
      { what: 'app stamped' },
    );
    expect(stamped.annotations[Flux.requestedAt]).toBeUndefined(); // backfill never triggers
    await sleep(DEBOUNCE_MS + 500);
    await op.controller.whenIdle();
    expect(w.writes).toEqual([{ name: 'app', requestedAt: undefined }]); // the backfill alone
    expect(op.caches.createdUnstamped.size).toBe(0);

    await patchConfigMap(client, ns, 'cm', { data: { 'values.yaml': 'a: 2' } });
    await eventually(() => requestedAt(client, ns, 'app'), {
      timeoutMs: DEBOUNCE_MS + 5000,
      what: 'requestedAt',
    });
    await op.controller.whenIdle();
    expect(w.writes.filter((x) => x.requestedAt !== undefined)).toHaveLength(1);
  });

  it('created while no replica ran, after the installation, its key changed before the start: triggered once at the start', async () => {
    const { client, ns } = await setup();
    const installedAt = Date.now() - 60_000; // the digest key Secret is a minute old
    await createApp(client, ns); // every replica down: admitted unstamped
    await patchConfigMap(client, ns, 'cm', { data: { 'values.yaml': 'a: 2' } }); // Flux may have read a: 1
    const w = await writes(client, ns);
    const op = await operator(ns, installedAt);
    const token = await eventually(() => requestedAt(client, ns, 'app'), {
      timeoutMs: DEBOUNCE_MS + 8000,
      what: 'requestedAt',
    });
    await sleep(DEBOUNCE_MS + 500);
    await op.controller.whenIdle();
    expect(w.writes).toEqual([{ name: 'app', requestedAt: token }]); // trigger and stamp in one write
  });

  it('created before the installation (the migration case) with the installation time known: stamped, not triggered', async () => {
    const { client, ns } = await setup();
    await createApp(client, ns);
    const w = await writes(client, ns);
    const op = await operator(ns, Date.now() + 60_000); // installed after the release existed
    await eventually(
      async () => (await releaseMeta(client, ns, 'app')).labels[Labels.managed] === 'true' || undefined,
      {
        what: 'app stamped',
      },
    );
    await sleep(DEBOUNCE_MS + 500);
    await op.controller.whenIdle();
    expect(w.writes).toEqual([{ name: 'app', requestedAt: undefined }]);
  });
});
