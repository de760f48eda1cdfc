// The production TLS path with the real cert-manager: its controller issues the webhook's serving
// certificate from the Issuers and Certificates of manifests/overlays/cert-manager, its cainjector writes
// the CA into the shipped MutatingWebhookConfiguration (cert-manager.io/inject-ca-from), and the
// operator, in files TLS mode, serves that certificate: the API server calls the webhook over TLS
// verified with the injected caBundle, so a HelmRelease comes back stamped.
//
// Out of cluster, two changes to the shipped objects, and only these: the serving Certificate also
// names 127.0.0.1 (spec.ipAddresses; the API server dials the webhook on loopback and checks that IP),
// and the webhook's clientConfig is https://127.0.0.1:PORT/mutate instead of the Service. The operator
// reads the Secret's files from a directory the test writes the way the kubelet writes a Secret volume.
// Its own control plane: cert-manager's CRDs are installed into it.
import { X509Certificate } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ControlPlane, freePort, installCRDs, startControlPlane } from '../../hack/controlplane.ts';
import { parseHelmRelease } from '../../src/flux/helmrelease.ts';
import { KubeClient } from '../../src/kube/client.ts';
import {
  ConfigMaps,
  collectionPath,
  HelmReleases,
  MutatingWebhookConfigurations,
  Namespaces,
  objectPath,
  Secrets,
} from '../../src/kube/resources.ts';
import { Annotations, Labels } from '../../src/names.ts';
import { array, isObject, type JsonObject, str } from '../../src/util/narrow.ts';
import { sleep } from '../../src/util/sleep.ts';
import { valuesDigestOfBytes } from '../../src/values/digest.ts';
import { apply, Discovery, find, type K8sObject, render } from '../integration/manifests-render.ts';
import { clusterDigestKeys } from '../support/digest-key.ts';
import { writeAtomicWriterLayout } from '../support/webhook.ts';
import { certManagerCRDFiles, certManagerVersion, startCertManager } from './support/cert-manager.ts';
import { startTethered, type Tethered } from './support/process.ts';

const NAMESPACE = 'helmrelease-autopilot';
const OPERATOR_USER = `system:serviceaccount:${NAMESPACE}:helmrelease-autopilot`;
const SERVING_CERT = 'helmrelease-autopilot-webhook';

const obj = (v: unknown): JsonObject => (isObject(v) ? v : {});

