// Plays source-controller: serves chart tarballs over HTTP and publishes them through HelmChart objects
// whose status.artifact the test writes. helm-controller (internal/controller/helmrelease_controller.go,
// getSource + loader.SecureLoadChartFromURL) reads the HelmChart named by spec.chartRef, requires
// observedGeneration == generation, no Stalled and an artifact, GETs artifact.url and verifies
// artifact.digest ("sha256:<hex>" of the tarball, parsed by opencontainers/go-digest). It is requeued
// when the artifact revision changes (SourceRevisionChangePredicate).
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { KubeClient } from '../../../src/kube/client.ts';
import { isObject, num } from '../../../src/util/narrow.ts';
import type { Chart } from './chart.ts';

const HELMCHARTS = '/apis/source.toolkit.fluxcd.io/v1';
export const helmChartPath = (ns: string, name?: string) =>
  `${HELMCHARTS}/namespaces/${ns}/helmcharts${name ? `/${name}` : ''}`;

export interface ArtifactServer {
  /** Base URL as helm-controller reaches it. */
  baseUrl: string;
  /** Serves chart at a path unique to its digest; returns that path. */
  add(chart: Chart): string;
  /** Requests served per path (to prove helm-controller fetched the artifact). */
  hits: Map<string, number>;
  close(): Promise<void>;
}

/**
 * bind: the address to listen on (127.0.0.1 for a local helm-controller); advertise: the host name in the
 * artifact URLs (for kind: an address of the host that the cluster's pods can reach).
 */
export async function startArtifactServer(
  o: { bind?: string; advertise?: string } = {},
): Promise<ArtifactServer> {
  const files = new Map<string, Buffer>();
  const hits = new Map<string, number>();
  const server: Server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    const body = files.get(path);
    hits.set(path, (hits.get(path) ?? 0) + 1);
    if (!body || (req.method !== 'GET' && req.method !== 'HEAD')) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/gzip', 'content-length': body.length });
    res.end(req.method === 'HEAD' ? undefined : body);
  });
  const bind = o.bind ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, bind, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const host = o.advertise ?? bind;
  return {
    baseUrl: `http://${host}:${port}`,
    hits,
    add(chart) {
      const path = `/charts/${chart.name}-${chart.version}-${chart.digest.slice(7, 19)}.tgz`;
      files.set(path, chart.tgz);
      return path;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/**
 * Creates (or updates) HelmChart ns/name and writes its status the way source-controller does after a
 * successful build: artifact, observedGeneration, observedChartName, Ready=True. helm-controller uses
 * the chart's own version from Chart.yaml; the artifact revision is that version for a HelmChart.
 */
export async function publishChart(
  client: KubeClient,
  artifacts: ArtifactServer,
  ns: string,
  name: string,
  chart: Chart,
): Promise<void> {
  const path = artifacts.add(chart);
  let current: unknown;
  try {
    current = await client.get(helmChartPath(ns, name));
  } catch {
    current = await client.create(helmChartPath(ns), {
      apiVersion: 'source.toolkit.fluxcd.io/v1',
      kind: 'HelmChart',
      metadata: { name },
      spec: {
        chart: chart.name,
        version: chart.version,
        interval: '10m',
        // Never resolved: nothing plays source-controller's spec side; only the status below matters.
        sourceRef: { kind: 'HelmRepository', name: 'e2e-not-served' },
      },
    });
  }
  const meta = isObject(current) && isObject(current.metadata) ? current.metadata : {};
  const generation = num(meta.generation) ?? 1;
  const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  await client.mergePatch(`${helmChartPath(ns, name)}/status`, {
    status: {
      observedGeneration: generation,
      observedChartName: chart.name,
      url: `${artifacts.baseUrl}/helmchart/${ns}/${name}/latest.tar.gz`,
      artifact: {
        url: `${artifacts.baseUrl}${path}`,
        path: `helmchart/${ns}/${name}/${chart.name}-${chart.version}.tgz`,
        revision: chart.version,
        digest: chart.digest,
        size: chart.tgz.length,
        lastUpdateTime: now,
      },
      conditions: [
        {
          type: 'Ready',
          status: 'True',
          reason: 'ChartPullSucceeded',
          message: `pulled '${chart.name}' chart with version '${chart.version}'`,
          observedGeneration: generation,
          lastTransitionTime: now,
        },
        {
          type: 'ArtifactInStorage',
          status: 'True',
          reason: 'Succeeded',
          message: `stored artifact: revision '${chart.version}'`,
          observedGeneration: generation,
          lastTransitionTime: now,
        },
      ],
    },
  });
}
