// The cluster an e2e spec runs against.
//
// Local (default): a fresh control plane (hack/controlplane.ts), the real helm-controller built from the
// Go module proxy, and the real operator process (node cmd/helmrelease-autopilot/main.ts) with its webhook registered through
// a loopback URL. Everything is tethered to the test process.
//
// External (E2E_KUBECONFIG set, e.g. by a kind script): helm-controller and the operator are already
// deployed there (the operator with E2E_OPERATOR_TUNING among its flags, and its webhook registered);
// the spec only creates objects. The chart server must be reachable from the cluster's pods:
//   E2E_ARTIFACT_BIND (default 0.0.0.0) and E2E_ARTIFACT_HOST (required: e.g. the Docker bridge gateway).
//   E2E_HELM_CONTROLLER_VERSION (optional) names the deployed version for version-specific expectations.
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { type ControlPlane, freePort, startControlPlane } from '../../../hack/controlplane.ts';
import { KubeClient } from '../../../src/kube/client.ts';
import {
  collectionPath,
  MutatingWebhookConfigurations,
  Namespaces,
  objectPath,
} from '../../../src/kube/resources.ts';
import { isObject } from '../../../src/util/narrow.ts';
import { sleep } from '../../../src/util/sleep.ts';
import { loopbackRegistration } from '../../support/webhook-registration.ts';
import { type ArtifactServer, startArtifactServer } from './artifacts.ts';
import { type HelmController, startHelmController } from './helm-controller.ts';
import { startTethered, type Tethered } from './process.ts';

/** Timing flags the specs rely on: short retry delays, no jitter (so backoff can be asserted), a short debounce. */
export const E2E_OPERATOR_TUNING = [
  '--debounce=500ms',
  '--retry-base-delay=3s',
  '--retry-factor=2',
  '--retry-max-delay=30s',
  '--retry-jitter=0',
  '--retry-max-attempts=4',
] as const;
export const RETRY_BASE_DELAY_MS = 3000;
export const RETRY_FACTOR = 2;

export const OPERATOR_NAMESPACE = 'helmrelease-autopilot';
export const OPERATOR_USER = `system:serviceaccount:${OPERATOR_NAMESPACE}:helmrelease-autopilot`;
export const WEBHOOK_CONFIGURATION = 'helmrelease-autopilot-e2e';

export interface E2eEnv {
  mode: 'local' | 'external';
  kubeconfigPath: string;
  client: KubeClient;
  artifacts: ArtifactServer;
  /** helm-controller's version when known (always in local mode). */
  helmControllerVersion: string | undefined;
  /** Local mode: the processes, for their logs in failure messages. */
  processes: Tethered[];
  /** A fresh namespace for one test. */
  namespace(prefix?: string): Promise<string>;
  /** The last lines of every local process's log (empty in external mode). */
  logs(): string;
  stop(): Promise<void>;
}

export interface E2eOptions {
  /** helm-controller version to run in local mode (default HELM_CONTROLLER_VERSION). */
  helmControllerVersion: string;
  /** Start the operator (default true): fact-finding specs run helm-controller alone. */
  operator?: boolean;
  /** More helm-controller flags (local mode): feature gates, the config watch selector. */
  helmControllerArgs?: readonly string[];
  /** More operator flags (local mode), after E2E_OPERATOR_TUNING (a later flag wins). */
  operatorArgs?: readonly string[];
}

export async function startE2eEnv(o: E2eOptions): Promise<E2eEnv> {
  const external = process.env.E2E_KUBECONFIG;
  return external ? externalEnv(external) : localEnv(o);
}

async function clientFor(path: string): Promise<KubeClient> {
  const kc = new KubeConfig();
  kc.loadFromFile(path);
  return KubeClient.create(kc);
}

async function createNamespace(client: KubeClient, prefix: string): Promise<string> {
  const name = `${prefix}-${randomBytes(4).toString('hex')}`.slice(0, 63);
  await client.create(collectionPath(Namespaces), {
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: { name },
  });
  return name;
}

async function externalEnv(kubeconfigPath: string): Promise<E2eEnv> {
  const advertise = process.env.E2E_ARTIFACT_HOST;
  if (!advertise)
    throw new Error(
      'E2E_KUBECONFIG is set but E2E_ARTIFACT_HOST is not: helm-controller could not fetch the charts',
    );
  const client = await clientFor(kubeconfigPath);
  const artifacts = await startArtifactServer({
    bind: process.env.E2E_ARTIFACT_BIND ?? '0.0.0.0',
    advertise,
  });
  return {
    mode: 'external',
    kubeconfigPath,
    client,
    artifacts,
    helmControllerVersion: process.env.E2E_HELM_CONTROLLER_VERSION,
    processes: [],
    namespace: (prefix = 'e2e') => createNamespace(client, prefix),
    logs: () => '',
    async stop() {
      await artifacts.close();
      client.close();
    },
  };
}

