// Self-signed mode against the real API server: the shared CA Secret, the caBundle patch, and admissions
// served end to end under a certificate the webhook made itself.
import { randomBytes } from 'node:crypto';
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
import { isObject, type JsonObject } from '../../src/util/narrow.ts';
import { loadOrCreateCA, patchCABundle } from '../../webhook/selfsigned.ts';
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

const bundles = (name: string) => caBundlesOf(client, name);

describe('self-signed mode on a real API server', () => {
  it('patchCABundle sets every webhook caBundle, keeps the rest, and writes nothing when current', async () => {
    const id = randomBytes(4).toString('hex');
    const name = `selfsigned-patch-${id}`;
    const body = webhookConfiguration(name, 'https://127.0.0.1:1/mutate', createCA('old').cert, id, 'nobody');
    const hooks = body.webhooks as JsonObject[];
    hooks.push({ ...(hooks[0] as JsonObject), name: `second.${id}.helmrelease-autopilot.dev` });
    await client.create(collectionPath(MutatingWebhookConfigurations), body);
    try {
      const ca = createCA('new');
      expect(await patchCABundle(client, name, ca.cert)).toBe(2);
      expect(await bundles(name)).toEqual([
        Buffer.from(ca.cert).toString('base64'),
        Buffer.from(ca.cert).toString('base64'),
      ]);
      const after = (await client.get(
        objectPath(MutatingWebhookConfigurations, undefined, name),
      )) as JsonObject;
      const first = (after.webhooks as JsonObject[])[0] as JsonObject;
      expect(first.failurePolicy).toBe('Ignore');
      expect((first.clientConfig as JsonObject).url).toBe('https://127.0.0.1:1/mutate');
      const rv = (after.metadata as JsonObject).resourceVersion;
      expect(await patchCABundle(client, name, ca.cert)).toBe(0);
      const again = (await client.get(
        objectPath(MutatingWebhookConfigurations, undefined, name),
      )) as JsonObject;
      expect((again.metadata as JsonObject).resourceVersion).toBe(rv);
    } finally {
      await client.delete(objectPath(MutatingWebhookConfigurations, undefined, name));
    }
  });

  it('replicas racing to create the CA Secret all end up with the same CA', async () => {
    const ns = await createNamespace(client, 'wh-ca');
    const cas = await Promise.all([0, 1, 2].map(() => loadOrCreateCA(client, ns)));
    expect(new Set(cas.map((c) => c.cert)).size).toBe(1);
    expect((await loadOrCreateCA(client, ns)).cert).toBe(cas[0]?.cert);
  });

  it('serves admissions under its own certificate once it has written the caBundle', async () => {
    const id = randomBytes(4).toString('hex');
    const name = `selfsigned-e2e-${id}`;
    const operatorNs = await createNamespace(client, 'wh-op');
    // Registered first with a CA nobody serves under: until the patch, calls fail open.
    const placeholder = webhookConfiguration(
      name,
      'https://127.0.0.1:1/mutate',
      createCA('placeholder').cert,
      id,
      'nobody',
    );
    await client.create(collectionPath(MutatingWebhookConfigurations), placeholder);
    const { server } = await startSelfSignedWebhook(client, name, operatorNs);
    try {
      const ca = await loadOrCreateCA(client, operatorNs);
      await eventually(async () => (await bundles(name))[0] === Buffer.from(ca.cert).toString('base64'), {
        what: 'caBundle patched',
      });
      // Point the webhook at this server (the port is known only now); the caBundle stays.
      await client.request({
        method: 'PATCH',
        path: objectPath(MutatingWebhookConfigurations, undefined, name),
        contentType: 'application/json-patch+json',
        body: [
          {
            op: 'replace',
            path: '/webhooks/0/clientConfig/url',
            value: `https://127.0.0.1:${server.port}/mutate`,
          },
        ],
      });
      const ns = `wh-ss-${id}`;
      await client.create(collectionPath(Namespaces), {
        apiVersion: 'v1',
        kind: 'Namespace',
        metadata: { name: ns, labels: { [TEST_NAMESPACE_LABEL]: id } },
      });
      const stamped = await eventually(
        async () => {
          const hr = await client.create(
            collectionPath(HelmReleases, ns),
            helmRelease('probe', [{ kind: 'ConfigMap', name: 'absent', optional: true }]),
            { dryRun: 'All' },
          );
          return labelsOf(hr)[Labels.managed] === 'true' && hr;
        },
        { timeoutMs: 20_000, intervalMs: 200, what: 'an admission through the self-signed certificate' },
      );
      expect(isObject(stamped)).toBe(true);
      expect(server.ready()).toBe(true);
    } finally {
      await server.close();
      await client.delete(objectPath(MutatingWebhookConfigurations, undefined, name));
    }
  });
});
