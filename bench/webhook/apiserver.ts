// Scenario "apiserver": the real call path. HelmReleases created through a local control plane with the
// webhook registered (and, for comparison, in a namespace it does not select), and the API server's own
// apiserver_admission_webhook_admission_duration_seconds for this webhook.
import https from 'node:https';
import { performance } from 'node:perf_hooks';
import { KubeConfig } from '@kubernetes/client-node';
import { startControlPlane } from '../../hack/controlplane.ts';
import { KubeClient } from '../../src/kube/client.ts';
import {
  ConfigMaps,
  collectionPath,
  HelmReleases,
  MutatingWebhookConfigurations,
  Namespaces,
} from '../../src/kube/resources.ts';
import { Labels } from '../../src/names.ts';
import { isObject } from '../../src/util/narrow.ts';
import { sleep } from '../../src/util/sleep.ts';
import { helmRelease } from '../../test/support/webhook.ts';
import { loopbackRegistration } from '../../test/support/webhook-registration.ts';
import { round, summary } from '../stats.ts';
import { ServerProcess } from './server-process.ts';

async function apiserverMetrics(client: KubeClient): Promise<string> {
  const opts: https.RequestOptions = {};
  await client.kubeConfig.applyToHTTPSOptions(opts);
  return await new Promise((resolve, reject) => {
    https
      .get(new URL('/metrics', client.server), opts, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          text += c;
        });
        res.on('end', () => resolve(text));
      })
      .on('error', reject);
  });
}

interface RawHistogram {
  buckets: { le: number; count: number }[];
  sum: number;
  count: number;
}

/** The buckets of one histogram (cumulative counts by upper bound, summed over matching series). */
function histogram(text: string, name: string, match: string): RawHistogram {
  const byLe = new Map<number, number>();
  let sum = 0;
  let count = 0;
  for (const line of text.split('\n')) {
    if (!line.includes(match)) continue;
    const value = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (line.startsWith(`${name}_bucket{`)) {
      const raw = /le="([^"]+)"/.exec(line)?.[1] ?? '+Inf';
      const le = raw === '+Inf' ? Number.POSITIVE_INFINITY : Number(raw);
      byLe.set(le, (byLe.get(le) ?? 0) + value);
    } else if (line.startsWith(`${name}_sum{`)) sum += value;
    else if (line.startsWith(`${name}_count{`)) count += value;
  }
  const buckets = [...byLe].map(([le, c]) => ({ le, count: c })).sort((a, b) => a.le - b.le);
  return { buckets, sum, count };
}

/** What happened between two scrapes, with the percentiles Prometheus can tell (bucket upper bounds). */
function histogramDelta(after: RawHistogram, before: RawHistogram) {
  const count = after.count - before.count;
  const sum = after.sum - before.sum;
  const buckets = after.buckets.map((b) => ({
    le: b.le,
    count: b.count - (before.buckets.find((x) => x.le === b.le)?.count ?? 0),
  }));
  const bound = (p: number) => buckets.find((b) => b.count >= (p / 100) * count)?.le ?? Number.NaN;
  return {
    count,
    meanMs: count ? round((sum / count) * 1000) : Number.NaN,
    p50UpperBoundMs: bound(50) * 1000,
    p99UpperBoundMs: bound(99) * 1000,
    buckets: buckets.map((b) => ({ leMs: b.le * 1000, count: b.count })),
  };
}

async function createMany(client: KubeClient, namespace: string, prefix: string, n: number) {
  const samples: number[] = [];
  let next = 0;
  let stamped = 0;
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      while (next < n) {
        const i = next++;
        const t0 = performance.now();
        const obj = await client.create(
          collectionPath(HelmReleases, namespace),
          helmRelease(`${prefix}-${i}`, [{ kind: 'ConfigMap', name: 'values' }]),
        );
        samples.push(performance.now() - t0);
        const labels =
          isObject(obj) && isObject(obj.metadata) && isObject(obj.metadata.labels) ? obj.metadata.labels : {};
        if (labels[Labels.managed] === 'true') stamped++;
      }
    }),
  );
  return { releases: n, stamped, createLatencyMs: summary(samples) };
}

/** `releases` creates with the webhook, then as many without it. */
export async function apiserverBench(certDir: string, ca: string, releases: number) {
  const cp = await startControlPlane();
  let server: ServerProcess | undefined;
  try {
    const kc = new KubeConfig();
    kc.loadFromFile(cp.kubeconfigPath);
    const client = await KubeClient.create(kc);
    for (const [ns, labels] of [
      ['bench', { 'bench-webhook': 'on' }],
      ['bench-off', {}],
    ] as const) {
      await client.create(collectionPath(Namespaces), {
        apiVersion: 'v1',
        kind: 'Namespace',
        metadata: { name: ns, labels },
      });
      await client.create(collectionPath(ConfigMaps, ns), {
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: { name: 'values' },
        data: { 'values.yaml': 'replicas: 3\n' },
      });
    }
    server = new ServerProcess('cluster', { BENCH_CERT_DIR: certDir, BENCH_KUBECONFIG: cp.kubeconfigPath });
    const port = await server.port;
    const hookName = 'bench.helmreleases.helmrelease-autopilot.dev';
    await client.create(
      collectionPath(MutatingWebhookConfigurations),
      loopbackRegistration({
        name: 'helmrelease-autopilot-bench',
        webhookName: hookName,
        url: `https://127.0.0.1:${port}/mutate`,
        caPem: ca,
        operatorUser: 'system:serviceaccount:helmrelease-autopilot:helmrelease-autopilot',
        namespaceSelector: { matchLabels: { 'bench-webhook': 'on' } },
      }),
    );
    // Wait until the API server calls the webhook (dry-run probes store nothing).
    for (let i = 0; ; i++) {
      const probe = await client.create(
        collectionPath(HelmReleases, 'bench'),
        helmRelease('probe', [{ kind: 'ConfigMap', name: 'values' }]),
        { dryRun: 'All' },
      );
      const labels =
        isObject(probe) && isObject(probe.metadata) && isObject(probe.metadata.labels)
          ? probe.metadata.labels
          : {};
      if (labels[Labels.managed] === 'true') break;
      if (i > 200) throw new Error('webhook never took effect');
      await sleep(100);
    }
    await createMany(client, 'bench', 'warmup', 50);
    const before = histogram(
      await apiserverMetrics(client),
      'apiserver_admission_webhook_admission_duration_seconds',
      `name="${hookName}"`,
    );
    const withWebhook = await createMany(client, 'bench', 'hr', releases);
    const metrics = await apiserverMetrics(client);
    const after = histogram(
      metrics,
      'apiserver_admission_webhook_admission_duration_seconds',
      `name="${hookName}"`,
    );
    const withoutWebhook = await createMany(client, 'bench-off', 'hr', releases);
    const failOpen = metrics
      .split('\n')
      .filter((l) => l.startsWith('apiserver_admission_webhook_fail_open_count') && l.includes(hookName));
    client.close();
    return {
      kubernetes: 'kube-apiserver on loopback (hack/controlplane.ts)',
      withWebhook,
      withoutWebhook,
      apiserverWebhookDuration: histogramDelta(after, before),
      failOpen,
    };
  } finally {
    await server?.stop();
    await cp.stop();
  }
}

export type ApiserverResult = Awaited<ReturnType<typeof apiserverBench>>;
