// Plain-HTTP endpoints for the kubelet and Prometheus: /healthz, /readyz, /metrics.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { errorMessage } from '../../src/util/errors.ts';

export interface ReadinessCheck {
  name: string;
  ready: () => boolean;
}

export interface OpsServer {
  port: number;
  close(): Promise<void>;
}

export async function startOpsServer(options: {
  host: string;
  port: number;
  /** Serve /healthz and /readyz. */
  health?: { checks: () => ReadinessCheck[] };
  /** Serve /metrics. */
  registry?: Registry;
}): Promise<OpsServer> {
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const send = (status: number, body: string, type = 'text/plain; charset=utf-8') => {
      res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
      res.end(body);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'method not allowed\n');
    if (options.health && path === '/healthz') return send(200, 'ok\n');
    if (options.health && path === '/readyz') {
      const failing = options.health.checks().filter((c) => !c.ready());
      return failing.length === 0
        ? send(200, 'ok\n')
        : send(503, `not ready: ${failing.map((c) => c.name).join(', ')}\n`);
    }
    if (options.registry && path === '/metrics') {
      const registry = options.registry;
      registry.metrics().then(
        (text) => send(200, text, registry.contentType),
        (err: unknown) => send(500, `${errorMessage(err)}\n`),
      );
      return;
    }
    send(404, 'not found\n');
  });
  server.keepAliveTimeout = 5_000;
  server.requestTimeout = 10_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      }),
  };
}
