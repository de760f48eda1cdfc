// Making the chart's Deployment ready, on any cluster.
//
// The Deployment carries a nodeSelector with a per-test label that no node has, so it cannot become ready
// by itself and Helm's wait runs into the timeout for real. To make it ready:
// - on a cluster with nodes (kind), label a node: the pod schedules and runs the pause image;
// - on the local control plane (no controller-manager, no kubelet), play the deployment controller:
//   an owned ReplicaSet with the Deployment's pod template (Helm v3's legacy waiter looks for it) and the
//   Deployment's status subresource (what kstatus reads: observedGeneration, replicas, Available, and
//   Progressing=NewReplicaSetAvailable).
import { randomBytes } from 'node:crypto';
import type { KubeClient } from '../../../src/kube/client.ts';
import { isObject, num, str } from '../../../src/util/narrow.ts';

export interface Gate {
  /** The values that keep the Deployment from becoming ready on its own. */
  values: { nodeSelector: Record<string, string> };
  /** Makes Deployment ns/name ready. */
  open(client: KubeClient, ns: string, name: string): Promise<void>;
}

const deploymentPath = (ns: string, name: string) => `/apis/apps/v1/namespaces/${ns}/deployments/${name}`;

export function readinessGate(mode: 'local' | 'external'): Gate {
  const label = `e2e.helmrelease-autopilot.dev/gate-${randomBytes(4).toString('hex')}`;
  return {
    values: { nodeSelector: { [label]: 'open' } },
    open: (client, ns, name) =>
      mode === 'external' ? labelANode(client, label) : playDeploymentController(client, ns, name),
  };
}

async function labelANode(client: KubeClient, label: string): Promise<void> {
  const nodes = (await client.get('/api/v1/nodes')) as { items?: { metadata: { name: string } }[] };
  const node = nodes.items?.[0]?.metadata.name;
  if (!node) throw new Error('the cluster has no nodes to schedule the Deployment on');
  await client.mergePatch(`/api/v1/nodes/${node}`, { metadata: { labels: { [label]: 'open' } } });
}

async function playDeploymentController(client: KubeClient, ns: string, name: string): Promise<void> {
  const dep = await client.get(deploymentPath(ns, name));
  if (!isObject(dep) || !isObject(dep.metadata) || !isObject(dep.spec) || !isObject(dep.spec.template))
    throw new Error(`Deployment ${ns}/${name} has no pod template`);
  const uid = str(dep.metadata.uid) as string;
  const generation = num(dep.metadata.generation) ?? 1;
  const replicas = num(dep.spec.replicas) ?? 1;
  const template = dep.spec.template;
  const tmeta = isObject(template.metadata) ? template.metadata : {};
  const labels = {
    ...(isObject(tmeta.labels) ? (tmeta.labels as Record<string, string>) : {}),
    'pod-template-hash': 'e2e',
  };
  const rsName = `${name}-e2e`;
  const rsPath = `/apis/apps/v1/namespaces/${ns}/replicasets`;
  try {
    await client.create(rsPath, {
      apiVersion: 'apps/v1',
      kind: 'ReplicaSet',
      metadata: {
        name: rsName,
        labels,
        ownerReferences: [
          {
            apiVersion: 'apps/v1',
            kind: 'Deployment',
            name,
            uid,
            controller: true,
            blockOwnerDeletion: true,
          },
        ],
      },
      spec: {
        replicas,
        selector: { matchLabels: labels },
        template: { ...template, metadata: { ...tmeta, labels } },
      },
    });
  } catch (err) {
    if (!(err instanceof Error && /already exists|409/.test(err.message))) throw err;
  }
  const rs = await client.get(`${rsPath}/${rsName}`);
  const rsGeneration = isObject(rs) && isObject(rs.metadata) ? (num(rs.metadata.generation) ?? 1) : 1;
  await client.mergePatch(`${rsPath}/${rsName}/status`, {
    status: {
      replicas,
      fullyLabeledReplicas: replicas,
      readyReplicas: replicas,
      availableReplicas: replicas,
      observedGeneration: rsGeneration,
    },
  });
  const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  await client.mergePatch(`${deploymentPath(ns, name)}/status`, {
    status: {
      observedGeneration: generation,
      replicas,
      updatedReplicas: replicas,
      readyReplicas: replicas,
      availableReplicas: replicas,
      conditions: [
        {
          type: 'Available',
          status: 'True',
          reason: 'MinimumReplicasAvailable',
          message: 'Deployment has minimum availability.',
          lastUpdateTime: now,
          lastTransitionTime: now,
        },
        {
          type: 'Progressing',
          status: 'True',
          reason: 'NewReplicaSetAvailable',
          message: `ReplicaSet "${rsName}" has successfully progressed.`,
          lastUpdateTime: now,
          lastTransitionTime: now,
        },
      ],
    },
  });
}
