// Upgrading from unkeyed (v1) digests to keyed ones (v2) on a real API server triggers nothing: 1,000
// releases stamped as the previous version left them are re-stamped in v2 without requestedAt, while a
// release whose data changed during the upgrade is triggered as always, with an Event that carries no
// digest; a key rotation likewise re-stamps releases stamped under the previous key. The trigger controller
// runs as the operator's ServiceAccount (manifests/base's RBAC).
import { afterAll, describe, expect, it } from 'vitest';
import type { ValuesReference } from '../../src/flux/helmrelease.ts';
import { ConfigMaps, collectionPath, HelmReleases } from '../../src/kube/resources.ts';
import { Annotations, Flux, Labels } from '../../src/names.ts';
import {
  digestKey,
  legacyObjectDataDigest,
  legacyValuesDigest,
  objectDataDigest,
  valuesDigestOfBytes,
} from '../../src/values/digest.ts';
import { adminClient, createNamespace, eventually, operatorClient } from '../support/cluster.ts';
import { TEST_DIGEST_KEYS } from '../support/digest-key.ts';
import { countWrites, eventsIn, releaseMeta, startOperator } from './triggers-harness.ts';

const RELEASES = 1000;
/** Releases whose first this many also have an explicit link, recorded with a v1 link digest. */
const LINKED = 100;
/** Releases whose data changed after their v1 digest was written (during the upgrade). */
const CHANGED = 5;
const KEY = TEST_DIGEST_KEYS.current;

const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

const ref = (name: string): ValuesReference => ({
  kind: 'ConfigMap',
  name,
  valuesKey: 'values.yaml',
  targetPath: '',
  optional: false,
});
/** Runs fn over items, n at a time. */
async function parallel<T>(items: readonly T[], n: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: n }, async () => {
      while (next < items.length) await fn(items[next++] as T);
    }),
  );
}

const values = (i: number, gen = 0) => `replicas: ${i % 7}\nname: app-${i}\ngen: ${gen}\n`;

