// A webhook under test against the shared API server: its own server on a loopback port, its own
// MutatingWebhookConfiguration confined (namespaceSelector) to namespaces carrying this fixture's label,
// so other suites running on the same API server are never mutated by it.
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { parseValuesFrom } from '../../src/flux/helmrelease.ts';
import { createCaches, type OperatorCaches } from '../../src/kube/caches.ts';
import type { KubeClient } from '../../src/kube/client.ts';
import {
  ConfigMaps,
  collectionPath,
  HelmReleases,
  MutatingWebhookConfigurations,
  Namespaces,
  objectPath,
} from '../../src/kube/resources.ts';
import { Labels, PREFIX } from '../../src/names.ts';
import { createCA, issueCertificate, type KeyPair } from '../../src/tls/certs.ts';
import { isObject, type Json, type JsonObject } from '../../src/util/narrow.ts';
import { type DigestKeys, keyBytesOf, valuesDigestOfBytes } from '../../src/values/digest.ts';
import type { ValuesLookup } from '../../src/values/lookup.ts';
import { startWebhookServer, type WebhookConfig, type WebhookServer } from '../../webhook/server.ts';
import { adminClient, eventually } from '../support/cluster.ts';
import { TEST_DIGEST_KEYS, testDigestKeys } from '../support/digest-key.ts';
import { testLogger } from '../support/log.ts';
import { helmRelease, memoryLookup, writeAtomicWriterLayout } from '../support/webhook.ts';
import { loopbackRegistration } from '../support/webhook-registration.ts';

export const TEST_NAMESPACE_LABEL = `${PREFIX}/webhook-test`;
export const APPLY_PATCH = 'application/apply-patch+yaml';

export interface WebhookFixture {
  client: KubeClient;
  caches: OperatorCaches;
  server: WebhookServer;
  registry: Registry;
  ca: KeyPair;
  certDir: string;
  /** The identity matchConditions exclude (stands for the operator's service account). */
  operatorUser: string;
  configurationName: string;
  /** The webhook's name in the configuration (unique, so the API server's metrics tell it apart). */
  webhookName: string;
  /** A fresh namespace this fixture's webhook applies to. */
  namespace(): Promise<string>;
  /** Writes a new serving pair (same CA) the way kubelet does; returns it. */
  rotate(): KeyPair;
  /** Stops the webhook server only (the configuration stays registered). */
  stopServer(): Promise<void>;
  stop(): Promise<void>;
}

const serving = (ca: KeyPair) =>
  issueCertificate(ca, { commonName: 'webhook', hosts: ['127.0.0.1'], usage: 'server' });

export async function startWebhookFixture(
  o: {
    lookup?: ValuesLookup;
    config?: Partial<WebhookConfig>;
    digestKeys?: () => DigestKeys | undefined;
    /** The identity matchConditions exclude; default a fresh one (tests that run an operator pass its user). */
    operatorUser?: string;
  } = {},
): Promise<WebhookFixture> {
  const client = await adminClient();
  const id = randomBytes(4).toString('hex');
  const ca = createCA(`webhook-test-ca-${id}`);
  const certDir = mkdtempSync(join(tmpdir(), 'webhook-certs-'));
  const rotate = () => {
    const pair = serving(ca);
    writeAtomicWriterLayout(certDir, { 'tls.crt': pair.cert, 'tls.key': pair.key });
    return pair;
  };
  rotate();
  const caches = createCaches({ client, logger: testLogger(), digestKeys: o.digestKeys ?? testDigestKeys });
  caches.start();
  await caches.waitForSync();
  const registry = new Registry();
  const server = await startWebhookServer({
    config: {
      'bind-address': '127.0.0.1',
      'webhook-port': 0,
      'tls-mode': 'files',
      'cert-dir': certDir,
      'cert-poll-interval': 10_000,
      'self-signed-dns-names': [],
      'webhook-configuration': '',
      'webhook-lookup-timeout': 500,
      ...o.config,
    },
    lookup: o.lookup ?? caches.values,
    logger: testLogger(),
    registry,
  });
  const operatorUser = o.operatorUser ?? `helmrelease-autopilot-operator-${id}`;
  const configurationName = `helmrelease-autopilot-test-${id}`;
  await client.create(
    collectionPath(MutatingWebhookConfigurations),
    webhookConfiguration(
      configurationName,
      `https://127.0.0.1:${server.port}/mutate`,
      ca.cert,
      id,
      operatorUser,
    ),
  );
  let serverStopped = false;
  const fixture: WebhookFixture = {
    client,
    caches,
    server,
    registry,
    ca,
    certDir,
    operatorUser,
    configurationName,
    webhookName: webhookName(id),
    async namespace() {
      // Labelled at creation: a label added afterwards may reach the API server's namespace cache only
      // after the first requests, and those would silently skip the webhook.
      const ns = `wh-${randomBytes(4).toString('hex')}`;
      await client.create(collectionPath(Namespaces), {
        apiVersion: 'v1',
        kind: 'Namespace',
        metadata: { name: ns, labels: { [TEST_NAMESPACE_LABEL]: id } },
      });
      await waitUntilActive(fixture, ns);
      return ns;
    },
    rotate,
    async stopServer() {
      if (serverStopped) return;
      serverStopped = true;
      await server.close();
    },
    async stop() {
      await client
        .delete(objectPath(MutatingWebhookConfigurations, undefined, configurationName))
        .catch(() => {});
      await fixture.stopServer();
      await caches.stop();
      client.close();
    },
  };
  await fixture.namespace();
  return fixture;
}

