// The real cert-manager controller and cainjector, built from the Go module proxy by
// hack/build-cert-manager.sh (CERT_MANAGER_E2E_VERSION: the newest release whose cmd/ is in the main
// module) and run out-of-cluster against a local control plane, with the CRDs of the same release read
// from the Go module cache. Flags were read from cmd/controller/app/options and cmd/cainjector of that tag.
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parseAllDocuments } from 'yaml';
import { freePort, HACK_DIR, moduleDir, readVersions } from '../../../hack/controlplane.ts';
import { isObject } from '../../../src/util/narrow.ts';
import { startTethered, type Tethered } from './process.ts';

const run = promisify(execFile);

export function certManagerVersion(): string {
  const v = readVersions().CERT_MANAGER_E2E_VERSION;
  if (!v) throw new Error('hack/versions.env lacks CERT_MANAGER_E2E_VERSION');
  return v;
}

/** Directory with the controller and cainjector binaries: built, or from the cache or $CERT_MANAGER_BIN_DIR. */
export async function certManagerBinDir(): Promise<string> {
  const { stdout } = await run('bash', [join(HACK_DIR, 'build-cert-manager.sh'), certManagerVersion()], {
    maxBuffer: 64 << 20,
  });
  return stdout.trim().split('\n').pop() as string;
}

/**
 * cert-manager's CRDs (deploy/crds) as plain JSON files in `dir`. The release ships them as Helm chart
 * templates whose only template expressions are metadata.labels values (invalid as label values), so the
 * labels are dropped; anything else templated would be a surprise and fails loudly.
 */
export async function certManagerCRDFiles(dir: string): Promise<string[]> {
  const crds = join(
    await moduleDir(`github.com/cert-manager/cert-manager@${certManagerVersion()}`),
    'deploy/crds',
  );
  const files: string[] = [];
  for (const f of readdirSync(crds).filter((n) => n.endsWith('.yaml'))) {
    for (const doc of parseAllDocuments(readFileSync(join(crds, f), 'utf8'))) {
      const crd: unknown = doc.toJS();
      if (!isObject(crd) || crd.kind !== 'CustomResourceDefinition' || !isObject(crd.metadata)) continue;
      delete crd.metadata.labels;
      const json = JSON.stringify(crd);
      if (json.includes('{{')) throw new Error(`${f}: Helm template expressions outside metadata.labels`);
      const out = join(dir, `cert-manager-${f}.json`);
      writeFileSync(out, json);
      files.push(out);
    }
  }
  if (files.length === 0) throw new Error(`no CRDs in ${crds}`);
  return files;
}

/** The controller (all default controllers, ACME included but unused) and the cainjector, tethered. */
export async function startCertManager(o: {
  kubeconfigPath: string;
  dir: string;
  /** Namespace of ClusterIssuer secrets; the install's own namespace in a cluster. */
  clusterResourceNamespace: string;
}): Promise<Tethered[]> {
  const bin = await certManagerBinDir();
  const env = { PATH: process.env.PATH, HOME: o.dir };
  const controller = startTethered(
    'cert-manager-controller',
    [
      join(bin, 'controller'),
      `--kubeconfig=${o.kubeconfigPath}`,
      '--leader-elect=false',
      `--cluster-resource-namespace=${o.clusterResourceNamespace}`,
      `--metrics-listen-address=127.0.0.1:${await freePort()}`,
      '--v=2',
    ],
    { dir: o.dir, env },
  );
  const cainjector = startTethered(
    'cert-manager-cainjector',
    [join(bin, 'cainjector'), `--kubeconfig=${o.kubeconfigPath}`, '--leader-elect=false', '--v=2'],
    { dir: o.dir, env },
  );
  return [controller, cainjector];
}
