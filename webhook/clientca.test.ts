import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { createCA, issueCertificate, type KeyPair } from '../src/tls/certs.ts';
import { testLogger } from '../test/support/log.ts';
import { postOverTLS } from '../test/support/tls-client.ts';
import {
  admissionReview,
  helmRelease,
  memoryLookup,
  writeAtomicWriterLayout,
} from '../test/support/webhook.ts';
import { validateCABundle } from './clientca.ts';
import { startWebhookServer, type WebhookServer } from './server.ts';

const servingCA = createCA('serving-ca');
const apiserverCA = createCA('apiserver-webhook-client-ca');
const otherCA = createCA('someone-else');
const client = (ca: KeyPair, cn = 'kube-apiserver') =>
  issueCertificate(ca, { commonName: cn, usage: 'client' });
const review = admissionReview('uid-forged', helmRelease('a', [{ kind: 'Secret', name: 's' }]));

describe('validateCABundle', () => {
  it.each<[string, string, boolean]>([
    ['one CA', apiserverCA.cert, true],
    ['two CAs', `${apiserverCA.cert}\n${otherCA.cert}`, true],
    ['a leaf certificate', client(apiserverCA).cert, false],
    ['a CA and a leaf', `${apiserverCA.cert}${client(apiserverCA).cert}`, false],
    ['no PEM block', 'not a certificate', false],
    ['an empty file', '', false],
    ['a broken PEM block', '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n', false],
  ])('%s: usable = %s', (_what, pem, ok) => {
    expect(validateCABundle(pem).ok).toBe(ok);
  });
});

const started: WebhookServer[] = [];
afterEach(async () => {
  for (const s of started.splice(0)) await s.close();
});

async function start(clientCAPath: string | undefined, registry = new Registry()) {
  const dir = mkdtempSync(join(tmpdir(), 'clientca-'));
  const pair = issueCertificate(servingCA, { commonName: 'webhook', hosts: ['127.0.0.1'], usage: 'server' });
  writeAtomicWriterLayout(join(dir, 'certs'), { 'tls.crt': pair.cert, 'tls.key': pair.key });
  const s = await startWebhookServer({
    config: {
      'bind-address': '127.0.0.1',
      'webhook-port': 0,
      'tls-mode': 'files',
      'cert-dir': join(dir, 'certs'),
      'cert-poll-interval': 60_000,
      'self-signed-dns-names': [],
      'webhook-configuration': '',
      'webhook-lookup-timeout': 500,
      ...(clientCAPath !== undefined ? { 'webhook-client-ca': clientCAPath } : {}),
    },
    lookup: memoryLookup({ 'Secret/ns/s': { data: { 'values.yaml': 'cGFzc3dvcmQ6IGd1ZXNz' } } }),
    logger: testLogger(),
    registry,
  });
  started.push(s);
  return s;
}

function caFile(...cas: KeyPair[]): string {
  const dir = mkdtempSync(join(tmpdir(), 'clientca-bundle-'));
  writeAtomicWriterLayout(dir, { 'ca.crt': cas.map((c) => c.cert).join('\n') });
  return join(dir, 'ca.crt');
}

describe('--webhook-client-ca', () => {
  it('without it, anyone who reaches the port gets an answer (the forged review is served)', async () => {
    const s = await start(undefined);
    const outcome = await postOverTLS(s.port, review, { ca: servingCA.cert });
    expect(outcome).toMatchObject({ status: 200 });
  });

  it('with it, a client without a certificate, or with one from another CA, is refused at the TLS layer', async () => {
    const registry = new Registry();
    const s = await start(caFile(apiserverCA), registry);
    const none = await postOverTLS(s.port, review, { ca: servingCA.cert });
    const foreign = await postOverTLS(s.port, review, { ca: servingCA.cert, client: client(otherCA) });
    const good = await postOverTLS(s.port, review, { ca: servingCA.cert, client: client(apiserverCA) });
    expect(none).toHaveProperty('refused');
    expect(foreign).toHaveProperty('refused');
    expect(good).toMatchObject({ status: 200 });
    expect(JSON.parse((good as { body: string }).body).response).toMatchObject({
      uid: 'uid-forged',
      allowed: true,
    });
    const metrics = await registry.metrics();
    expect(metrics).toMatch(/tls_handshake_errors_total 2\b/);
    // The refused requests never reached the handler.
    expect(metrics).not.toMatch(/admission_duration_seconds_count\{[^}]*\} [2-9]/);
  });

  it('reloads the bundle when the mounted file changes, and keeps it when the new one is unusable', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'clientca-bundle-'));
    writeAtomicWriterLayout(dir, { 'ca.crt': apiserverCA.cert });
    const s = await start(join(dir, 'ca.crt'));
    const post = (c: KeyPair) => postOverTLS(s.port, review, { ca: servingCA.cert, client: c });
    const before = client(apiserverCA);
    expect(await post(before)).toMatchObject({ status: 200 });

    const rotatedCA = createCA('rotated-apiserver-client-ca');
    const after = client(rotatedCA);
    writeAtomicWriterLayout(dir, { 'ca.crt': rotatedCA.cert });
    await expect.poll(async () => 'status' in (await post(after)), { timeout: 5000 }).toBe(true);
    expect(await post(before)).toHaveProperty('refused');

    writeAtomicWriterLayout(dir, { 'ca.crt': 'garbage' });
    await new Promise((r) => setTimeout(r, 300));
    expect(await post(after)).toMatchObject({ status: 200 });
  });

  it('stops start-up when the bundle cannot be read or holds no CA (it must not fail open)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'clientca-bad-'));
    writeFileSync(join(dir, 'leaf.crt'), client(apiserverCA).cert);
    await expect(start(join(dir, 'missing.crt'))).rejects.toThrow(/--webhook-client-ca/);
    await expect(start(join(dir, 'leaf.crt'))).rejects.toThrow(/not a CA/);
  });
});
