// The trigger reconciler against a real API server: one property per test, each in its own namespace,
// with the operator scoped to that namespace so parallel tests do not interfere.

import { afterEach, describe, expect, it } from 'vitest';
import { FLAGS, fluxWatchMatcher } from '../../src/config.ts';
import type { KubeClient } from '../../src/kube/client.ts';
import { ConfigMaps, HelmReleases, objectPath } from '../../src/kube/resources.ts';
import { Annotations, Flux, Labels } from '../../src/names.ts';
import { adminClient, createNamespace, eventually, operatorClient } from '../support/cluster.ts';
import { testDigestKeys } from '../support/digest-key.ts';
import {
  countWrites,
  createConfigMap,
  createRelease,
  createSecret,
  eventsIn,
  fluxHandled,
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

async function setup(prefix = 'trg') {
  const client = await adminClient();
  cleanups.push(() => client.close());
  const ns = await createNamespace(client, prefix);
  return { client, ns };
}

/**
 * The trigger reconciler under test, acting as the operator's ServiceAccount (manifests/base's RBAC).
 * `wrap` lets a test intercept the operator's own requests.
 */
async function operator(
  namespaces: string[],
  config: Parameters<typeof startOperator>[2] = {},
  wrap: (asOperator: KubeClient) => KubeClient = (c) => c,
  caching: Parameters<typeof startOperator>[4] = {},
) {
  const asOperator = await operatorClient();
  const op = await startOperator(wrap(asOperator), namespaces, config, testDigestKeys, caching);
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

/** Waits until the operator has stamped the release (label and digest), without triggering it. */
async function stamped(client: KubeClient, ns: string, name: string) {
  return eventually(
    async () => {
      const m = await releaseMeta(client, ns, name);
      return m.labels[Labels.managed] === 'true' && m.annotations[Annotations.valuesDigest] ? m : undefined;
    },
    { what: `${name} stamped` },
  );
}

const b64 = (s: string) => Buffer.from(s).toString('base64');

describe('trigger reconciler', () => {
  it('a consumed key changes: requestedAt changes within a second, with an event', async () => {
    const { client, ns } = await setup();
    await createConfigMap(client, ns, 'cm', { data: { 'values.yaml': 'a: 1', other: 'x' } });
    await createRelease(client, ns, 'app', [{ kind: 'ConfigMap', name: 'cm' }]);
    await operator([ns]);
    const before = await stamped(client, ns, 'app');
    expect(before.annotations[Flux.requestedAt]).toBeUndefined(); // backfill never triggers

    const t0 = Date.now();
    await patchConfigMap(client, ns, 'cm', { data: { 'values.yaml': 'a: 2' } });
    const token = await eventually(() => requestedAt(client, ns, 'app'), {
      timeoutMs: 1000,
      what: 'requestedAt',
    });
    const elapsed = Date.now() - t0;
    expect(elapsed).toBeLessThan(1000);
    expect(token).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/);
    const after = await releaseMeta(client, ns, 'app');
    expect(after.annotations[Annotations.valuesDigest]).not.toBe(
      before.annotations[Annotations.valuesDigest],
    );
    expect(after.annotations[Flux.forceAt]).toBeUndefined();
    const events = await eventually(
      async () => (await eventsIn(client, ns)).filter((e) => e.reason === 'ValuesChanged'),
      { what: 'ValuesChanged event' },
    );
    expect(events[0]?.regarding).toEqual({ kind: 'HelmRelease', name: 'app' });
    expect(events[0]?.note).toContain('ConfigMap/');
  });

  it('a key no release consumes changes: nothing is written', async () => {
    const { client, ns } = await setup();
    await createConfigMap(client, ns, 'cm', { data: { 'values.yaml': 'a: 1', other: 'x' } });
    await createRelease(client, ns, 'app', [{ kind: 'ConfigMap', name: 'cm' }]);
    const op = await operator([ns]);
    await stamped(client, ns, 'app');
    const w = await writes(client, ns);
    await patchConfigMap(client, ns, 'cm', {
      data: { other: 'y' },
      metadata: { labels: { touched: 'yes' } },
    });
    await sleep(300);
    await op.controller.whenIdle();
    await sleep(200);
    expect(w.writes).toEqual([]);
  });

  it('ten updates inside the debounce window: one trigger', async () => {
    const { client, ns } = await setup();
    await createConfigMap(client, ns, 'cm', { data: { 'values.yaml': 'a: 0' } });
    await createRelease(client, ns, 'app', [{ kind: 'ConfigMap', name: 'cm' }]);
    const op = await operator([ns], { debounce: 1500 });
    await stamped(client, ns, 'app');
    const w = await writes(client, ns);
    for (let i = 1; i <= 10; i++)
      await patchConfigMap(client, ns, 'cm', { data: { 'values.yaml': `a: ${i}` } });
    await eventually(() => requestedAt(client, ns, 'app'), { timeoutMs: 5000, what: 'requestedAt' });
    await sleep(1800); // another window: a second trigger would land in it
    await op.controller.whenIdle();
    expect(w.writes.filter((x) => x.requestedAt !== undefined)).toHaveLength(1);
    expect(w.triggers('app')).toBe(1);
  });

  it('Secret data changes trigger', async () => {
    const { client, ns } = await setup();
    await createSecret(client, ns, 'sec', { 'values.yaml': 'password: a' });
    await createRelease(client, ns, 'app', [{ kind: 'Secret', name: 'sec' }]);
    await operator([ns]);
    await stamped(client, ns, 'app');
    await client.mergePatch(
      objectPath({ group: '', version: 'v1', plural: 'secrets', kind: 'Secret' }, ns, 'sec'),
      {
        data: { 'values.yaml': b64('password: b') },
      },
    );
    await eventually(() => requestedAt(client, ns, 'app'), { timeoutMs: 1000, what: 'requestedAt' });
    const notes = (await eventsIn(client, ns)).map((e) => e.note).join('\n');
    expect(notes).not.toContain('password');
  });

  it('a key only in binaryData is missing to Flux: its changes trigger nothing; moved to data, it triggers', async () => {
    const { client, ns } = await setup();
    await createConfigMap(client, ns, 'bin', { binaryData: { 'values.yaml': b64('a: 1') } });
    await createRelease(client, ns, 'app', [{ kind: 'ConfigMap', name: 'bin', optional: true }]);
    await operator([ns]);
    const before = await stamped(client, ns, 'app');
    const w = await writes(client, ns);
    await patchConfigMap(client, ns, 'bin', { binaryData: { 'values.yaml': b64('a: 2') } });
    await sleep(1500);
    expect(await requestedAt(client, ns, 'app')).toBeUndefined();
    expect((await releaseMeta(client, ns, 'app')).annotations[Annotations.valuesDigest]).toBe(
      before.annotations[Annotations.valuesDigest],
    );
    // The API server refuses a key in both maps: the move is one patch.
    await patchConfigMap(client, ns, 'bin', {
      binaryData: { 'values.yaml': null },
      data: { 'values.yaml': 'a: 2' },
    });
    await eventually(() => requestedAt(client, ns, 'app'), { timeoutMs: 2000, what: 'requestedAt' });
    expect(w.writes.filter((x) => x.requestedAt !== undefined)).toHaveLength(1);
  });

  it('an optional reference appearing and disappearing triggers each time', async () => {
    const { client, ns } = await setup();
    await createRelease(client, ns, 'app', [{ kind: 'ConfigMap', name: 'later', optional: true }]);
    await operator([ns]);
    await stamped(client, ns, 'app');
    await createConfigMap(client, ns, 'later', { data: { 'values.yaml': 'a: 1' } });
    const first = await eventually(() => requestedAt(client, ns, 'app'), { what: 'first requestedAt' });
    await fluxHandled(client, ns, 'app');
    await client.delete(objectPath(ConfigMaps, ns, 'later'));
    await eventually(async () => ((await requestedAt(client, ns, 'app')) !== first ? true : undefined), {
      what: 'second requestedAt',
    });
  });

  it('a change while Flux has not handled the last request is held, and sent the moment it has (no lost change)', async () => {
    const { client, ns } = await setup();
    await createConfigMap(client, ns, 'cm', { data: { 'values.yaml': 'a: 1' } });
    await createRelease(client, ns, 'app', [{ kind: 'ConfigMap', name: 'cm' }]);
    const op = await operator([ns]);
    await stamped(client, ns, 'app');
    await patchConfigMap(client, ns, 'cm', { data: { 'values.yaml': 'a: 2' } });
    const first = await eventually(() => requestedAt(client, ns, 'app'), { what: 'first requestedAt' });
    const digestAfterFirst = (await releaseMeta(client, ns, 'app')).annotations[Annotations.valuesDigest];
    await patchConfigMap(client, ns, 'cm', { data: { 'values.yaml': 'a: 3' } });
    await sleep(1500);
    expect(await requestedAt(client, ns, 'app')).toBe(first);
    const skips = await op.registry.getSingleMetric('helmrelease_autopilot_trigger_skips_total')?.get();
    expect(skips?.values.find((v) => v.labels.reason === 'in-flight')?.value).toBeGreaterThan(0);
    await fluxHandled(client, ns, 'app');
    const second = await eventually(
      async () => {
        const token = await requestedAt(client, ns, 'app');
        return token !== first ? token : undefined;
      },
      { timeoutMs: 2000, what: 'the held trigger sent once Flux handled the first request' },
    );
    expect(second).toBeDefined();
    expect((await releaseMeta(client, ns, 'app')).annotations[Annotations.valuesDigest]).not.toBe(
      digestAfterFirst,
    );
  });

  it('--flux-watches-configs: a change of a source Flux watches is recorded without requestedAt; of another, triggered', async () => {
    const { client, ns } = await setup();
    const watched = { [Flux.watchLabel]: 'Enabled' };
    await createConfigMap(client, ns, 'watched', { data: { 'values.yaml': 'a: 1' }, labels: watched });
    await createConfigMap(client, ns, 'plain', { data: { 'values.yaml': 'b: 1' } });
    await createRelease(client, ns, 'both', [
      { kind: 'ConfigMap', name: 'watched' },
      { kind: 'ConfigMap', name: 'plain' },
    ]);
    await createRelease(client, ns, 'only-watched', [{ kind: 'ConfigMap', name: 'watched' }]);
    const matcher = fluxWatchMatcher({
      'flux-watches-configs': true,
      'watch-configs-label-selector': FLAGS['watch-configs-label-selector'].default,
    });
    const op = await operator([ns], {}, (c) => c, { ...(matcher ? { fluxWatches: matcher } : {}) });
    const before = await stamped(client, ns, 'only-watched');
    await stamped(client, ns, 'both');
    const w = await writes(client, ns);

    await patchConfigMap(client, ns, 'watched', { data: { 'values.yaml': 'a: 2' } });
    const fluxWatchedBackfills = async () => {
      const m = await op.registry.getSingleMetric('helmrelease_autopilot_trigger_backfills_total')?.get();
      return m?.values.find((v) => v.labels.reason === 'flux-watched')?.value ?? 0;
    };
    await eventually(async () => (await fluxWatchedBackfills()) === 2, { what: 'both digests recorded' });
    expect((await releaseMeta(client, ns, 'only-watched')).annotations[Annotations.valuesDigest]).not.toBe(
      before.annotations[Annotations.valuesDigest],
    );
    await sleep(1000);
    expect(w.writes.filter((x) => x.requestedAt !== undefined)).toEqual([]);

    await patchConfigMap(client, ns, 'plain', { data: { 'values.yaml': 'b: 2' } });
    await eventually(() => requestedAt(client, ns, 'both'), { what: 'the unwatched source triggered' });
    expect(await requestedAt(client, ns, 'only-watched')).toBeUndefined();
  });

  it('one of three patches failing (release deleted) loses no trigger for the others', async () => {
    const { client, ns } = await setup();
    await createConfigMap(client, ns, 'cm', { data: { 'values.yaml': 'a: 1' } });
    for (const n of ['a', 'b', 'c']) await createRelease(client, ns, n, [{ kind: 'ConfigMap', name: 'cm' }]);
    // Release b is deleted for real just before the operator patches it: the API server answers 404.
    let deleted = false;
    await operator([ns], {}, (asOperator) => {
      const racing: KubeClient = Object.create(asOperator);
      racing.mergePatch = async (path, patch, query) => {
        const data = JSON.stringify(patch);
        if (!deleted && path === objectPath(HelmReleases, ns, 'b') && data.includes(Flux.requestedAt)) {
          deleted = true;
          await client.delete(path);
        }
        return asOperator.mergePatch(path, patch, query);
      };
      return racing;
    });
    for (const n of ['a', 'b', 'c']) await stamped(client, ns, n);
    await patchConfigMap(client, ns, 'cm', { data: { 'values.yaml': 'a: 2' } });
    for (const n of ['a', 'c'])
      await eventually(() => requestedAt(client, ns, n), { what: `${n} triggered` });
    expect(deleted).toBe(true);
    await expect(releaseMeta(client, ns, 'b')).rejects.toMatchObject({ status: 404 });
  });

  it('an operator restart with no change writes nothing to releases (counted)', async () => {
    const { client, ns } = await setup();
    await createConfigMap(client, ns, 'cm', { data: { 'values.yaml': 'a: 1' } });
    await createSecret(client, ns, 'sec', { 'values.yaml': 'b: 1' });
    for (let i = 0; i < 5; i++) {
      await createRelease(client, ns, `app${i}`, [
        { kind: 'ConfigMap', name: 'cm' },
        { kind: 'Secret', name: 'sec' },
        { kind: 'ConfigMap', name: 'absent', optional: true },
      ]);
    }
    const first = await operator([ns]);
    for (let i = 0; i < 5; i++) await stamped(client, ns, `app${i}`);
    await first.controller.whenIdle();
    await first.stop();

    const w = await writes(client, ns);
    let patches = 0;
    const second = await operator([ns], {}, (asOperator) => {
      const counting: KubeClient = Object.create(asOperator);
      counting.mergePatch = async (...args) => {
        patches++;
        return asOperator.mergePatch(...args);
      };
      return counting;
    });
    await second.controller.whenIdle();
    await sleep(500);
    expect(patches).toBe(0);
    expect(w.writes).toEqual([]);
    const skips = await second.registry.getSingleMetricAsString('helmrelease_autopilot_trigger_skips_total');
    expect(skips).toContain('reason="unchanged"} 5');
  });

  it('a change made while the operator was stopped is triggered at start', async () => {
    const { client, ns } = await setup();
    await createConfigMap(client, ns, 'cm', { data: { 'values.yaml': 'a: 1' } });
    await createRelease(client, ns, 'app', [{ kind: 'ConfigMap', name: 'cm' }]);
    const first = await operator([ns]);
    await stamped(client, ns, 'app');
    await first.stop();
    await patchConfigMap(client, ns, 'cm', { data: { 'values.yaml': 'a: 2' } });
    expect(await requestedAt(client, ns, 'app')).toBeUndefined();
    const w = await writes(client, ns);
    const second = await operator([ns]);
    await eventually(() => requestedAt(client, ns, 'app'), { what: 'requestedAt after restart' });
    await second.controller.whenIdle();
    expect(w.triggers('app')).toBe(1);
  });

  it('a suspended release is left alone and caught up on resume', async () => {
    const { client, ns } = await setup();
    await createConfigMap(client, ns, 'cm', { data: { 'values.yaml': 'a: 1' } });
    await createRelease(client, ns, 'app', [{ kind: 'ConfigMap', name: 'cm' }]);
    const op = await operator([ns]);
    await stamped(client, ns, 'app');
    await client.mergePatch(objectPath(HelmReleases, ns, 'app'), { spec: { suspend: true } });
    await patchConfigMap(client, ns, 'cm', { data: { 'values.yaml': 'a: 2' } });
    await sleep(300);
    await op.controller.whenIdle();
    expect(await requestedAt(client, ns, 'app')).toBeUndefined();
    await client.mergePatch(objectPath(HelmReleases, ns, 'app'), { spec: { suspend: false } });
    await eventually(() => requestedAt(client, ns, 'app'), { what: 'requestedAt on resume' });
  });

  it('notify-only: an event and a metric, no write', async () => {
    const { client, ns } = await setup();
    await createConfigMap(client, ns, 'cm', { data: { 'values.yaml': 'a: 1' } });
    await createRelease(client, ns, 'app', [{ kind: 'ConfigMap', name: 'cm' }], {
      [Annotations.valuesDigest]: 'sha256:stale',
    });
    const w = await writes(client, ns);
    const op = await operator([ns], { 'notify-only': true });
    await eventually(async () => (await eventsIn(client, ns)).some((e) => e.reason === 'ValuesChanged'), {
      what: 'notify-only event',
    });
    await op.controller.whenIdle();
    expect(w.writes).toEqual([]);
    expect(await op.registry.getSingleMetricAsString('helmrelease_autopilot_triggers_total')).toContain(
      'reason="values-changed"} 1',
    );
  });

  it('an explicit link triggers on a data change, not on a metadata-only change', async () => {
    const { client, ns } = await setup();
    await createRelease(client, ns, 'app', []);
    await createConfigMap(client, ns, 'linked', {
      data: { 'config.json': '{}' },
      annotations: { [Annotations.linkReleases]: ' app , other' },
    });
    const op = await operator([ns]);
    await eventually(
      async () => (await releaseMeta(client, ns, 'app')).annotations[Annotations.linkDigests],
      { what: 'link digest recorded' },
    );
    const w = await writes(client, ns);
    await patchConfigMap(client, ns, 'linked', { metadata: { labels: { touched: 'yes' } } });
    await sleep(300);
    await op.controller.whenIdle();
    expect(w.writes).toEqual([]);
    await patchConfigMap(client, ns, 'linked', { data: { 'config.json': '{"a":1}' } });
    await eventually(() => requestedAt(client, ns, 'app'), { timeoutMs: 1000, what: 'requestedAt' });
  });

  it('a linked source deleted and recreated (replace --force) triggers on each step', async () => {
    const { client, ns } = await setup();
    await createRelease(client, ns, 'app', []);
    const link = { [Annotations.linkReleases]: 'app' };
    await createConfigMap(client, ns, 'linked', { data: { 'config.json': '{}' }, annotations: link });
    await operator([ns]);
    await eventually(
      async () => (await releaseMeta(client, ns, 'app')).annotations[Annotations.linkDigests],
      { what: 'link digest recorded' },
    );
    await client.delete(objectPath(ConfigMaps, ns, 'linked'));
    const first = await eventually(() => requestedAt(client, ns, 'app'), { what: 'deletion triggered' });
    await fluxHandled(client, ns, 'app');
    await createConfigMap(client, ns, 'linked', {
      data: { 'config.json': '{"new":true}' },
      annotations: link,
    });
    await eventually(async () => ((await requestedAt(client, ns, 'app')) !== first ? true : undefined), {
      what: 'recreation triggered',
    });
  });

  it('a cross-namespace link without opt-in is refused with a Warning event on the source', async () => {
    const { client, ns } = await setup('trg-rel');
    const src = await createNamespace(client, 'trg-src');
    await createRelease(client, ns, 'app', []);
    await createRelease(client, ns, 'open', [], { [Annotations.allowSourceNamespaces]: src });
    await createConfigMap(client, src, 'linked', {
      data: { k: 'v1' },
      annotations: { [Annotations.linkReleases]: 'app, open', [Annotations.linkNamespace]: ns },
    });
    await operator([ns, src]);
    await eventually(
      async () => (await releaseMeta(client, ns, 'open')).annotations[Annotations.linkDigests],
      { what: 'allowed link recorded' },
    );
    await patchConfigMap(client, src, 'linked', { data: { k: 'v2' } });
    await eventually(() => requestedAt(client, ns, 'open'), { what: 'opted-in release triggered' });
    const refused = await eventually(
      async () => (await eventsIn(client, src)).find((e) => e.reason === 'LinkRefused'),
      { what: 'LinkRefused event' },
    );
    expect(refused).toMatchObject({ type: 'Warning', regarding: { kind: 'ConfigMap', name: 'linked' } });
    expect(refused.note).toContain(`${ns}/app`);
    const app = await releaseMeta(client, ns, 'app');
    expect(app.annotations[Flux.requestedAt]).toBeUndefined();
    expect(app.annotations[Annotations.linkDigests]).toBeUndefined();
  });

  it.each([
    ['honoured with --compat-trigger-operator', true],
    ['ignored without it', false],
  ])("helmrelease-trigger-operator's link annotations are %s", async (_name, compat) => {
    const { client, ns } = await setup();
    await createRelease(client, ns, 'app', []);
    await createConfigMap(client, ns, 'linked', {
      data: { k: 'v1' },
      annotations: { 'nebius.ai/helmreleases-name': 'app', 'nebius.ai/helmreleases-namespace': ns },
    });
    const op = await operator([ns], { 'compat-trigger-operator': compat });
    if (compat) {
      await eventually(
        async () => (await releaseMeta(client, ns, 'app')).annotations[Annotations.linkDigests],
        {
          what: 'link digest recorded',
        },
      );
    }
    await patchConfigMap(client, ns, 'linked', { data: { k: 'v2' } });
    if (compat) {
      await eventually(() => requestedAt(client, ns, 'app'), { what: 'requestedAt' });
    } else {
      await sleep(300);
      await op.controller.whenIdle();
      expect(await releaseMeta(client, ns, 'app')).toMatchObject({ annotations: {} });
    }
  });
});
