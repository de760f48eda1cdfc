// Helpers for integration tests: clients for the shared control plane, a namespace per test, polling.
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { inject } from 'vitest';
import { ApiError, KubeClient } from '../../src/kube/client.ts';
import { collectionPath, Namespaces } from '../../src/kube/resources.ts';
import { issueCertificate } from '../../src/tls/certs.ts';
import { errorMessage } from '../../src/util/errors.ts';
import { sleep } from '../../src/util/sleep.ts';

export function kubeconfigPath(): string {
  return inject('kubeconfig');
}

export function loadKubeConfig(path = kubeconfigPath()): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromFile(path);
  return kc;
}

/** A client with cluster-admin rights (system:masters). */
export async function adminClient(): Promise<KubeClient> {
  return KubeClient.create(loadKubeConfig());
}

/** A kubeconfig for another user of the shared control plane (client certificate from its CA). */
export function userKubeconfig(user: string, groups: string[] = []): string {
  const ca = { cert: inject('caCert'), key: inject('caKey') };
  const cert = issueCertificate(ca, { commonName: user, organizations: groups, usage: 'client' });
  const admin = loadKubeConfig();
  const server = admin.getCurrentCluster()?.server as string;
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  const path = join(
    inject('controlPlaneDir'),
    `kubeconfig-${user.replace(/[^\w.-]/g, '_')}-${randomBytes(3).toString('hex')}`,
  );
  writeFileSync(
    path,
    `apiVersion: v1
kind: Config
clusters: [{name: local, cluster: {server: "${server}", certificate-authority-data: ${b64(ca.cert)}}}]
users: [{name: u, user: {client-certificate-data: ${b64(cert.cert)}, client-key-data: ${b64(cert.key)}}}]
contexts: [{name: local, context: {cluster: local, user: u}}]
current-context: local
`,
    { mode: 0o600 },
  );
  return path;
}

/**
 * A client acting as the operator's ServiceAccount (impersonation), with exactly the RBAC manifests/base
 * grants: reconcilers under test use it, so a permission the code needs but the manifests lack fails a test.
 */
export async function operatorClient(): Promise<KubeClient> {
  return KubeClient.create(loadKubeConfig(), { impersonate: { user: inject('operatorUser') } });
}

export async function userClient(user: string, groups: string[] = []): Promise<KubeClient> {
  return KubeClient.create(loadKubeConfig(userKubeconfig(user, groups)));
}

/** Creates a namespace with a unique name for one test. (No namespace controller runs, so none is deleted.) */
export async function createNamespace(client: KubeClient, prefix = 'test'): Promise<string> {
  const name = `${prefix}-${randomBytes(4).toString('hex')}`.slice(0, 63);
  await client.create(collectionPath(Namespaces), {
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: { name },
  });
  return name;
}

/** Polls fn until it returns a value other than undefined/false, or fails with the last error. */
export async function eventually<T>(
  fn: () => Promise<T | undefined | false> | T | undefined | false,
  { timeoutMs = 10_000, intervalMs = 50, what = 'condition' } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${errorMessage(last)}` : ''}`,
      );
    }
    await sleep(intervalMs);
  }
}

export { ApiError };
