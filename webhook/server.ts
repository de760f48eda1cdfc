// The admission webhook over HTTPS: POST /mutate, /healthz, /readyz, /metrics. TLS 1.2 or newer, a body
// limit and request timeouts; the serving certificate is hot-reloaded (certwatcher.ts) or self-signed.

import type { Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { SecureContextOptions } from 'node:tls';
import Fastify, { type FastifyInstance, type RawServerBase } from 'fastify';
import type { Registry } from 'prom-client';
import type { Config } from '../src/config.ts';
import type { KubeClient } from '../src/kube/client.ts';
import type { Logger } from '../src/log.ts';
import type { KeyPair } from '../src/tls/certs.ts';
import { sleep } from '../src/util/sleep.ts';
import type { ValuesLookup } from '../src/values/lookup.ts';
import { admit } from './admit.ts';
import { type CertPair, CertWatcher } from './certwatcher.ts';
import { createWebhookMetrics } from './metrics.ts';
import { createSelfSigned, loadOrCreateCA, patchCABundle, writeCertDir } from './selfsigned.ts';

/** An AdmissionReview carries the object and the old object, each up to etcd's 1.5 MiB: leave room for both. */
export const BODY_LIMIT = 8 * 1024 * 1024;
/** The API server gives a webhook at most 30 s; a request still open after this is abandoned anyway. */
export const REQUEST_TIMEOUT_MS = 30_000;
/**
 * Longer than the API server's idle timeout for webhook connections (90 s), so the client closes idle
 * connections first: a server-side close racing a new request would fail that admission.
 */
export const KEEP_ALIVE_TIMEOUT_MS = 120_000;
const MIN_TLS: SecureContextOptions['minVersion'] = 'TLSv1.2';

export type WebhookConfig = Pick<
  Config,
  | 'bind-address'
  | 'webhook-port'
  | 'tls-mode'
  | 'cert-dir'
  | 'cert-poll-interval'
  | 'self-signed-dns-names'
  | 'webhook-configuration'
  | 'webhook-lookup-timeout'
>;

export interface WebhookServerOptions {
  config: WebhookConfig;
  lookup: ValuesLookup;
  logger: Logger;
  registry: Registry;
  /** Needed in self-signed mode for the shared CA Secret and the caBundle patch; optional otherwise. */
  client?: KubeClient;
  /** The operator's namespace (self-signed CA Secret). */
  namespace?: string;
}

export interface WebhookServer {
  /** The port listened on (useful with --webhook-port 0). */
  port: number;
  /** Certificates loaded and the values caches synced. */
  ready(): boolean;
  /** Re-reads the certificate files now (the watcher does this by itself; for tests and SIGHUP). */
  reloadCertificates(): Promise<void>;
  close(): Promise<void>;
}

export async function startWebhookServer(o: WebhookServerOptions): Promise<WebhookServer> {
  const { config, lookup, registry } = o;
  const log = o.logger.child({ component: 'webhook' });
  const metrics = createWebhookMetrics(registry);
  const stopping = new AbortController();

  if (config['tls-mode'] === 'self-signed') {
    const ca = await sharedCA(o, log);
    const selfSigned = createSelfSigned(config['self-signed-dns-names'], ca);
    await writeCertDir(config['cert-dir'], selfSigned);
    log.info(
      { certDir: config['cert-dir'], hosts: config['self-signed-dns-names'] },
      'self-signed certificate written',
    );
    const client = o.client;
    if (client && config['webhook-configuration']) {
      void keepCABundle(client, config['webhook-configuration'], selfSigned.ca.cert, log, stopping.signal);
    }
  }

  let tlsServer: HttpsServer | undefined;
  let pending: CertPair | undefined;
  const watcher = new CertWatcher({
    dir: config['cert-dir'],
    pollIntervalMs: config['cert-poll-interval'],
    logger: log,
    onChange: (pair) => {
      metrics.certificateExpiry.set(pair.notAfter.getTime() / 1000);
      metrics.certificateLoads.inc({ result: 'loaded' });
      // New connections get the new pair; open ones keep theirs until the client closes them.
      if (tlsServer) tlsServer.setSecureContext({ cert: pair.cert, key: pair.key, minVersion: MIN_TLS });
      else pending = pair;
    },
    onInvalid: () => metrics.certificateLoads.inc({ result: 'invalid' }),
  });
  await watcher.start();
  if (!pending)
    log.warn(
      { certDir: config['cert-dir'] },
      'no valid certificate yet; TLS handshakes fail until one appears',
    );

  const app = Fastify({
    https: { minVersion: MIN_TLS, ...(pending ? { cert: pending.cert, key: pending.key } : {}) },
    bodyLimit: BODY_LIMIT,
    requestTimeout: REQUEST_TIMEOUT_MS,
    keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
    // Objects carry arbitrary Helm values: a "__proto__" key there is data, not an attack on us
    // (JSON.parse makes it an own property, and nothing here merges objects).
    onProtoPoisoning: 'ignore',
    onConstructorPoisoning: 'ignore',
    logger: false,
  });
  tlsServer = app.server;
  const deps = { lookup, lookupTimeoutMs: config['webhook-lookup-timeout'], metrics, logger: log };
  const ready = () => watcher.current() !== undefined && lookup.hasSynced();
  registerRoutes(app, { deps, ready, registry });
  try {
    await app.listen({ host: config['bind-address'], port: config['webhook-port'] });
  } catch (err) {
    watcher.stop();
    stopping.abort();
    throw err;
  }
  const port = (app.server.address() as AddressInfo).port;
  log.info({ port, host: config['bind-address'] }, 'webhook listening');
  const server = app;
  return {
    port,
    ready,
    reloadCertificates: () => watcher.reload(),
    async close() {
      stopping.abort();
      watcher.stop();
      await server.close();
    },
  };
}

export function registerRoutes<S extends RawServerBase>(
  app: FastifyInstance<S>,
  o: { deps: Parameters<typeof admit>[1]; ready: () => boolean; registry: Registry },
): void {
  // The API server sends application/json; anything else is read as JSON too and judged by its content.
  app.removeContentTypeParser('text/plain');
  app.addContentTypeParser('*', { parseAs: 'string' }, (_req, body, done) => {
    try {
      done(null, JSON.parse(body as string));
    } catch {
      const err = new Error('body is not JSON') as Error & { statusCode: number };
      err.statusCode = 400;
      done(err, undefined);
    }
  });
  app.post('/mutate', async (req, reply) => {
    const result = await admit(req.body, o.deps);
    return reply.code(result.status).send(result.body);
  });
  app.get('/healthz', async () => 'ok\n');
  app.get('/readyz', async (_req, reply) =>
    o.ready() ? reply.send('ok\n') : reply.code(503).send('not ready: certificates or caches\n'),
  );
  app.get('/metrics', async (_req, reply) =>
    reply.type(o.registry.contentType).send(await o.registry.metrics()),
  );
}

async function sharedCA(o: WebhookServerOptions, log: Logger): Promise<KeyPair | undefined> {
  if (!o.client || !o.namespace) return undefined;
  try {
    return await loadOrCreateCA(o.client, o.namespace);
  } catch (err) {
    // Fine for one replica (local runs); several replicas would each trust only their own CA.
    log.warn(
      { err, namespace: o.namespace },
      'cannot share the self-signed CA through a Secret; using a local CA',
    );
    return undefined;
  }
}

/** Writes the CA bundle into the webhook configuration, retrying until it succeeds (it may not exist yet). */
async function keepCABundle(
  client: KubeClient,
  name: string,
  caPem: string,
  log: Logger,
  signal: AbortSignal,
): Promise<void> {
  for (let delay = 1000; !signal.aborted; delay = Math.min(delay * 2, 30_000)) {
    try {
      const changed = await patchCABundle(client, name, caPem);
      log.info({ webhookConfiguration: name, changed }, 'caBundle is current');
      return;
    } catch (err) {
      log.warn({ err, webhookConfiguration: name, retryInMs: delay }, 'cannot write caBundle; retrying');
    }
    await sleep(delay, signal);
  }
}
