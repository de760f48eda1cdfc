// The real helm-controller, built from the Go module proxy by hack/build-helm-controller.sh and run
// against the local control plane. Flags (read from its main.go): all namespaces, no leader election,
// no events receiver (--events-addr empty: events go to the API server only), metrics and health on
// loopback ports; it needs no source-controller when the test publishes HelmChart artifacts itself.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort, HACK_DIR, readVersions } from '../../../hack/controlplane.ts';
import { sleep } from '../../../src/util/sleep.ts';
import { startTethered, type Tethered } from './process.ts';

const run = promisify(execFile);

/** The pinned version (HELM_CONTROLLER_VERSION) and the legacy-waiter one (HELM_CONTROLLER_LEGACY_VERSION). */
export function helmControllerVersions(): { current: string; legacy: string } {
  const v = readVersions();
  const current = v.HELM_CONTROLLER_VERSION;
  const legacy = v.HELM_CONTROLLER_LEGACY_VERSION;
  if (!current || !legacy)
    throw new Error('hack/versions.env lacks HELM_CONTROLLER_VERSION or HELM_CONTROLLER_LEGACY_VERSION');
  return { current, legacy };
}

/** Path of the helm-controller binary of `version`: built (or taken from the cache or $HELM_CONTROLLER_BIN). */
export async function helmControllerBinary(version: string): Promise<string> {
  const { stdout } = await run('bash', [join(HACK_DIR, 'build-helm-controller.sh'), version], {
    maxBuffer: 64 << 20,
  });
  return stdout.trim().split('\n').pop() as string;
}

export interface HelmController extends Tethered {
  version: string;
}

export async function startHelmController(o: {
  version: string;
  kubeconfigPath: string;
  dir: string;
  /** More flags, e.g. --feature-gates=CancelHealthCheckOnNewRevision=true or --watch-configs-label-selector=... */
  args?: readonly string[];
}): Promise<HelmController> {
  const binary = await helmControllerBinary(o.version);
  const [metrics, health] = [await freePort(), await freePort()];
  const proc = startTethered(
    `helm-controller-${o.version}`,
    [
      binary,
      '--watch-all-namespaces=true',
      `--metrics-addr=127.0.0.1:${metrics}`,
      `--health-addr=127.0.0.1:${health}`,
      '--enable-leader-election=false',
      '--events-addr=',
      '--concurrent=4',
      // A HelmChart without an artifact yet is looked at again after this long (default 30 s).
      '--requeue-dependency=2s',
      '--log-level=debug',
      '--log-encoding=json',
      ...(o.args ?? []),
    ],
    {
      dir: o.dir,
      env: {
        PATH: process.env.PATH,
        KUBECONFIG: o.kubeconfigPath,
        // Helm's caches and config stay inside the test's directory.
        HOME: o.dir,
        HELM_CACHE_HOME: join(o.dir, 'helm-cache'),
        HELM_CONFIG_HOME: join(o.dir, 'helm-config'),
        HELM_DATA_HOME: join(o.dir, 'helm-data'),
      },
    },
  );
  const deadline = Date.now() + 120_000;
  for (;;) {
    if (proc.exited()) throw new Error(`helm-controller ${o.version} exited:\n${proc.tail()}`);
    try {
      const res = await fetch(`http://127.0.0.1:${health}/readyz`);
      if (res.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await proc.stop();
      throw new Error(`helm-controller ${o.version} not ready after 120 s:\n${proc.tail()}`);
    }
    await sleep(200);
  }
  return { ...proc, version: o.version };
}
