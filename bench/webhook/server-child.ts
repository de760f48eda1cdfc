// Child process of the webhook benchmark (server-process.ts): serves one TLS endpoint on 127.0.0.1 and
// prints {"port": n}.
//   BENCH_SERVER=webhook   the real webhook server (startWebhookServer) over an in-memory ValuesLookup
//   BENCH_SERVER=cluster   the real webhook server over the operator's caches of BENCH_KUBECONFIG
//   BENCH_SERVER=bare      a bare fastify TLS endpoint answering a constant AdmissionReview
// BENCH_CERT_DIR holds tls.crt/tls.key. Answers "stats" lines on stdin; exits when stdin closes (the parent is gone).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { KubeConfig } from '@kubernetes/client-node';
import Fastify from 'fastify';
import { Registry } from 'prom-client';
import { createCaches } from '../../src/kube/caches.ts';
import { KubeClient } from '../../src/kube/client.ts';
import { createLogger } from '../../src/log.ts';
import { errorMessage } from '../../src/util/errors.ts';
import { testDigestKeys } from '../../test/support/digest-key.ts';
import { memoryLookup } from '../../test/support/webhook.ts';
import { startWebhookServer } from '../../webhook/server.ts';

const mode = process.env.BENCH_SERVER ?? 'webhook';
const certDir = process.env.BENCH_CERT_DIR ?? '';
const logger = createLogger('warn', `bench-${mode}`);
const stops: (() => Promise<void>)[] = [];

async function main(): Promise<number> {
  if (mode === 'bare') {
    const app = Fastify({
      https: {
        cert: readFileSync(join(certDir, 'tls.crt')),
        key: readFileSync(join(certDir, 'tls.key')),
        minVersion: 'TLSv1.2',
      },
      keepAliveTimeout: 120_000,
      logger: false,
    });
    app.post('/mutate', async () => ({
      apiVersion: 'admission.k8s.io/v1',
      kind: 'AdmissionReview',
      response: { uid: 'u', allowed: true },
    }));
    await app.listen({ host: '127.0.0.1', port: 0 });
    stops.push(() => app.close());
    const addr = app.server.address();
    return typeof addr === 'object' && addr ? addr.port : 0;
  }
  let lookup = memoryLookup({
    'ConfigMap/bench/values': { data: { 'values.yaml': 'replicas: 3\n'.repeat(50) } },
  });
  if (mode === 'cluster') {
    const kc = new KubeConfig();
    kc.loadFromFile(process.env.BENCH_KUBECONFIG ?? '');
    const client = await KubeClient.create(kc);
    const caches = createCaches({ client, logger, digestKeys: testDigestKeys });
    caches.start();
    await caches.waitForSync();
    lookup = caches.values;
    stops.push(async () => {
      await caches.stop();
      client.close();
    });
  }
  const server = await startWebhookServer({
    config: {
      'bind-address': '127.0.0.1',
      'webhook-port': 0,
      'tls-mode': 'files',
      'cert-dir': certDir,
      'cert-poll-interval': 60_000,
      'self-signed-dns-names': [],
      'webhook-configuration': '',
      'webhook-lookup-timeout': 500,
    },
    lookup,
    logger,
    registry: new Registry(),
  });
  stops.unshift(() => server.close());
  return server.port;
}

main().then(
  (port) => {
    process.stdout.write(`${JSON.stringify({ port })}\n`);
    // "stats" on stdin: this process's event-loop delay since the last "stats" (a stalled server shows here).
    const loop = monitorEventLoopDelay({ resolution: 1 });
    loop.enable();
    createInterface({ input: process.stdin }).on('line', (line) => {
      if (line.trim() !== 'stats') return;
      const ms = (ns: number) => Math.round(ns / 1e4) / 100;
      process.stdout.write(
        `${JSON.stringify({ stats: { loopDelayP99Ms: ms(loop.percentile(99)), loopDelayMaxMs: ms(loop.max) } })}\n`,
      );
      loop.reset();
    });
    process.stdin.on('end', async () => {
      for (const stop of stops) await stop();
      process.exit(0);
    });
  },
  (err: unknown) => {
    process.stderr.write(`bench server failed: ${errorMessage(err)}\n`);
    process.exit(1);
  },
);
