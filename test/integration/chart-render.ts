// Renders and lints charts/helmrelease-autopilot with the helm that hack/build-helm.sh builds (or $HELM).
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CHART_DIR } from '../../hack/chart.ts';
import { HACK_DIR, readVersions } from '../../hack/controlplane.ts';
import type { JsonObject } from '../../src/util/narrow.ts';
import { type K8sObject, parseObjects } from './manifests-render.ts';

const run = promisify(execFile);

/** The release name and namespace that make the chart's names equal manifests/' names. */
export const RELEASE = 'helmrelease-autopilot';
export const NAMESPACE = 'helmrelease-autopilot';

let helmPath: Promise<string> | undefined;

/** The helm binary: built from the Go module proxy on first use, cached outside the repository. */
export function helm(): Promise<string> {
  helmPath ??= run('bash', [join(HACK_DIR, 'build-helm.sh')], { maxBuffer: 16 << 20 }).then(
    ({ stdout }) => stdout.trim().split('\n').pop() as string,
  );
  return helmPath;
}

/** Runs helm with the values written to a file (JSON is YAML); resolves with stdout, rejects with helm's stderr. */
async function withValues(args: string[], values: JsonObject): Promise<string> {
  const bin = await helm();
  const dir = mkdtempSync(join(tmpdir(), 'autopilot-helm-'));
  try {
    writeFileSync(join(dir, 'values.json'), JSON.stringify(values));
    const { stdout } = await run(bin, [...args, '--values', join(dir, 'values.json')], {
      maxBuffer: 16 << 20,
      // helm keeps its caches and plugins under HOME: a throwaway one, so the machine's helm setup is irrelevant.
      env: { PATH: process.env.PATH, HOME: dir },
    });
    return stdout;
  } catch (err) {
    const e = err as Error & { stderr?: string; stdout?: string };
    throw new Error(`helm ${args[0]} failed: ${e.stderr || e.stdout || e.message}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** `helm template` of the chart as release RELEASE in NAMESPACE, for the Kubernetes version the tests run. */
export async function helmTemplate(
  values: JsonObject = {},
  { release = RELEASE, namespace = NAMESPACE } = {},
): Promise<K8sObject[]> {
  const kubeVersion = readVersions().KUBERNETES_VERSION as string;
  return parseObjects(
    await withValues(
      ['template', release, CHART_DIR, '--namespace', namespace, '--kube-version', kubeVersion],
      values,
    ),
  );
}

/** `helm lint --strict` of the chart with these values: stdout when it passes. */
export function helmLint(values: JsonObject = {}): Promise<string> {
  return withValues(['lint', CHART_DIR, '--strict', '--namespace', NAMESPACE], values);
}
