// The trigger operator as a child process of the trigger benchmark (operator-process.ts), so its RSS and
// start-up are its own.
// Settings come from the environment; it reports JSON lines on stdout and exits when stdin closes.
import { Registry } from 'prom-client';
import { startTriggerController } from '../../controller/triggers/controller.ts';
import { createCaches } from '../../src/kube/caches.ts';
import { KubeClient } from '../../src/kube/client.ts';
import { loadKubeConfig } from '../../src/kube/kubeconfig.ts';
import { createLogger } from '../../src/log.ts';
import { BENCH_DIGEST_KEYS } from './objects.ts';

const env = process.env;
const t0 = performance.now();
const report = (event: string, fields: Record<string, unknown> = {}) =>
  process.stdout.write(
    `${JSON.stringify({ event, ms: Math.round(performance.now() - t0), rssMB: rssMB(), ...fields })}\n`,
  );
const rssMB = () => Math.round((process.memoryUsage().rss / 2 ** 20) * 10) / 10;
const memory = () => {
  const m = process.memoryUsage();
  const mb = (x: number) => Math.round((x / 2 ** 20) * 10) / 10;
  return {
    heapUsedMB: mb(m.heapUsed),
    heapTotalMB: mb(m.heapTotal),
    externalMB: mb(m.external),
    arrayBuffersMB: mb(m.arrayBuffers),
  };
};

if (env.BENCH_BASELINE) {
  globalThis.gc?.();
  report('baseline');
  process.exit(0);
}

// The operator's own loader (no client-node at run time), as in cmd/helmrelease-autopilot/main.ts.
const { kubeConfig } = await loadKubeConfig({ path: env.BENCH_KUBECONFIG as string, context: '' }, env);
const client = await KubeClient.create(kubeConfig);
const logger = createLogger(env.BENCH_LOG_LEVEL ?? 'warn');
const namespace = env.BENCH_NAMESPACE || undefined;
const caches = createCaches({
  client,
  logger,
  digestKeys: () => BENCH_DIGEST_KEYS,
  ...(namespace ? { namespace } : {}),
});
const registry = new Registry();
caches.start();
const controller = startTriggerController({
  client,
  caches,
  logger,
  registry,
  config: {
    debounce: Number(env.BENCH_DEBOUNCE_MS ?? 0),
    concurrency: Number(env.BENCH_CONCURRENCY ?? 4),
    'write-qps': Number(env.BENCH_WRITE_QPS ?? 20),
    'write-burst': Number(env.BENCH_WRITE_BURST ?? 40),
    force: false,
    'notify-only': false,
    'compat-trigger-operator': false,
  },
});
let peak = rssMB();
const sampler = setInterval(() => {
  peak = Math.max(peak, rssMB());
}, 50);
await caches.waitForSync();
report('synced', {
  ...memory(),
  releases: caches.helmReleases.size,
  configMaps: caches.configMaps.size,
  secrets: caches.secrets.size,
});
await controller.whenIdle();
report('idle', {
  ...memory(),
  peakMB: peak,
  fetches: caches.values.stats.fetches,
  valuesHeld: caches.values.size,
});
const metrics = async () =>
  (await registry.metrics()).split('\n').filter((l) => /^helmrelease_autopilot_trigger/.test(l));

process.stdin.on('data', async (chunk) => {
  for (const cmd of chunk.toString().split('\n').filter(Boolean)) {
    if (cmd === 'stats') {
      globalThis.gc?.();
      report('stats', {
        ...memory(),
        peakMB: peak,
        fetches: caches.values.stats.fetches,
        valuesHeld: caches.values.size,
        metrics: await metrics(),
      });
    }
  }
});
process.stdin.on('end', async () => {
  clearInterval(sampler);
  await controller.stop();
  await caches.stop();
  client.close();
  process.exit(0);
});
