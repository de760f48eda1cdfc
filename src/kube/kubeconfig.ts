// Where the API server and credentials come from: --kubeconfig, then $KUBECONFIG, then ~/.kube/config,
// then the in-cluster service account. No silent fallback to http://localhost:8080.
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';

const SA_TOKEN = '/var/run/secrets/kubernetes.io/serviceaccount/token';
const SA_NAMESPACE = '/var/run/secrets/kubernetes.io/serviceaccount/namespace';

export interface KubeConfigSource {
  kubeConfig: KubeConfig;
  /** Human-readable origin, for the start-up log. */
  source: string;
}

export function loadKubeConfig(
  options: { path: string; context: string },
  env: NodeJS.ProcessEnv = process.env,
): KubeConfigSource {
  const kc = new KubeConfig();
  let source: string;
  const home = join(homedir(), '.kube', 'config');
  if (options.path) {
    if (!existsSync(options.path)) throw new Error(`kubeconfig ${options.path} does not exist`);
    kc.loadFromFile(options.path);
    source = options.path;
  } else if (env.KUBECONFIG) {
    kc.loadFromDefault();
    source = `$KUBECONFIG (${env.KUBECONFIG})`;
  } else if (existsSync(home)) {
    kc.loadFromFile(home);
    source = home;
  } else if (env.KUBERNETES_SERVICE_HOST && existsSync(SA_TOKEN)) {
    kc.loadFromCluster();
    source = 'in-cluster service account';
  } else {
    throw new Error(
      'no Kubernetes configuration: pass --kubeconfig, set KUBECONFIG, or run in a cluster (for a local one: npm run cluster)',
    );
  }
  if (options.context) {
    if (!kc.getContextObject(options.context))
      throw new Error(`kubeconfig has no context "${options.context}"`);
    kc.setCurrentContext(options.context);
  }
  if (!kc.getCurrentCluster()) throw new Error(`kubeconfig from ${source} has no current cluster`);
  return { kubeConfig: kc, source };
}

/** The namespace this process runs in, when in a cluster. */
export function inClusterNamespace(read: (path: string) => string | undefined): string | undefined {
  return read(SA_NAMESPACE)?.trim() || undefined;
}
