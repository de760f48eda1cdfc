// The admission webhook over HTTPS: POST /mutate, /healthz, /readyz, /metrics. TLS 1.2 or newer, a body
// limit and request timeouts; the serving certificate is hot-reloaded (certwatcher.ts) or self-signed
// (selfsigned.ts, renewed before expiry); with --webhook-client-ca only clients with a certificate from
// that CA complete a handshake (clientca.ts).

import type { Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { SecureContextOptions, TlsOptions } from 'node:tls';
import Fastify, { type FastifyInstance, type RawServerBase } from 'fastify';
import type { Registry } from 'prom-client';
import type { Config } from '../src/config.ts';
import type { KubeClient } from '../src/kube/client.ts';
import type { Logger } from '../src/log.ts';
import type { KeyPair } from '../src/tls/certs.ts';
import { errorMessage } from '../src/util/errors.ts';
import type { ValuesLookup } from '../src/values/lookup.ts';
import { admit } from './admit.ts';
import type { CABundleKeeper } from './cabundle.ts';
import { type CertPair, CertWatcher } from './certwatcher.ts';
import { ClientCAWatcher } from './clientca.ts';
import { createWebhookMetrics } from './metrics.ts';

/** An AdmissionReview carries the object and the old object, each up to etcd's 1.5 MiB: leave room for both. */
export const BODY_LIMIT = 8 * 1024 * 1024;
/** The API server gives a webhook at most 30 s; a request still open after this is abandoned anyway. */
export const REQUEST_TIMEOUT_MS = 30_000;
/**
 * Longer than the API server's idle timeout for webhook connections (90 s), so the client closes idle
 * connections first: a server-side close racing a new request would fail that admission. On close() the
 * server closes them itself (drainOnClose).
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
> &
  Partial<Pick<Config, 'webhook-client-ca'>>;

export interface WebhookServerOptions {
  config: WebhookConfig;
  lookup: ValuesLookup;
  logger: Logger;
  registry: Registry;
  /** Needed in self-signed mode for the shared CA Secret and the caBundle patch; optional otherwise. */
  client?: KubeClient;
  /** The operator's namespace (self-signed CA Secret). */
  namespace?: string;
  /** Only releases in namespaces this accepts are stamped (src/scope.ts); default all. */
  inScope?: (namespace: string) => boolean;
  /** Lifetime of self-signed serving certificates (renewed at two thirds of it); default one year. */
  selfSignedValidityMs?: number;
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
  const stops: (() => Promise<void> | void)[] = [];
  const stopAll = async () => {
    stopping.abort();
    for (const stop of stops.splice(0).reverse()) await stop();
  };

  const tls = await startTls(o, log, metrics, stopping.signal, stops);
  const app = createApp(tls.options);
  tls.attach(app.server);
  app.server.on('tlsClientError', (err: Error & { code?: string }) => {
    metrics.tlsHandshakeErrors.inc();
    log.debug({ err: errorMessage(err), code: err.code }, 'TLS handshake refused');
  });
  const deps = {
    lookup,
    lookupTimeoutMs: config['webhook-lookup-timeout'],
    metrics,
    logger: log,
    ...(o.inScope ? { inScope: o.inScope } : {}),
  };
  const ready = () => tls.loaded() && lookup.hasSynced();
  const drain = drainOnClose(app);
  registerRoutes(app, { deps, ready, registry });
  try {
    await app.listen({ host: config['bind-address'], port: config['webhook-port'] });
  } catch (err) {
    await stopAll();
    throw err;
  }
  const port = (app.server.address() as AddressInfo).port;
  log.info({ port, host: config['bind-address'], clientAuth: tls.clientAuth }, 'webhook listening');
  return {
    port,
    ready,
    reloadCertificates: tls.reload,
    async close() {
      drain.begin();
      await stopAll();
      await app.close();
    },
  };
}

interface Tls {
  /** For the server's creation: the pair loaded so far (if any) and the client CA (if required). */
  options: TlsOptions;
  /** From now on, changes of the pair or the client CA are applied to this server's new connections. */
  attach(server: HttpsServer): void;
  loaded(): boolean;
  reload(): Promise<void>;
  clientAuth: boolean;
}

/** The serving pair (files, or self-signed and renewed) and the optional client CA: loaded, watched, applied. */
async function startTls(
  o: WebhookServerOptions,
  log: Logger,
  metrics: ReturnType<typeof createWebhookMetrics>,
  signal: AbortSignal,
  stops: (() => Promise<void> | void)[],
): Promise<Tls> {
  const { config } = o;
  let server: HttpsServer | undefined;
  // New connections get the new context; open ones keep theirs until the client closes them.
  const apply = () => {
    const pair = watcher.current();
    if (server && pair) server.setSecureContext(secureContext(pair, clientCA?.current()));
  };
  // Throws (stopping start-up) when the bundle is unusable: client authentication must not fail open.
  const clientCA = config['webhook-client-ca']
    ? new ClientCAWatcher({
        path: config['webhook-client-ca'],
        pollIntervalMs: config['cert-poll-interval'],
        logger: log,
        onChange: apply,
      })
    : undefined;
  const selfSigned =
    config['tls-mode'] === 'self-signed'
      ? await startSelfSigned(o, log, signal, stops, () => watcher.reload())
      : undefined;
  const watcher = new CertWatcher({
    dir: config['cert-dir'],
    pollIntervalMs: config['cert-poll-interval'],
    logger: log,
    onChange: (pair) => {
      metrics.certificateExpiry.set(pair.notAfter.getTime() / 1000);
      metrics.certificateLoads.inc({ result: 'loaded' });
      apply();
    },
    onInvalid: () => metrics.certificateLoads.inc({ result: 'invalid' }),
  });
  await watcher.start();
  stops.push(() => watcher.stop());
  if (clientCA) {
    clientCA.start();
    stops.push(() => clientCA.stop());
  }
  selfSigned?.renew();
  const pair = watcher.current();
  if (!pair)
    log.warn(
      { certDir: config['cert-dir'] },
      'no valid certificate yet; TLS handshakes fail until one appears',
    );
  return {
    options: {
      minVersion: MIN_TLS,
      ...(pair ? { cert: pair.cert, key: pair.key } : {}),
      // Verified by TLS itself: a client without a certificate from this CA never reaches a route.
      ...(clientCA ? { requestCert: true, rejectUnauthorized: true, ca: clientCA.current() } : {}),
    },
    attach: (s) => {
      server = s;
    },
    loaded: () => watcher.current() !== undefined,
    reload: () => watcher.reload(),
    clientAuth: clientCA !== undefined,
  };
}

