// The webhook under disruption: certificate rotation while admissions flow, a stopped webhook, and values
// lookups that fail (the API server lost etcd).

import { X509Certificate } from 'node:crypto';
import https from 'node:https';
import tls from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import { collectionPath, HelmReleases, objectPath } from '../../src/kube/resources.ts';
import { Annotations, Labels } from '../../src/names.ts';
import { array } from '../../src/util/narrow.ts';
import { eventually } from '../support/cluster.ts';
import { admissionReview, helmRelease } from '../support/webhook.ts';
import {
  annotationsOf,
  apiserverMetrics,
  createConfigMap,
  expectedDigest,
  labelsOf,
  metricSum,
  startWebhookFixture,
  type WebhookFixture,
} from './webhook-fixture.ts';

const VALUES_FROM = [{ kind: 'ConfigMap', name: 'values' }];
const fixtures: WebhookFixture[] = [];
afterEach(async () => {
  for (const f of fixtures.splice(0)) await f.stop();
});

function servedFingerprint(port: number, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, ca }, () => {
      resolve(s.getPeerX509Certificate()?.fingerprint256 ?? '');
      s.end();
    });
    s.on('error', reject);
  });
}

function postFresh(port: number, ca: string, body: unknown): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        port,
        path: '/mutate',
        method: 'POST',
        ca,
        agent: false,
        headers: { 'content-type': 'application/json' },
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

describe('webhook disruption', () => {
  it('rotating the certificate files while requests flow fails no admission', async () => {
    const f = await startWebhookFixture();
    fixtures.push(f);
    const ns = await f.namespace();
    await createConfigMap(f.client, ns, 'values', { 'values.yaml': 'a: 1' });
    await eventually(() => f.caches.configMaps.get(ns, 'values') !== undefined);
    const failOpen = async () =>
      metricSum(await apiserverMetrics(f.client), 'apiserver_admission_webhook_fail_open_count', {
        name: f.webhookName,
      });
    const failOpenBefore = await failOpen();

    let running = true;
    let created = 0;
    const errors: unknown[] = [];
    const worker = async (w: number) => {
      for (let i = 0; running; i++) {
        try {
          await f.client.create(collectionPath(HelmReleases, ns), helmRelease(`r-${w}-${i}`, VALUES_FROM));
          created++;
        } catch (err) {
          errors.push(err);
        }
      }
    };
    // The API server keeps its connections alive, so also open a fresh TLS connection per request: every
    // handshake during the swaps must succeed too.
    let direct = 0;
    const handshaker = async () => {
      for (let i = 0; running; i++) {
        try {
          const status = await postFresh(
            f.server.port,
            f.ca.cert,
            admissionReview(`d-${i}`, helmRelease('d', [])),
          );
          if (status === 200) direct++;
          else errors.push(new Error(`HTTP ${status}`));
        } catch (err) {
          errors.push(err);
        }
      }
    };
    const workers = [0, 1, 2, 3].map(worker).concat(handshaker());
    let last = '';
    for (let r = 0; r < 6; r++) {
      await new Promise((res) => setTimeout(res, 400));
      last = new X509Certificate(f.rotate().cert).fingerprint256;
    }
    // The new pair is in use for new connections (the watch picked it up, no poll needed).
    await eventually(async () => (await servedFingerprint(f.server.port, f.ca.cert)) === last, {
      what: 'the last pair to be served',
    });
    await new Promise((res) => setTimeout(res, 400));
    running = false;
    await Promise.all(workers);

    expect(errors).toEqual([]);
    expect(created).toBeGreaterThan(20);
    expect(direct).toBeGreaterThan(20);
    const list = await f.client.get(collectionPath(HelmReleases, ns));
    const items = array((list as { items?: unknown }).items);
    expect(items).toHaveLength(created);
    const unstamped = items.filter(
      (o) => labelsOf(o)[Labels.managed] !== 'true' || !annotationsOf(o)[Annotations.valuesDigest],
    );
    expect(unstamped).toEqual([]);
    expect(await failOpen()).toBe(failOpenBefore);
  });

  it('with the webhook stopped, creating a HelmRelease still succeeds (failurePolicy Ignore)', async () => {
    const f = await startWebhookFixture();
    fixtures.push(f);
    const ns = await f.namespace();
    await f.stopServer();
    const started = Date.now();
    const created = await f.client.create(
      collectionPath(HelmReleases, ns),
      helmRelease('unstamped', VALUES_FROM),
    );
    expect(Date.now() - started).toBeLessThan(5000);
    expect(labelsOf(created)[Labels.managed]).toBeUndefined();
    const failOpen = metricSum(
      await apiserverMetrics(f.client),
      'apiserver_admission_webhook_fail_open_count',
      {
        name: f.webhookName,
      },
    );
    expect(failOpen).toBeGreaterThan(0);
  });

  it('a spec change admitted while the values lookup fails keeps the stored digest (soak finding)', async () => {
    // The soak suspended a release while etcd restarted: the lookup timed out and the digest was removed, so
    // the reconciler triggered a release whose data had not changed. The stored digest is kept instead.
    let failing = false;
    let caches: WebhookFixture['caches'] | undefined;
    const f = await startWebhookFixture({
      lookup: {
        hasSynced: () => caches?.values.hasSynced() ?? false,
        valuesDigest: (namespace, refs, signal) =>
          failing
            ? Promise.reject(new Error('etcd is restarting'))
            : (caches as WebhookFixture['caches']).values.valuesDigest(namespace, refs, signal),
      },
    });
    caches = f.caches;
    fixtures.push(f);
    const ns = await f.namespace();
    await createConfigMap(f.client, ns, 'values', { 'values.yaml': 'a: 1' });
    const stored = expectedDigest(ns, VALUES_FROM, { values: { 'values.yaml': 'a: 1' } });
    const created = await f.client.create(collectionPath(HelmReleases, ns), helmRelease('app', VALUES_FROM));
    expect(annotationsOf(created)[Annotations.valuesDigest]).toBe(stored);
    failing = true;
    const suspended = await f.client.mergePatch(objectPath(HelmReleases, ns, 'app'), {
      spec: { suspend: true },
    });
    expect(labelsOf(suspended)[Labels.managed]).toBe('true');
    expect(annotationsOf(suspended)[Annotations.valuesDigest]).toBe(stored);
  });
});