describe(`cert-manager ${certManagerVersion()} issues the webhook's certificate and injects its CA`, () => {
  let dir: string;
  let cp: ControlPlane;
  let client: KubeClient;
  const processes: Tethered[] = [];
  const logs = () => processes.map((p) => `--- ${p.name} (${p.log}) ---\n${p.tail(30)}`).join('\n');

  /** Polls fn until it returns a value; fails with the processes' logs. */
  async function until<T>(fn: () => Promise<T | undefined>, what: string, timeoutMs = 90_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    let last: unknown;
    for (;;) {
      const dead = processes.find((p) => p.exited());
      if (dead) throw new Error(`${dead.name} exited while waiting for ${what}\n${logs()}`);
      try {
        const v = await fn();
        if (v !== undefined) return v;
      } catch (err) {
        last = err;
      }
      if (Date.now() > deadline)
        throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}\n${logs()}`);
      await sleep(250);
    }
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'autopilot-e2e-cert-manager-'));
    cp = await startControlPlane();
    const kc = new KubeConfig();
    kc.loadFromFile(cp.kubeconfigPath);
    client = await KubeClient.create(kc);
    await installCRDs(cp.kubeconfigPath, await certManagerCRDFiles(dir));
    processes.push(
      ...(await startCertManager({
        kubeconfigPath: cp.kubeconfigPath,
        dir,
        clusterResourceNamespace: NAMESPACE,
      })),
    );
  });

  afterAll(async () => {
    for (const p of processes.reverse()) await p.stop();
    client?.close();
    await cp?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('the API server calls the webhook under the issued certificate, trusting the injected CA', async () => {
    const objects = await render('overlays/cert-manager');
    const webhookPort = await freePort();
    const discovery = new Discovery(client);
    const certManagerObjects = objects.filter((o) => o.apiVersion.startsWith('cert-manager.io/'));
    expect(certManagerObjects.map((o) => `${o.kind}/${o.metadata.name}`).sort()).toEqual([
      'Certificate/helmrelease-autopilot-ca',
      'Certificate/helmrelease-autopilot-webhook',
      'Issuer/helmrelease-autopilot-ca',
      'Issuer/helmrelease-autopilot-selfsigned',
    ]);
    const loopback = (o: K8sObject): K8sObject => {
      if (o.kind === 'Certificate' && o.metadata.name === SERVING_CERT)
        return { ...o, spec: { ...obj(o.spec), ipAddresses: ['127.0.0.1'] } };
      if (o.kind === 'MutatingWebhookConfiguration')
        return {
          ...o,
          webhooks: array(o.webhooks).map((h) => ({
            ...obj(h),
            clientConfig: { url: `https://127.0.0.1:${webhookPort}/mutate` },
          })),
        };
      return o;
    };
    const mwc = find(objects, 'MutatingWebhookConfiguration');
    expect(obj(mwc.metadata.annotations)['cert-manager.io/inject-ca-from']).toBe(
      `${NAMESPACE}/${SERVING_CERT}`,
    );
    for (const o of [find(objects, 'Namespace'), ...certManagerObjects, mwc])
      await apply(client, discovery, loopback(o));

    // cert-manager: CA Certificate from the self-signed Issuer, then the serving one from the CA Issuer.
    const certPath = `/apis/cert-manager.io/v1/namespaces/${NAMESPACE}/certificates/${SERVING_CERT}`;
    const secretName = await until(async () => {
      const cert = obj(await client.get(certPath));
      const ready = array(obj(cert.status).conditions).some(
        (c) => isObject(c) && c.type === 'Ready' && c.status === 'True',
      );
      return ready ? str(obj(cert.spec).secretName) : undefined;
    }, 'the serving Certificate to be Ready');
    const secret = obj(await client.get(objectPath(Secrets, NAMESPACE, secretName ?? '')));
    const data = obj(secret.data);
    const pem = (key: string) => Buffer.from(str(data[key]) ?? '', 'base64').toString('utf8');
    const [crt, key, ca] = [pem('tls.crt'), pem('tls.key'), pem('ca.crt')];
    const leaf = new X509Certificate(crt);
    const caCert = new X509Certificate(ca);
    expect(leaf.checkIssued(caCert) && leaf.verify(caCert.publicKey)).toBe(true);
    expect(leaf.subjectAltName).toContain('IP Address:127.0.0.1');
    expect(leaf.subjectAltName).toContain(`DNS:helmrelease-autopilot-webhook.${NAMESPACE}.svc`);
    expect(caCert.subject).toContain('CN=helmrelease-autopilot-webhook-ca');

    // cainjector: every webhook's caBundle is the Secret's ca.crt.
    await until(async () => {
      const current = obj(
        await client.get(objectPath(MutatingWebhookConfigurations, undefined, mwc.metadata.name)),
      );
      const bundles = array(current.webhooks).map((h) =>
        Buffer.from(str(obj(obj(h).clientConfig).caBundle) ?? '', 'base64').toString('utf8'),
      );
      return bundles.length > 0 && bundles.every((b) => b === ca) ? true : undefined;
    }, 'cainjector to write the CA into the caBundle');

    // The operator in files mode, reading the Secret's files as they would be mounted. The reconciler is
    // off: only an admission through the webhook can stamp the release.
    const certDir = join(dir, 'serving-certs');
    mkdirSync(certDir);
    writeAtomicWriterLayout(certDir, { 'tls.crt': crt, 'tls.key': key, 'ca.crt': ca });
    const ns = `cm-${Date.now().toString(36)}`;
    await client.create(collectionPath(Namespaces), { metadata: { name: ns } });
    const health = await freePort();
    const operator = startTethered(
      'operator',
      [
        process.execPath,
        join(import.meta.dirname, '..', '..', 'cmd', 'helmrelease-autopilot', 'main.ts'),
        `--kubeconfig=${cp.userKubeconfig(OPERATOR_USER, ['system:masters'])}`,
        `--namespace=${NAMESPACE}`,
        `--watch-namespace=${ns}`,
        '--leader-elect=false',
        '--reconciler=false',
        '--bind-address=127.0.0.1',
        `--health-port=${health}`,
        '--metrics-port=0',
        `--webhook-port=${webhookPort}`,
        '--tls-mode=files',
        `--cert-dir=${certDir}`,
        '--log-level=debug',
      ],
      { dir, env: { PATH: process.env.PATH, HOME: dir } },
    );
    processes.push(operator);
    await until(
      async () => ((await fetch(`http://127.0.0.1:${health}/readyz`)).ok ? true : undefined),
      'operator /readyz',
    );

    // The webhook serves exactly the certificate cert-manager issued, and it verifies against the CA.
    const served = () =>
      new Promise<Buffer>((resolve, reject) => {
        const socket = connect({ host: '127.0.0.1', port: webhookPort, ca }, () => {
          resolve(socket.getPeerCertificate().raw);
          socket.end();
        });
        socket.on('error', reject);
      });
    expect((await served()).equals(leaf.raw)).toBe(true);

    await client.create(collectionPath(ConfigMaps, ns), {
      metadata: { name: 'values' },
      data: { 'values.yaml': 'replicas: 2\n' },
    });
    const admitted = async (name: string) => {
      const created = await client.create(collectionPath(HelmReleases, ns), {
        apiVersion: 'helm.toolkit.fluxcd.io/v2',
        kind: 'HelmRelease',
        metadata: { name },
        spec: {
          interval: '5m',
          chart: { spec: { chart: 'c', sourceRef: { kind: 'HelmRepository', name: 'r' } } },
          valuesFrom: [{ kind: 'ConfigMap', name: 'values' }],
        },
      });
      const hr = parseHelmRelease(created);
      if (!hr.ok) throw new Error(hr.error);
      // failurePolicy is Ignore: had the TLS handshake failed, the release would be stored unstamped.
      expect(hr.value.metadata.labels[Labels.managed], logs()).toBe('true');
      expect(hr.value.metadata.annotations[Annotations.valuesDigest]).toBe(
        valuesDigestOfBytes(
          (await clusterDigestKeys(client, NAMESPACE)).current,
          ns,
          hr.value.valuesFrom,
          () => Buffer.from('replicas: 2\n'),
        ),
      );
      const stored = parseHelmRelease(await client.get(objectPath(HelmReleases, ns, name)));
      expect(stored.ok && stored.value.metadata.labels[Labels.managed]).toBe('true');
    };
    await admitted('app');

    // Renewal: with the Secret gone cert-manager issues again (rotationPolicy Always: a new key too); the
    // files are swapped the way the kubelet updates a Secret volume, and the running webhook serves the new
    // pair under the same CA, so the caBundle stays valid and admissions keep being stamped.
    await client.delete(objectPath(Secrets, NAMESPACE, secretName ?? ''));
    const renewed = await until(async () => {
      const d = obj(obj(await client.get(objectPath(Secrets, NAMESPACE, secretName ?? ''))).data);
      const next = Buffer.from(str(d['tls.crt']) ?? '', 'base64').toString('utf8');
      const nextKey = Buffer.from(str(d['tls.key']) ?? '', 'base64').toString('utf8');
      return next && nextKey && next !== crt ? { crt: next, key: nextKey } : undefined;
    }, 'cert-manager to issue a new serving certificate');
    expect(renewed.key).not.toBe(key);
    const renewedLeaf = new X509Certificate(renewed.crt);
    expect(renewedLeaf.checkIssued(caCert) && renewedLeaf.verify(caCert.publicKey)).toBe(true);
    writeAtomicWriterLayout(certDir, { 'tls.crt': renewed.crt, 'tls.key': renewed.key, 'ca.crt': ca });
    await until(
      async () => ((await served()).equals(renewedLeaf.raw) ? true : undefined),
      'the webhook to serve the renewed certificate',
      30_000,
    );
    await admitted('app-after-renewal');
  });
});
