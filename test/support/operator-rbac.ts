// Installs the operator's identity and RBAC exactly as manifests/base renders them (Namespace,
// ServiceAccount, ClusterRole/Binding, Role/Binding), so integration tests can run the operator as that
// ServiceAccount (impersonation) and prove the shipped permissions are enough.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parseAllDocuments } from 'yaml';
import { HACK_DIR } from '../../hack/controlplane.ts';
import { isConflict, type KubeClient } from '../../src/kube/client.ts';

const run = promisify(execFile);

const PATHS: Record<string, (ns: string) => string> = {
  Namespace: () => '/api/v1/namespaces',
  ServiceAccount: (ns) => `/api/v1/namespaces/${ns}/serviceaccounts`,
  ClusterRole: () => '/apis/rbac.authorization.k8s.io/v1/clusterroles',
  ClusterRoleBinding: () => '/apis/rbac.authorization.k8s.io/v1/clusterrolebindings',
  Role: (ns) => `/apis/rbac.authorization.k8s.io/v1/namespaces/${ns}/roles`,
  RoleBinding: (ns) => `/apis/rbac.authorization.k8s.io/v1/namespaces/${ns}/rolebindings`,
};

interface Rendered {
  kind: string;
  metadata: { name: string; namespace?: string };
}

/** Renders manifests/base, creates its identity and RBAC objects, and returns the operator's user name. */
export async function installOperatorRBAC(admin: KubeClient): Promise<string> {
  const { stdout: kustomize } = await run('bash', [join(HACK_DIR, 'build-kustomize.sh')], {
    maxBuffer: 16 << 20,
  });
  const { stdout } = await run(
    kustomize.trim().split('\n').pop() as string,
    ['build', join(HACK_DIR, '..', 'manifests', 'base')],
    {
      maxBuffer: 16 << 20,
    },
  );
  const objects = parseAllDocuments(stdout).map((d) => d.toJS() as Rendered);
  let user = '';
  for (const kind of Object.keys(PATHS)) {
    for (const o of objects.filter((x) => x.kind === kind)) {
      try {
        await admin.create((PATHS[kind] as (ns: string) => string)(o.metadata.namespace ?? ''), o);
      } catch (err) {
        if (!isConflict(err)) throw err;
      }
      if (kind === 'ServiceAccount')
        user = `system:serviceaccount:${o.metadata.namespace}:${o.metadata.name}`;
    }
  }
  if (!user) throw new Error('manifests/base renders no ServiceAccount');
  return user;
}
