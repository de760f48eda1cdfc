import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { createCA, issueCertificate, type KeyPair } from '../src/tls/certs.ts';
import { sleep } from '../src/util/sleep.ts';
import { testLogger } from '../test/support/log.ts';
import { memoryLookup, writeAtomicWriterLayout } from '../test/support/webhook.ts';
import { BODY_LIMIT, startWebhookServer, type WebhookConfig, type WebhookServer } from './server.ts';

const ca = createCA('test-webhook-ca');
const serving = (): KeyPair =>
  issueCertificate(ca, { commonName: 'webhook', hosts: ['127.0.0.1'], usage: 'server' });

function config(dir: string, over: Partial<WebhookConfig> = {}): WebhookConfig {
  return {
    'bind-address': '127.0.0.1',
    'webhook-port': 0,
    'tls-mode': 'files',
    'cert-dir': dir,
    // Long: these tests prove the directory watch; the poll is the safety net.
    'cert-poll-interval': 60_000,
    'self-signed-dns-names': [],
    'webhook-configuration': '',
    'webhook-lookup-timeout': 500,
    ...over,
  };
}

/** The fingerprint of the certificate the server presents on a new connection. */
function servedFingerprint(port: number, o: tls.ConnectionOptions = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ca: ca.cert, ...o }, () => {
      const fp = socket.getPeerX509Certificate()?.fingerprint256 ?? '';
      socket.end();
      resolve(fp);
    });
    socket.on('error', reject);
  });
}

async function eventually(fn: () => Promise<boolean> | boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error('timed out');
    await sleep(20);
  }
}

const fingerprint = (p: KeyPair) => new X509Certificate(p.cert).fingerprint256;
const started: WebhookServer[] = [];
afterEach(async () => {
  for (const s of started.splice(0)) await s.close();
});

async function start(dir: string, over: Partial<WebhookConfig> = {}, registry = new Registry()) {
  const s = await startWebhookServer({
    config: config(dir, over),
    lookup: memoryLookup(),
    logger: testLogger(),
    registry,
  });
  started.push(s);
  return s;
}

describe('serving certificate reload', () => {
  it('swaps the pair when kubelet swaps ..data, and keeps the old pair on a bad update', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'certs-'));
    const first = serving();
    writeAtomicWriterLayout(dir, { 'tls.crt': first.cert, 'tls.key': first.key });
    const registry = new Registry();
    const s = await start(dir, {}, registry);
    expect(s.ready()).toBe(true);
    expect(await servedFingerprint(s.port)).toBe(fingerprint(first));

    const second = serving();
    writeAtomicWriterLayout(dir, { 'tls.crt': second.cert, 'tls.key': second.key });
    await eventually(async () => (await servedFingerprint(s.port)) === fingerprint(second));

    // A certificate with somebody else's key: rejected, the second pair stays in use.
    writeAtomicWriterLayout(dir, { 'tls.crt': serving().cert, 'tls.key': second.key });
    await s.reloadCertificates();
    expect(await servedFingerprint(s.port)).toBe(fingerprint(second));
    writeAtomicWriterLayout(dir, { 'tls.crt': 'garbage', 'tls.key': 'garbage' });
    await s.reloadCertificates();
    expect(await servedFingerprint(s.port)).toBe(fingerprint(second));
    const metrics = await registry.metrics();
    expect(metrics).toMatch(/certificate_loads_total\{result="invalid"\} [1-9]/);
    expect(metrics).toMatch(/certificate_loads_total\{result="loaded"\} 2/);
    expect(metrics).toContain(
      `certificate_expiry_timestamp_seconds ${new Date(new X509Certificate(second.cert).validTo).getTime() / 1000}`,
    );
  });

  it('is not ready without certificates, and becomes ready when they appear', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'certs-'));
    const s = await start(dir);
    expect(s.ready()).toBe(false);
    const pair = serving();
    writeAtomicWriterLayout(dir, { 'tls.crt': pair.cert, 'tls.key': pair.key });
    await eventually(() => s.ready());
    expect(await servedFingerprint(s.port)).toBe(fingerprint(pair));
  });

  it('refuses TLS older than 1.2', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'certs-'));
    const pair = serving();
    writeAtomicWriterLayout(dir, { 'tls.crt': pair.cert, 'tls.key': pair.key });
    const s = await start(dir);
    await expect(servedFingerprint(s.port, { minVersion: 'TLSv1', maxVersion: 'TLSv1.1' })).rejects.toThrow();
    expect(await servedFingerprint(s.port, { maxVersion: 'TLSv1.2' })).toBe(fingerprint(pair));
  });
});

describe('limits', () => {
  it('answers 413 to a body over the limit, and serves the next request', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'certs-'));
    const pair = serving();
    writeAtomicWriterLayout(dir, { 'tls.crt': pair.cert, 'tls.key': pair.key });
    const s = await start(dir);
    const post = (body: Buffer) =>
      new Promise<number>((resolve, reject) => {
        const req = https.request(
          { host: '127.0.0.1', port: s.port, path: '/mutate', method: 'POST', ca: ca.cert, agent: false },
          (res) => {
            res.resume();
            res.on('end', () => resolve(res.statusCode ?? 0));
          },
        );
        req.setHeader('content-type', 'application/json');
        req.on('error', reject);
        req.end(body);
      });
    expect(await post(Buffer.alloc(BODY_LIMIT + 1, 0x20))).toBe(413);
    expect(await post(Buffer.from('{}'))).toBe(400);
  });
});

describe('self-signed mode', () => {
  it('serves a certificate for the DNS names and 127.0.0.1, signed by the CA it writes', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'certs-')), 'nested');
    const s = await start(dir, { 'tls-mode': 'self-signed', 'self-signed-dns-names': ['webhook.ns.svc'] });
    expect(s.ready()).toBe(true);
    const caPem = readFileSync(join(dir, 'ca.crt'), 'utf8');
    const cert = new X509Certificate(readFileSync(join(dir, 'tls.crt')));
    expect(cert.subjectAltName).toContain('DNS:webhook.ns.svc');
    expect(cert.subjectAltName).toContain('IP Address:127.0.0.1');
    expect(await servedFingerprint(s.port, { ca: caPem })).toBe(cert.fingerprint256);
    expect(await servedFingerprint(s.port, { ca: caPem, servername: 'webhook.ns.svc' })).toBe(
      cert.fingerprint256,
    );
  });
});
