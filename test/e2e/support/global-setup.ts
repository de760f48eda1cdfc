// Builds (or finds in the cache) every helm-controller version the local e2e specs run, once, before
// any spec starts: a cold build takes minutes and must not count against a spec's timeouts.
import { helmControllerBinary, helmControllerVersions } from './helm-controller.ts';

export default async function setup() {
  if (process.env.E2E_KUBECONFIG) return; // external cluster: its helm-controller is deployed there
  const { current, legacy } = helmControllerVersions();
  for (const version of [current, legacy]) {
    const started = Date.now();
    const binary = await helmControllerBinary(version);
    process.stderr.write(`helm-controller ${version}: ${binary} (${Date.now() - started} ms)\n`);
  }
}