const webhookName = (id: string) => `${id}.helmreleases.helmrelease-autopilot.dev`;

/** The shipped registration, confined to namespaces labelled with this fixture's id. */
export function webhookConfiguration(
  name: string,
  url: string,
  caPem: string,
  id: string,
  operatorUser: string,
): JsonObject {
  return loopbackRegistration({
    name,
    url,
    caPem,
    operatorUser,
    webhookName: webhookName(id),
    namespaceSelector: {
      matchLabels: { [TEST_NAMESPACE_LABEL]: id },
      matchExpressions: [{ key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: ['kube-system'] }],
    },
  });
}

/**
 * The API server picks up new configurations and namespaces asynchronously: dry-run creates in `ns` until
 * one comes back stamped.
 */
async function waitUntilActive(f: WebhookFixture, ns: string): Promise<void> {
  await eventually(
    async () => {
      const labelled = await f.client.create(
        collectionPath(HelmReleases, ns),
        helmRelease('probe', [{ kind: 'ConfigMap', name: 'absent', optional: true }]),
        { dryRun: 'All' },
      );
      return labelsOf(labelled)[Labels.managed] === 'true';
    },
    {
      timeoutMs: 20_000,
      intervalMs: 200,
      what: `webhook configuration ${f.configurationName} to take effect in ${ns}`,
    },
  );
}

/** The caBundle of every webhook of MutatingWebhookConfiguration `name`, as stored (base64). */
export async function caBundlesOf(client: KubeClient, name: string): Promise<unknown[]> {
  const mwc = await client.get(objectPath(MutatingWebhookConfigurations, undefined, name));
  return ((mwc as JsonObject).webhooks as JsonObject[]).map((w) => (w.clientConfig as JsonObject).caBundle);
}

/**
 * A webhook server in self-signed mode keeping the caBundle of configuration `name`, its CA Secret in
 * `operatorNs`, its serving certificate (valid `validityMs` if given) in a fresh directory.
 */
export async function startSelfSignedWebhook(
  client: KubeClient,
  name: string,
  operatorNs: string,
  validityMs?: number,
): Promise<{ server: WebhookServer; certDir: string }> {
  const certDir = join(mkdtempSync(join(tmpdir(), 'selfsigned-')), 'certs');
  const server = await startWebhookServer({
    config: {
      'bind-address': '127.0.0.1',
      'webhook-port': 0,
      'tls-mode': 'self-signed',
      'cert-dir': certDir,
      'cert-poll-interval': 10_000,
      'self-signed-dns-names': ['helmrelease-autopilot-webhook.helmrelease-autopilot.svc'],
      'webhook-configuration': name,
      'webhook-lookup-timeout': 500,
    },
    lookup: memoryLookup(),
    logger: testLogger(),
    registry: new Registry(),
    client,
    namespace: operatorNs,
    ...(validityMs ? { selfSignedValidityMs: validityMs } : {}),
  });
  return { server, certDir };
}

export function labelsOf(obj: unknown): Record<string, string> {
  const m = isObject(obj) && isObject(obj.metadata) ? obj.metadata : {};
  return isObject(m.labels) ? (m.labels as Record<string, string>) : {};
}

export function annotationsOf(obj: unknown): Record<string, string> {
  const m = isObject(obj) && isObject(obj.metadata) ? obj.metadata : {};
  return isObject(m.annotations) ? (m.annotations as Record<string, string>) : {};
}

export async function createConfigMap(
  client: KubeClient,
  ns: string,
  name: string,
  data: Record<string, string>,
) {
  return client.create(collectionPath(ConfigMaps, ns), {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name },
    data,
  });
}

/** The digest the webhook should record for `valuesFrom` over these ConfigMaps (name -> data). */
export function expectedDigest(
  namespace: string,
  valuesFrom: Json[],
  configMaps: Record<string, Record<string, string>>,
): string {
  const refs = parseValuesFrom(valuesFrom);
  if (!refs.ok) throw new Error(refs.error);
  return valuesDigestOfBytes(TEST_DIGEST_KEYS.current, namespace, refs.value, (ref) =>
    keyBytesOf(ref.kind, configMaps[ref.name] ? { data: configMaps[ref.name] } : undefined, ref.valuesKey),
  );
}

/** Server-side apply of `obj` as `fieldManager`. */
export function apply(
  client: KubeClient,
  ns: string,
  obj: JsonObject,
  fieldManager: string,
  query: Record<string, string> = {},
) {
  const name = String((obj.metadata as JsonObject).name);
  return client.request({
    method: 'PATCH',
    path: objectPath(HelmReleases, ns, name),
    contentType: APPLY_PATCH,
    body: obj,
    query: { fieldManager, force: true, ...query },
  });
}

/** The API server's /metrics text (KubeClient parses JSON only). */
export async function apiserverMetrics(client: KubeClient): Promise<string> {
  const opts: https.RequestOptions = {};
  await client.kubeConfig.applyToHTTPSOptions(opts);
  return await new Promise((resolve, reject) => {
    const req = https.get(new URL('/metrics', client.server), opts, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        text += c;
      });
      res.on('end', () =>
        res.statusCode === 200 ? resolve(text) : reject(new Error(`HTTP ${res.statusCode}`)),
      );
    });
    req.on('error', reject);
  });
}

/** Sum of a metric's samples whose labels include all of `labels` (0 when there is none). */
export function metricSum(text: string, name: string, labels: Record<string, string>): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
    sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}
