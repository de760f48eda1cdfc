// npm run cluster: a local control plane (etcd + kube-apiserver + Flux CRDs) for people. Ctrl-C stops it.
import { KubeConfig } from '@kubernetes/client-node';
import { KubeClient } from '../src/kube/client.ts';
import { startControlPlane } from './controlplane.ts';

const started = Date.now();
process.stderr.write(
  'starting etcd and kube-apiserver (the first run builds them from the Go module proxy: minutes)...\n',
);
const cp = await startControlPlane({ keepDir: process.argv.includes('--keep') });
// The operator's default namespace (--namespace), so `npm start` finds a place for its Lease and CA Secret.
const kc = new KubeConfig();
kc.loadFromFile(cp.kubeconfigPath);
const client = await KubeClient.create(kc);
await client.create('/api/v1/namespaces', { metadata: { name: 'helmrelease-autopilot' } });
client.close();
process.stdout.write(
  [
    `control plane ready in ${((Date.now() - started) / 1000).toFixed(1)} s at ${cp.server}`,
    `kubeconfig (cluster-admin): ${cp.kubeconfigPath}`,
    '',
    'In another terminal:',
    `  export KUBECONFIG=${cp.kubeconfigPath}`,
    '  npm start -- --tls-mode=self-signed   # the operator against it (webhook with its own CA)',
    '  kubectl get crd                # if you have kubectl',
    '',
    'Ctrl-C stops etcd and kube-apiserver and removes the data directory.',
    '',
  ].join('\n'),
);
let stopping = false;
const stop = async (signal: string) => {
  if (stopping) return;
  stopping = true;
  process.stderr.write(`\n${signal}: stopping the control plane\n`);
  await cp.stop();
  process.exit(0);
};
process.on('SIGINT', () => void stop('SIGINT'));
process.on('SIGTERM', () => void stop('SIGTERM'));
setInterval(() => {}, 1 << 30);