function createApp(https: TlsOptions) {
  return Fastify({
    https,
    bodyLimit: BODY_LIMIT,
    requestTimeout: REQUEST_TIMEOUT_MS,
    keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
    // Objects carry arbitrary Helm values: a "__proto__" key there is data, not an attack on us
    // (JSON.parse makes it an own property, and nothing here merges objects).
    onProtoPoisoning: 'ignore',
    onConstructorPoisoning: 'ignore',
    logger: false,
    // No route has a schema: without these factories fastify loads ajv and fast-json-stringify (113
    // modules, ~3 MB of RSS) to compile none.
    schemaController: { compilersFactory: { buildValidator: noSchemas, buildSerializer: noSchemas } },
  });
}

/**
 * What close() does with open connections. app.close() stops accepting connections, answers a request that
 * arrives on an open one with 503 and `Connection: close`, and server.close() (Node >= 19) closes the
 * connections idle at that moment. fastify's forceCloseConnections does not cover the rest: 'idle' (its
 * default) adds nothing unless a serverFactory is used, and `true` destroys every connection, in-flight
 * admissions included. The rest is a connection whose request is in flight at close: its answer said
 * keep-alive, so it stayed open afterwards and held server.close() until the client's idle timeout (the API
 * server's is 90 s; found by the soak, issue #15). From begin() on, every answer carries `Connection: close`
 * (Node then ends the connection once it is sent), and connections idle by then are closed at once.
 */
function drainOnClose<S extends RawServerBase>(app: FastifyInstance<S>): { begin(): void } {
  let closing = false;
  app.addHook('onSend', async (_req, reply, payload) => {
    if (closing) reply.header('connection', 'close');
    return payload;
  });
  return {
    begin: () => {
      closing = true;
      const server = app.server as { closeIdleConnections?: () => void };
      server.closeIdleConnections?.();
    },
  };
}

function noSchemas(): never {
  throw new Error('the webhook routes have no schemas to compile');
}

function secureContext(pair: CertPair, clientCA: string | undefined): SecureContextOptions {
  return { cert: pair.cert, key: pair.key, minVersion: MIN_TLS, ...(clientCA ? { ca: clientCA } : {}) };
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

/**
 * Self-signed mode: the CA (shared through a Secret when possible), a serving certificate written into
 * --cert-dir now, its renewal (started by `renew` once the certificate watcher runs), and the caBundle of
 * --webhook-configuration kept current.
 */
async function startSelfSigned(
  o: WebhookServerOptions,
  log: Logger,
  signal: AbortSignal,
  stops: (() => Promise<void> | void)[],
  reload: () => Promise<void>,
): Promise<{ renew: () => void }> {
  // Loaded in this mode only: node-forge, which builds the certificates, is 49 modules and ~2 MB of RSS.
  const { createSelfSigned, renewServingCertificate, SERVING_VALIDITY_MS, writeCertDir } = await import(
    './selfsigned.ts'
  );
  const { keepCABundle } = await import('./cabundle.ts');
  const { config } = o;
  const validityMs = o.selfSignedValidityMs ?? SERVING_VALIDITY_MS;
  const hosts = config['self-signed-dns-names'];
  const shared = await sharedCA(o, log);
  const issuedAt = Date.now();
  const selfSigned = createSelfSigned(hosts, shared, validityMs);
  await writeCertDir(config['cert-dir'], selfSigned);
  log.info({ certDir: config['cert-dir'], hosts }, 'self-signed certificate written');
  const client = o.client;
  if (client && config['webhook-configuration']) {
    // Several replicas each with a CA of their own would take turns overwriting each other's caBundle:
    // only a shared CA is watched and restored; a local one is written once, as a best effort.
    const keeper: CABundleKeeper = keepCABundle({
      client,
      name: config['webhook-configuration'],
      caPem: selfSigned.ca.cert,
      logger: log,
      watch: shared !== undefined,
    });
    stops.push(() => keeper.stop());
  }
  return {
    renew: () => {
      const renewal = renewServingCertificate({
        hosts,
        ca: selfSigned.ca,
        dir: config['cert-dir'],
        validityMs,
        current: selfSigned,
        issuedAt,
        logger: log,
        onRenewed: reload,
        signal,
      });
      stops.push(() => renewal);
    },
  };
}

async function sharedCA(o: WebhookServerOptions, log: Logger): Promise<KeyPair | undefined> {
  if (!o.client || !o.namespace) return undefined;
  const { loadOrCreateCA } = await import('./selfsigned.ts');
  try {
    return await loadOrCreateCA(o.client, o.namespace);
  } catch (err) {
    // Fine for one replica (local runs); several replicas would each trust only their own CA.
    log.warn(
      { err: errorMessage(err), namespace: o.namespace },
      'cannot share the self-signed CA through a Secret; using a local CA',
    );
    return undefined;
  }
}
