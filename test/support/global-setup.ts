// Starts one real control plane (etcd + kube-apiserver + Flux CRDs) for the whole integration run.

import { KubeConfig } from '@kubernetes/client-node';
import type { TestProject } from 'vitest/node';
import { type ControlPlane, startControlPlane } from '../../hack/controlplane.ts';
import { KubeClient } from '../../src/kube/client.ts';
import { installOperatorRBAC } from './operator-rbac.ts';

function loadKubeConfig(path: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromFile(path);
  return kc;
}

declare module 'vitest' {
  export interface ProvidedContext {
    kubeconfig: string;
    controlPlaneDir: string;
    caCert: string;
    caKey: string;
    /** The operator's ServiceAccount user, with manifests/base's RBAC installed. */
    operatorUser: string;
  }
}

let cp: ControlPlane | undefined;

export default async function setup(project: TestProject) {
  const started = Date.now();
  cp = await startControlPlane();
  process.stderr.write(
    `control plane ready in ${Date.now() - started} ms: ${cp.server} (KUBECONFIG=${cp.kubeconfigPath})\n`,
  );
  project.provide('kubeconfig', cp.kubeconfigPath);
  project.provide('controlPlaneDir', cp.dir);
  project.provide('caCert', cp.ca.cert);
  project.provide('caKey', cp.ca.key);
  const admin = await KubeClient.create(loadKubeConfig(cp.kubeconfigPath));
  try {
    project.provide('operatorUser', await installOperatorRBAC(admin));
  } finally {
    admin.close();
  }
  const pids = cp.pids();
  return async () => {
    const stopping = Date.now();
    await cp?.stop();
    process.stderr.write(`control plane stopped in ${Date.now() - stopping} ms\n`);
    const alive = pids.filter((pid) => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    });
    if (alive.length > 0) throw new Error(`control plane processes outlived the run: ${alive.join(', ')}`);
  };
}