describe('upgrade from v1 digests', () => {
  it(`re-stamps ${RELEASES} releases stamped with v1 digests in v2, writing no requestedAt; a release whose data changed meanwhile is triggered`, async () => {
    const admin = await adminClient();
    cleanups.push(() => admin.close());
    const ns = await createNamespace(admin, 'trg-migrate');
    const total = RELEASES + CHANGED;
    const idx = Array.from({ length: total }, (_, i) => i);
    await parallel(idx, 16, async (i) => {
      await admin.create(collectionPath(ConfigMaps, ns), {
        metadata: { name: `cm-${i}` },
        // The changed ones already hold newer data than their v1 digest says.
        data: { 'values.yaml': values(i, i >= RELEASES ? 1 : 0), other: 'x' },
      });
      if (i < LINKED)
        await admin.create(collectionPath(ConfigMaps, ns), {
          metadata: { name: `linked-${i}`, annotations: { [Annotations.linkReleases]: `app-${i}` } },
          data: { 'settings.yaml': `link: ${i}\n` },
        });
    });
    // Stamped as the previous version's webhook and reconciler left them: v1 values and link digests.
    await parallel(idx, 16, async (i) => {
      const v1 = legacyValuesDigest([ref(`cm-${i}`)], () => Buffer.from(values(i)));
      const links =
        i < LINKED
          ? {
              [Annotations.linkDigests]: JSON.stringify({
                [`ConfigMap/${ns}/linked-${i}`]: legacyObjectDataDigest({
                  data: { 'settings.yaml': `link: ${i}\n` },
                }),
              }),
            }
          : {};
      await admin.create(collectionPath(HelmReleases, ns), {
        apiVersion: 'helm.toolkit.fluxcd.io/v2',
        kind: 'HelmRelease',
        metadata: {
          name: `app-${i}`,
          labels: { [Labels.managed]: 'true' },
          annotations: { [Annotations.valuesDigest]: v1, ...links },
        },
        spec: {
          interval: '5m',
          chart: { spec: { chart: 'c', sourceRef: { kind: 'HelmRepository', name: 'r' } } },
          valuesFrom: [{ kind: 'ConfigMap', name: `cm-${i}` }],
        },
      });
    });

    const writes = await countWrites(admin, ns);
    cleanups.push(() => writes.stop());
    const asOperator = await operatorClient();
    const started = performance.now();
    const op = await startOperator(asOperator, [ns], { 'write-qps': 500, 'write-burst': 500 });
    cleanups.push(async () => {
      await op.stop();
      asOperator.close();
    });
    const v2 = (i: number) =>
      valuesDigestOfBytes(KEY, ns, [ref(`cm-${i}`)], () => Buffer.from(values(i, i >= RELEASES ? 1 : 0)));
    await eventually(() => writes.writes.length >= total, {
      what: 'every release written once',
      timeoutMs: 120_000,
      intervalMs: 200,
    });
    const ms = Math.round(performance.now() - started);
    const metrics = await op.registry.metrics();
    const stats = op.caches.values.stats;

    const triggered = new Set(writes.writes.filter((w) => w.requestedAt !== undefined).map((w) => w.name));
    const restamps = writes.writes.filter((w) => w.requestedAt === undefined).length;
    console.log(
      `migration of ${RELEASES} releases (${LINKED} with a v1 link digest) + ${CHANGED} changed: ${ms} ms from start to the last write; ` +
        `${writes.writes.length} writes (${restamps} re-stamps, ${triggered.size} triggers); values store: ${stats.fetches} GETs, ` +
        `${stats.lists} LIST pages, ${stats.olderFormat} older-format digests`,
    );
    expect(restamps).toBe(RELEASES);
    expect([...triggered].sort()).toEqual(
      idx
        .slice(RELEASES)
        .map((i) => `app-${i}`)
        .sort(),
    );
    expect(metrics).toContain(`helmrelease_autopilot_trigger_backfills_total{reason="restamp"} ${RELEASES}`);
    expect(metrics).toMatch(/helmrelease_autopilot_triggers_total\{reason="values-changed"\} 5\b/);

    // Every release now carries v2 digests under the cluster key; the untouched ones no requestedAt.
    await parallel(idx, 16, async (i) => {
      const meta = await releaseMeta(admin, ns, `app-${i}`);
      expect(meta.annotations[Annotations.valuesDigest]).toBe(v2(i));
      expect(meta.annotations[Flux.requestedAt] !== undefined).toBe(i >= RELEASES);
      if (i < LINKED)
        expect(JSON.parse(meta.annotations[Annotations.linkDigests] ?? '{}')).toEqual({
          [`ConfigMap/${ns}/linked-${i}`]: objectDataDigest(
            KEY,
            { kind: 'ConfigMap', namespace: ns, name: `linked-${i}` },
            { data: { 'settings.yaml': `link: ${i}\n` } },
          ),
        });
    });

    // The triggered ones got an Event that names the source and carries no part of either digest.
    const events = await eventually(
      async () => {
        const e = (await eventsIn(admin, ns)).filter((x) => x.reason === 'ValuesChanged');
        return e.length >= CHANGED ? e : undefined;
      },
      { what: 'the ValuesChanged events' },
    );
    for (const e of events) {
      const i = Number(e.regarding.name.slice('app-'.length));
      expect(e.note).toContain(`ConfigMap/${ns}/cm-${i}`);
      const digests = [legacyValuesDigest([ref(`cm-${i}`)], () => Buffer.from(values(i))), v2(i)];
      for (const d of digests) {
        const hex = d.slice(d.lastIndexOf(':') + 1);
        // No 6-character window of either digest's hex appears in the note.
        for (let at = 0; at + 6 <= hex.length; at++) expect(e.note).not.toContain(hex.slice(at, at + 6));
      }
    }
  }, 300_000);

  it('a key rotation re-stamps releases stamped under the previous key without a reconcile', async () => {
    const admin = await adminClient();
    cleanups.push(() => admin.close());
    const ns = await createNamespace(admin, 'trg-rotate');
    const previous = KEY;
    const current = digestKey(Buffer.from('the rotated-in digest key, 32 bytes or more'));
    const n = 20;
    const idx = Array.from({ length: n }, (_, i) => i);
    await parallel(idx, 8, async (i) => {
      await admin.create(collectionPath(ConfigMaps, ns), {
        metadata: { name: `cm-${i}` },
        data: { 'values.yaml': values(i, i === 0 ? 1 : 0) },
      });
      await admin.create(collectionPath(HelmReleases, ns), {
        apiVersion: 'helm.toolkit.fluxcd.io/v2',
        kind: 'HelmRelease',
        metadata: {
          name: `app-${i}`,
          labels: { [Labels.managed]: 'true' },
          // Stamped under the previous key; app-0's data changed since.
          annotations: {
            [Annotations.valuesDigest]: valuesDigestOfBytes(previous, ns, [ref(`cm-${i}`)], () =>
              Buffer.from(values(i)),
            ),
          },
        },
        spec: {
          interval: '5m',
          chart: { spec: { chart: 'c', sourceRef: { kind: 'HelmRepository', name: 'r' } } },
          valuesFrom: [{ kind: 'ConfigMap', name: `cm-${i}` }],
        },
      });
    });
    const writes = await countWrites(admin, ns);
    cleanups.push(() => writes.stop());
    const asOperator = await operatorClient();
    const op = await startOperator(asOperator, [ns], {}, () => ({ current, previous }));
    cleanups.push(async () => {
      await op.stop();
      asOperator.close();
    });
    await eventually(() => writes.writes.length >= n, {
      what: 'every release written once',
      timeoutMs: 30_000,
    });
    expect(writes.writes.filter((w) => w.requestedAt !== undefined).map((w) => w.name)).toEqual(['app-0']);
    await parallel(idx, 8, async (i) => {
      const meta = await releaseMeta(admin, ns, `app-${i}`);
      expect(meta.annotations[Annotations.valuesDigest]).toBe(
        valuesDigestOfBytes(current, ns, [ref(`cm-${i}`)], () => Buffer.from(values(i, i === 0 ? 1 : 0))),
      );
    });
  });
});