async function localEnv(o: E2eOptions): Promise<E2eEnv> {
  const dir = mkdtempSync(join(tmpdir(), 'autopilot-e2e-'));
  const started: { stop(): Promise<void> }[] = [];
  const processes: Tethered[] = [];
  const stopAll = async () => {
    for (const s of started.reverse()) await s.stop().catch(() => {});
  };
  try {
    const cp: ControlPlane = await startControlPlane();
    started.push(cp);
    const client = await clientFor(cp.kubeconfigPath);
    started.push({ stop: async () => client.close() });
    const artifacts = await startArtifactServer();
    started.push({ stop: () => artifacts.close() });
    const hc: HelmController = await startHelmController({
      version: o.helmControllerVersion,
      kubeconfigPath: cp.kubeconfigPath,
      dir,
      ...(o.helmControllerArgs ? { args: o.helmControllerArgs } : {}),
    });
    started.push(hc);
    processes.push(hc);
    if (o.operator ?? true) {
      const op = await startOperator(cp, client, dir, o.operatorArgs ?? []);
      started.push(op);
      processes.push(op);
    }
    return {
      mode: 'local',
      kubeconfigPath: cp.kubeconfigPath,
      client,
      artifacts,
      helmControllerVersion: o.helmControllerVersion,
      processes,
      namespace: (prefix = 'e2e') => createNamespace(client, prefix),
      logs: () => processes.map((p) => `--- ${p.name} (${p.log}) ---\n${p.tail(60)}`).join('\n'),
      async stop() {
        const pids = [...processes.map((p) => p.pid()), ...cp.pids()].filter((p): p is number => !!p);
        await stopAll();
        rmSync(dir, { recursive: true, force: true });
        const alive = pids.filter((pid) => {
          try {
            process.kill(pid, 0);
            return true;
          } catch {
            return false;
          }
        });
        if (alive.length > 0) throw new Error(`e2e processes outlived their spec: ${alive.join(', ')}`);
      },
    };
  } catch (err) {
    await stopAll();
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

/**
 * The operator as deployed, minus the cluster: its own identity (excluded by the webhook's
 * matchConditions, like its ServiceAccount in production), self-signed webhook TLS for 127.0.0.1 with
 * the caBundle kept current by the operator itself, no leader election (one replica).
 */
async function startOperator(
  cp: ControlPlane,
  client: KubeClient,
  dir: string,
  extraArgs: readonly string[],
): Promise<Tethered> {
  await client.create(collectionPath(Namespaces), {
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: { name: OPERATOR_NAMESPACE },
  });
  const [health, webhook] = [await freePort(), await freePort()];
  await client.create(collectionPath(MutatingWebhookConfigurations), webhookConfiguration(webhook));
  // Cluster-wide rights here; least privilege is proved by the RBAC integration tests and manifests/.
  const kubeconfig = cp.userKubeconfig(OPERATOR_USER, ['system:masters']);
  const certDir = join(dir, 'operator-certs');
  mkdirSync(certDir);
  const main = join(import.meta.dirname, '..', '..', '..', 'cmd', 'helmrelease-autopilot', 'main.ts');
  const op = startTethered(
    'operator',
    [
      process.execPath,
      main,
      `--kubeconfig=${kubeconfig}`,
      `--namespace=${OPERATOR_NAMESPACE}`,
      '--leader-elect=false',
      '--bind-address=127.0.0.1',
      `--health-port=${health}`,
      '--metrics-port=0',
      `--webhook-port=${webhook}`,
      '--tls-mode=self-signed',
      `--cert-dir=${certDir}`,
      '--self-signed-dns-names=127.0.0.1',
      `--webhook-configuration=${WEBHOOK_CONFIGURATION}`,
      '--log-level=debug',
      ...E2E_OPERATOR_TUNING,
      ...extraArgs,
    ],
    { dir, env: { PATH: process.env.PATH, HOME: dir } },
  );
  try {
    await waitFor(async () => (await fetch(`http://127.0.0.1:${health}/readyz`)).ok, op, 'operator /readyz');
    await waitFor(
      async () => {
        const mwc = await client.get(
          objectPath(MutatingWebhookConfigurations, undefined, WEBHOOK_CONFIGURATION),
        );
        const hooks = isObject(mwc) && Array.isArray(mwc.webhooks) ? mwc.webhooks : [];
        return hooks.every((h) => isObject(h) && isObject(h.clientConfig) && !!h.clientConfig.caBundle);
      },
      op,
      'the operator to write the caBundle',
    );
  } catch (err) {
    await op.stop();
    throw err;
  }
  return op;
}

async function waitFor(fn: () => Promise<boolean>, p: Tethered, what: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (p.exited()) throw new Error(`${p.name} exited while waiting for ${what}:\n${p.tail()}`);
    try {
      if (await fn()) return;
    } catch {
      // not yet
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}:\n${p.tail()}`);
    await sleep(200);
  }
}

/** As manifests/ registers it, with a loopback URL instead of the Service. */
function webhookConfiguration(port: number) {
  return loopbackRegistration({
    name: WEBHOOK_CONFIGURATION,
    url: `https://127.0.0.1:${port}/mutate`,
    operatorUser: OPERATOR_USER,
  });
}
