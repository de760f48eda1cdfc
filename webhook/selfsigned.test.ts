import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { testLogger } from '../test/support/log.ts';
import { memoryLookup } from '../test/support/webhook.ts';
import { caBundles, repatchDelay } from './cabundle.ts';
import { renewalTime } from './selfsigned.ts';
import { startWebhookServer } from './server.ts';

describe('renewalTime', () => {
  it.each([
    [0, 3000, 2000],
    [1000, 4000, 3000],
    [0, 365 * 86_400_000, (2 / 3) * 365 * 86_400_000],
    // Already expired (a clock jump): renew now.
    [5000, 4000, 5000],
  ])('issued at %d, valid until %d: renew at %d', (issued, notAfter, at) => {
    expect(renewalTime(issued, notAfter)).toBeCloseTo(at);
  });
});

describe('repatchDelay', () => {
  it.each([
    [0, 0],
    [1, 1000],
    [2, 2000],
    [4, 8000],
    [20, 300_000],
  ])('re-patch number %d in a row waits %d ms', (streak, ms) => {
    expect(repatchDelay(streak)).toBe(ms);
  });
});

describe('caBundles', () => {
  it.each<[string, unknown, string[]]>([
    [
      'two webhooks',
      { webhooks: [{ clientConfig: { caBundle: 'A' } }, { clientConfig: { caBundle: 'B' } }] },
      ['A', 'B'],
    ],
    ['a webhook without caBundle', { webhooks: [{ clientConfig: { url: 'https://x' } }, {}] }, ['', '']],
    ['no webhooks', { metadata: {} }, []],
    ['not an object', 'nonsense', []],
  ])('%s', (_what, raw, bundles) => {
    expect(caBundles(raw)).toEqual(bundles);
  });
});

/** The certificate the server presents on a new connection. */
function served(port: number, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ca }, () => {
      const fp = socket.getPeerX509Certificate()?.fingerprint256 ?? '';
      socket.end();
      resolve(fp);
    });
    socket.on('error', reject);
  });
}

describe('self-signed renewal', () => {
  it('re-issues a short-lived serving certificate from the same CA before it expires, without a restart', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'selfsigned-renew-')), 'certs');
    const s = await startWebhookServer({
      config: {
        'bind-address': '127.0.0.1',
        'webhook-port': 0,
        'tls-mode': 'self-signed',
        'cert-dir': dir,
        'cert-poll-interval': 60_000,
        'self-signed-dns-names': [],
        'webhook-configuration': '',
        'webhook-lookup-timeout': 500,
      },
      lookup: memoryLookup(),
      logger: testLogger(),
      registry: new Registry(),
      selfSignedValidityMs: 3000,
    });
    try {
      const ca = readFileSync(join(dir, 'ca.crt'), 'utf8');
      const first = await served(s.port, ca);
      // Renewed at two thirds of 3 s; the next handshake sees a new certificate under the same CA.
      await expect.poll(() => served(s.port, ca), { timeout: 6000, interval: 200 }).not.toBe(first);
      const current = new X509Certificate(readFileSync(join(dir, 'tls.crt')));
      expect(await served(s.port, ca)).toBe(current.fingerprint256);
      expect(current.verify(new X509Certificate(ca).publicKey)).toBe(true);
      expect(readFileSync(join(dir, 'ca.crt'), 'utf8')).toBe(ca);
    } finally {
      await s.close();
    }
  });
});
