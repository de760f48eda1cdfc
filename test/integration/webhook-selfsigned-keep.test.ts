// Self-signed mode keeps its promise on a real API server: the caBundle of our MutatingWebhookConfiguration
// is restored whenever it differs (the object recreated, the field overwritten), and a short-lived serving
// certificate is renewed from the same CA without a restart while the API server keeps calling.
import { randomBytes, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KubeClient } from '../../src/kube/client.ts';
import {
  collectionPath,
  HelmReleases,
  MutatingWebhookConfigurations,
  Namespaces,
  objectPath,
} from '../../src/kube/resources.ts';
import { Labels } from '../../src/names.ts';
import { createCA } from '../../src/tls/certs.ts';
import type { JsonObject } from '../../src/util/narrow.ts';
import { loadOrCreateCA } from '../../webhook/selfsigned.ts';
import type { WebhookServer } from '../../webhook/server.ts';
import { adminClient, createNamespace, eventually } from '../support/cluster.ts';
import { helmRelease } from '../support/webhook.ts';
import {
  caBundlesOf,
  labelsOf,
  startSelfSignedWebhook,
  TEST_NAMESPACE_LABEL,
  webhookConfiguration,
} from './webhook-fixture.ts';

let client: KubeClient;
beforeAll(async () => {
  client = await adminClient();
});
afterAll(() => client?.close());

const mwcPath = (name: string) => objectPath(MutatingWebhookConfigurations, undefined, name);
const bundles = (name: string) => caBundlesOf(client, name);
const b64 = (pem: string) => Buffer.from(pem).toString('base64');

/** A configuration confined to namespaces labelled `id`, with a caBundle of a CA nobody serves under. */
const register = (name: string, id: string, url = 'https://127.0.0.1:1/mutate') =>
  client.create(
    collectionPath(MutatingWebhookConfigurations),
    webhookConfiguration(name, url, createCA('stale').cert, id, 'nobody'),
    // Not the operator's field manager: the test's writes stay apart from the webhook's in managedFields.
    { fieldManager: 'integration-test' },
  );

describe('self-signed mode keeps the caBundle and the serving certificate current', () => {
  it('restores the caBundle after the configuration is recreated or its caBundle overwritten', async () => {
    const id = randomBytes(4).toString('hex');
    const name = `selfsigned-keep-${id}`;
    const operatorNs = await createNamespace(client, 'wh-op');
    await register(name, id);
    const { server } = await startSelfSignedWebhook(client, name, operatorNs);
    try {
      const ours = b64((await loadOrCreateCA(client, operatorNs)).cert);
      await eventually(async () => (await bundles(name)).every((b) => b === ours), {
        what: 'caBundle patched at start',
      });
      const managers = ((await client.get(mwcPath(name))) as { metadata: { managedFields: JsonObject[] } })
        .metadata.managedFields;
      expect(managers.map((m) => m.manager)).toContain('helmrelease-autopilot');

      // Deleted and created again from the manifest (a stale caBundle in it).
      await client.delete(mwcPath(name));
      let started = Date.now();
      await register(name, id);
      await eventually(async () => (await bundles(name)).every((b) => b === ours), {
        timeoutMs: 10_000,
        what: 'caBundle restored after the configuration was recreated',
      });
      const recreated = Date.now() - started;

      // Overwritten in place (kubectl replace, another tool).
      started = Date.now();
      await client.request({
        method: 'PATCH',
        path: mwcPath(name),
        contentType: 'application/json-patch+json',
        body: [{ op: 'replace', path: '/webhooks/0/clientConfig/caBundle', value: b64(createCA('x').cert) }],
        query: { fieldManager: 'integration-test' },
      });
      await eventually(async () => (await bundles(name)).every((b) => b === ours), {
        timeoutMs: 10_000,
        what: 'caBundle restored after it was overwritten',
      });
      const overwritten = Date.now() - started;
      console.log(`caBundle restored: ${recreated} ms after recreation, ${overwritten} ms after overwrite`);
      expect(recreated).toBeLessThan(5000);
      expect(overwritten).toBeLessThan(5000);
    } finally {
      await server.close();
      await client.delete(mwcPath(name)).catch(() => {});
    }
  });

  it('renews a short-lived serving certificate without a restart; the API server keeps getting answers', async () => {
    const id = randomBytes(4).toString('hex');
    const name = `selfsigned-renew-${id}`;
    const operatorNs = await createNamespace(client, 'wh-op');
    await register(name, id);
    const validityMs = 4000;
    let server: WebhookServer | undefined;
    try {
      const started = await startSelfSignedWebhook(client, name, operatorNs, validityMs);
      server = started.server;
      const port = server.port;
      const ca = (await loadOrCreateCA(client, operatorNs)).cert;
      await client.request({
        method: 'PATCH',
        path: mwcPath(name),
        contentType: 'application/json-patch+json',
        body: [
          { op: 'replace', path: '/webhooks/0/clientConfig/url', value: `https://127.0.0.1:${port}/mutate` },
        ],
        query: { fieldManager: 'integration-test' },
      });
      const ns = `wh-renew-${id}`;
      await client.create(collectionPath(Namespaces), {
        apiVersion: 'v1',
        kind: 'Namespace',
        metadata: { name: ns, labels: { [TEST_NAMESPACE_LABEL]: id } },
      });
      const stampedNow = async () => {
        const hr = await client.create(
          collectionPath(HelmReleases, ns),
          helmRelease('probe', [{ kind: 'ConfigMap', name: 'absent', optional: true }]),
          { dryRun: 'All' },
        );
        return labelsOf(hr)[Labels.managed] === 'true';
      };
      const served = () =>
        new Promise<X509Certificate>((resolve, reject) => {
          const socket = tls.connect({ host: '127.0.0.1', port, ca }, () => {
            const cert = socket.getPeerX509Certificate();
            socket.end();
            cert ? resolve(cert) : reject(new Error('no certificate'));
          });
          socket.on('error', reject);
        });
      await eventually(stampedNow, { timeoutMs: 20_000, intervalMs: 200, what: 'a first stamped admission' });
      const first = await served();
      const firstNotAfter = new Date(first.validTo).getTime();
      // Renewed at two thirds of its lifetime: new handshakes see a new certificate from the same CA.
      const second = await eventually(
        async () => {
          const c = await served();
          return c.fingerprint256 !== first.fingerprint256 && c;
        },
        { timeoutMs: validityMs + 3000, intervalMs: 200, what: 'a renewed serving certificate' },
      );
      expect(second.verify(new X509Certificate(ca).publicKey)).toBe(true);
      expect(second.checkIP('127.0.0.1')).toBe('127.0.0.1');
      expect(new Date(second.validTo).getTime()).toBeGreaterThan(firstNotAfter);
      // After the first certificate expired, the API server's calls still succeed.
      await eventually(() => Date.now() > firstNotAfter + 1000, { timeoutMs: validityMs + 3000 });
      expect(await stampedNow()).toBe(true);
      // What is served is what was last written to --cert-dir (renewal keeps going meanwhile).
      await eventually(
        async () =>
          (await served()).fingerprint256 ===
          new X509Certificate(readFileSync(join(started.certDir, 'tls.crt'))).fingerprint256,
        { what: 'the served certificate to be the one in --cert-dir' },
      );
    } finally {
      await server?.close();
      await client.delete(mwcPath(name)).catch(() => {});
    }
  });
});
