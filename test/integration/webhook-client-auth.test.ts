// Who may call the webhook, on a real API server: kube-apiserver started with an AdmissionConfiguration
// whose MutatingAdmissionWebhook kubeconfig presents a client certificate (hack/controlplane.ts
// webhookClientAuth), the shipped MutatingWebhookConfiguration registered on loopback, the webhook started
// with --webhook-client-ca. The API server's calls succeed (releases are stamped); a forged AdmissionReview
// without a certificate, or with one from another CA, is refused in the TLS handshake. Before/after: the
// same forged review against a webhook without the flag is answered, with the victim's values digest.
// A dedicated control plane: its API server flags differ from the shared one's.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ControlPlane, freePort, startControlPlane } from '../../hack/controlplane.ts';
import { createCaches, type OperatorCaches } from '../../src/kube/caches.ts';
import { KubeClient } from '../../src/kube/client.ts';
import {
  collectionPath,
  HelmReleases,
  MutatingWebhookConfigurations,
  Namespaces,
  Secrets,
} from '../../src/kube/resources.ts';
import { Annotations, Labels } from '../../src/names.ts';
import { createCA, issueCertificate, type KeyPair } from '../../src/tls/certs.ts';
import type { JsonObject } from '../../src/util/narrow.ts';
import { startWebhookServer, type WebhookServer } from '../../webhook/server.ts';
import { eventually, loadKubeConfig } from '../support/cluster.ts';
import { testDigestKeys } from '../support/digest-key.ts';
import { testLogger } from '../support/log.ts';
import { type PostOutcome, postOverTLS } from '../support/tls-client.ts';
import { admissionReview, helmRelease, writeAtomicWriterLayout } from '../support/webhook.ts';
import { loopbackRegistration } from '../support/webhook-registration.ts';
import { annotationsOf, labelsOf } from './webhook-fixture.ts';

const SELECT = 'webhook-client-auth-test';

