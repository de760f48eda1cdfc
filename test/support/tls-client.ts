// A client of the webhook as an attacker (or the API server) would be: one fresh TLS connection per request,
// optionally with a client certificate, and the outcome told apart: an HTTP answer, or a refusal at the
// TLS layer (no HTTP status at all).
import https from 'node:https';
import type { KeyPair } from '../../src/tls/certs.ts';

export type PostOutcome = { status: number; body: string } | { refused: string };

export interface PostOptions {
  /** CA that signed the webhook's serving certificate. */
  ca: string;
  /** A client certificate to present. */
  client?: KeyPair;
  path?: string;
}

/** POSTs `body` (JSON) to https://127.0.0.1:port/mutate over a new connection. */
export function postOverTLS(port: number, body: unknown, o: PostOptions): Promise<PostOutcome> {
  return new Promise((resolve) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        port,
        path: o.path ?? '/mutate',
        method: 'POST',
        ca: o.ca,
        agent: false,
        headers: { 'content-type': 'application/json' },
        ...(o.client ? { cert: o.client.cert, key: o.client.key } : {}),
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          text += c;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
        res.on('error', (err: Error & { code?: string }) => resolve({ refused: err.code ?? err.message }));
      },
    );
    req.on('error', (err: Error & { code?: string }) => resolve({ refused: err.code ?? err.message }));
    req.end(JSON.stringify(body));
  });
}