describe('--webhook-client-ca with a real API server that authenticates to webhooks', () => {
  let cp: ControlPlane;
  let admin: KubeClient;
  let caches: OperatorCaches;
  const servers: WebhookServer[] = [];
  const registries = new Map<string, Registry>();
  const servingCA = createCA('webhook-serving-ca');
  const ports = { open: 0, guarded: 0, foreign: 0 };

  /** A webhook on `port` serving under servingCA, with --webhook-client-ca when `clientCA` is given. */
  const startWebhook = async (name: keyof typeof ports, clientCA?: string) => {
    const dir = mkdtempSync(join(tmpdir(), `webhook-client-auth-${name}-`));
    const pair = issueCertificate(servingCA, {
      commonName: 'webhook',
      hosts: ['127.0.0.1'],
      usage: 'server',
    });
    writeAtomicWriterLayout(join(dir, 'certs'), { 'tls.crt': pair.cert, 'tls.key': pair.key });
    let caPath: string | undefined;
    if (clientCA) {
      caPath = join(dir, 'client-ca.crt');
      writeFileSync(caPath, clientCA);
    }
    const registry = new Registry();
    registries.set(name, registry);
    const server = await startWebhookServer({
      config: {
        'bind-address': '127.0.0.1',
        'webhook-port': ports[name],
        'tls-mode': 'files',
        'cert-dir': join(dir, 'certs'),
        'cert-poll-interval': 10_000,
        'self-signed-dns-names': [],
        'webhook-configuration': '',
        'webhook-lookup-timeout': 500,
        ...(caPath ? { 'webhook-client-ca': caPath } : {}),
      },
      lookup: caches.values,
      logger: testLogger(),
      registry,
    });
    servers.push(server);
    return server;
  };

  /** Registers the shipped configuration for the webhook on `port`, confined to namespaces labelled `name`. */
  const register = (name: string, port: number) =>
    admin.create(
      collectionPath(MutatingWebhookConfigurations),
      loopbackRegistration({
        name: `client-auth-${name}`,
        webhookName: `${name}.helmreleases.helmrelease-autopilot.dev`,
        url: `https://127.0.0.1:${port}/mutate`,
        caPem: servingCA.cert,
        operatorUser: 'system:serviceaccount:helmrelease-autopilot:helmrelease-autopilot',
        namespaceSelector: { matchLabels: { [SELECT]: name } },
      }),
    );

  const namespace = async (select: string) => {
    const ns = `${select}-${randomBytes(3).toString('hex')}`;
    await admin.create(collectionPath(Namespaces), {
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name: ns, labels: { [SELECT]: select } },
    });
    return ns;
  };

  /** A namespace holding Secret db (values.yaml: a password), and an AdmissionReview of a release that reads it. */
  const secretAndReviewOfIt = async (select: string, uid: string) => {
    const ns = await namespace(select);
    await admin.create(collectionPath(Secrets, ns), {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'db' },
      stringData: { 'values.yaml': 'password: hunter2\n' },
    });
    const review = admissionReview(
      uid,
      helmRelease('oracle', [{ kind: 'Secret', name: 'db' }]) as JsonObject,
      {
        namespace: ns,
      },
    );
    return { ns, review };
  };

  const handshakeErrors = async (name: string) => {
    const m = (await registries.get(name)?.getMetricsAsJSON())?.find(
      (x) => x.name === 'helmrelease_autopilot_webhook_tls_handshake_errors_total',
    );
    return m?.values[0]?.value ?? 0;
  };

  beforeAll(async () => {
    ports.open = await freePort();
    ports.guarded = await freePort();
    ports.foreign = await freePort();
    cp = await startControlPlane({
      // One kubeconfig user per webhook host the API server calls (URL webhooks: host and port).
      webhookClientAuth: {
        hosts: [`127.0.0.1:${ports.guarded}`, `127.0.0.1:${ports.foreign}`, '*.svc'],
      },
    });
    admin = await KubeClient.create(loadKubeConfig(cp.kubeconfigPath));
    caches = createCaches({ client: admin, logger: testLogger(), digestKeys: testDigestKeys });
    caches.start();
    await caches.waitForSync();
    await startWebhook('open');
    await startWebhook('guarded', cp.webhookClientCA?.cert);
    // Trusts a CA the API server's certificate does not come from: the API server cannot get in either.
    await startWebhook('foreign', createCA('not-the-apiservers').cert);
    await register('guarded', ports.guarded);
    await register('foreign', ports.foreign);
  });
  afterAll(async () => {
    for (const s of servers) await s.close();
    await caches?.stop();
    admin?.close();
    await cp?.stop();
  });

  it('stamps releases created through the API server: its client certificate is accepted', async () => {
    const ns = await namespace('guarded');
    const stamped = await eventually(
      async () => {
        const hr = await admin.create(
          collectionPath(HelmReleases, ns),
          helmRelease('probe', [{ kind: 'ConfigMap', name: 'absent', optional: true }]),
          { dryRun: 'All' },
        );
        return labelsOf(hr)[Labels.managed] === 'true';
      },
      { timeoutMs: 20_000, intervalMs: 200, what: 'the guarded webhook configuration to take effect' },
    );
    expect(stamped).toBe(true);
    const created = await admin.create(
      collectionPath(HelmReleases, ns),
      helmRelease('app', [{ kind: 'ConfigMap', name: 'values', optional: true }]),
    );
    expect(labelsOf(created)[Labels.managed]).toBe('true');
    expect(annotationsOf(created)[Annotations.valuesDigest]).toMatch(/^hmac-sha256:v2:/);
    // Every handshake of the API server succeeded.
    expect(await handshakeErrors('guarded')).toBe(0);
  });

  it('a webhook that trusts another CA refuses the API server too: the release is admitted unstamped (failurePolicy Ignore)', async () => {
    const ns = await namespace('foreign');
    // Once the API server sees the configuration, each create calls the webhook, whose handshake fails.
    await eventually(
      async () => {
        await admin.create(
          collectionPath(HelmReleases, ns),
          helmRelease('probe', [{ kind: 'ConfigMap', name: 'absent', optional: true }]),
          { dryRun: 'All' },
        );
        return (await handshakeErrors('foreign')) > 0;
      },
      { timeoutMs: 20_000, intervalMs: 300, what: 'the API server to call the foreign webhook' },
    );
    const created = await admin.create(
      collectionPath(HelmReleases, ns),
      helmRelease('app', [{ kind: 'ConfigMap', name: 'values', optional: true }]),
    );
    expect(labelsOf(created)[Labels.managed]).toBeUndefined();
  });

  it('refuses a forged AdmissionReview without a client certificate, or with one from another CA, at the TLS layer', async () => {
    // The victim: a Secret in another tenant's namespace; the forged review asks for its digest.
    const { ns: victim, review: forged } = await secretAndReviewOfIt('victim', 'forged-1');
    const digestIn = (o: PostOutcome) => {
      if (!('status' in o)) return undefined;
      const response = (JSON.parse(o.body) as { response?: { patch?: string } }).response;
      const patch = response?.patch ? Buffer.from(response.patch, 'base64').toString() : '';
      return /hmac-sha256:v2:[0-9a-f]{8}:[0-9a-f]{64}/.exec(patch)?.[0];
    };
    const clusterUser: KeyPair = issueCertificate(cp.ca, {
      commonName: 'tenant',
      organizations: ['system:authenticated'],
      usage: 'client',
    });
    const otherCA = issueCertificate(createCA('attacker-ca'), {
      commonName: 'kube-apiserver',
      usage: 'client',
    });
    const ca = servingCA.cert;
    const refusedBefore = await handshakeErrors('guarded');
    const before = await eventually(
      async () => {
        const o = await postOverTLS(ports.open, forged, { ca });
        return digestIn(o) ? o : undefined;
      },
      { what: 'the open webhook to answer with a digest (its caches see the Secret)' },
    );
    const after = {
      none: await postOverTLS(ports.guarded, forged, { ca }),
      otherCA: await postOverTLS(ports.guarded, forged, { ca, client: otherCA }),
      clusterCA: await postOverTLS(ports.guarded, forged, { ca, client: clusterUser }),
    };
    console.log(
      `forged AdmissionReview for ${victim}/Secret db: without --webhook-client-ca: HTTP ${'status' in before ? before.status : '-'}, digest ${digestIn(before)}; ` +
        `with it: no certificate -> ${JSON.stringify(after.none)}, another CA -> ${JSON.stringify(after.otherCA)}, ` +
        `a cluster user's certificate -> ${JSON.stringify(after.clusterCA)}`,
    );
    expect(digestIn(before)).toMatch(/^hmac-sha256:v2:/);
    for (const outcome of Object.values(after)) expect(outcome).toHaveProperty('refused');
    expect(await handshakeErrors('guarded')).toBe(refusedBefore + 3);

    // Where the port is open anyway, the answer confirms nothing: the digest is keyed and bound to the
    // namespace, so the attacker's own Secret with the same name, key and (guessed, here right) value
    // gets another digest, and the attacker cannot compute the victim's without the cluster's key.
    const { review: own } = await secretAndReviewOfIt('attacker', 'forged-2');
    const ownDigest = await eventually(async () => digestIn(await postOverTLS(ports.open, own, { ca })), {
      what: "the open webhook's digest of the attacker's own Secret",
    });
    console.log(
      `same Secret name, key and value: victim's digest ${digestIn(before)}, attacker's own ${ownDigest}`,
    );
    expect(ownDigest).not.toBe(digestIn(before));
  });
});
