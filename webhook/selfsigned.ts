// Self-signed mode, for local runs and installs without cert-manager: a CA and a serving certificate for
// the service DNS names and 127.0.0.1, written into the certificate directory in the layout the watcher
// reads, renewed from the same CA before it expires, and the CA bundle written into our
// MutatingWebhookConfiguration (cabundle.ts keeps it there).
import { X509Certificate } from 'node:crypto';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ApiError, isNotFound, type KubeClient } from '../src/kube/client.ts';
import { collectionPath, MutatingWebhookConfigurations, objectPath, Secrets } from '../src/kube/resources.ts';
import type { Logger } from '../src/log.ts';
import { createCA, issueCertificate, type KeyPair } from '../src/tls/certs.ts';
import { errorMessage } from '../src/util/errors.ts';
import { array, isObject, str } from '../src/util/narrow.ts';
import { sleep } from '../src/util/sleep.ts';
import { CERT_FILE, KEY_FILE } from './certwatcher.ts';

export const CA_FILE = 'ca.crt';
const LOOPBACK = '127.0.0.1';

export interface SelfSigned {
  ca: KeyPair;
  serving: KeyPair;
}

/** Lifetime of a self-signed serving certificate unless the caller sets one (tests use seconds). */
export const SERVING_VALIDITY_MS = 365 * 86_400_000;

/** A serving certificate for `hosts` (DNS names or IPs) plus 127.0.0.1 from `ca` (default: a fresh CA). */
export function createSelfSigned(
  hosts: readonly string[],
  ca: KeyPair = createCA('helmrelease-autopilot-webhook-ca'),
  validityMs = SERVING_VALIDITY_MS,
): SelfSigned {
  const all = [...new Set([...hosts, LOOPBACK])];
  const dns = all.find((h) => !/^[\d.:]+$/.test(h));
  const serving = issueCertificate(ca, {
    commonName: dns ?? LOOPBACK,
    hosts: all,
    usage: 'server',
    validityMs,
  });
  return { ca, serving };
}

/** When a certificate issued at `issuedAt` should be replaced: after two thirds of its remaining lifetime. */
export function renewalTime(issuedAt: number, notAfter: number): number {
  return issuedAt + Math.max(0, notAfter - issuedAt) * (2 / 3);
}

/** Longest single wait of the renewal loop (Node's timers overflow past 2^31 ms, about 24.8 days). */
const MAX_WAIT_MS = 86_400_000;
const RETRY_MS = 10_000;

export interface RenewalOptions {
  hosts: readonly string[];
  ca: KeyPair;
  dir: string;
  validityMs: number;
  /** The pair in use and when it was issued. */
  current: SelfSigned;
  issuedAt: number;
  logger: Logger;
  /** Called after a new pair was written (the server swaps it in). */
  onRenewed: (s: SelfSigned) => Promise<void>;
  signal: AbortSignal;
  now?: () => number;
}

/**
 * Re-issues the serving certificate from the same CA at two thirds of its lifetime, writes it into the
 * certificate directory and hands it over; until `signal` aborts. A failed write is retried.
 */
export async function renewServingCertificate(o: RenewalOptions): Promise<void> {
  const now = o.now ?? Date.now;
  let notAfter = new Date(new X509Certificate(o.current.serving.cert).validTo).getTime();
  let issuedAt = o.issuedAt;
  while (!o.signal.aborted) {
    const wait = renewalTime(issuedAt, notAfter) - now();
    if (wait > 0) {
      await sleep(Math.min(wait, MAX_WAIT_MS), o.signal);
      continue;
    }
    try {
      const at = now();
      const next = createSelfSigned(o.hosts, o.ca, o.validityMs);
      await writeCertDir(o.dir, next);
      await o.onRenewed(next);
      issuedAt = at;
      notAfter = new Date(new X509Certificate(next.serving.cert).validTo).getTime();
      o.logger.info(
        { notAfter: new Date(notAfter).toISOString() },
        'self-signed serving certificate renewed',
      );
    } catch (err) {
      o.logger.warn({ err: errorMessage(err), retryInMs: RETRY_MS }, 'cannot renew the serving certificate');
      await sleep(RETRY_MS, o.signal);
    }
  }
}

/** Writes tls.crt, tls.key and ca.crt; each file is replaced by a rename, so readers never see half a file. */
export async function writeCertDir(dir: string, s: SelfSigned): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const put = async (name: string, content: string, mode: number) => {
    const tmp = join(dir, `.${name}.tmp`);
    await writeFile(tmp, content, { mode });
    await rename(tmp, join(dir, name));
  };
  await put(CA_FILE, s.ca.cert, 0o644);
  await put(KEY_FILE, s.serving.key, 0o600);
  await put(CERT_FILE, s.serving.cert, 0o644);
}

const STRATEGIC_MERGE_PATCH = 'application/strategic-merge-patch+json';

/**
 * Sets clientConfig.caBundle of every webhook of the named MutatingWebhookConfiguration to `caPem`.
 * Writes nothing when all of them already carry it; returns how many webhooks were changed.
 */
export async function patchCABundle(client: KubeClient, name: string, caPem: string): Promise<number> {
  const path = objectPath(MutatingWebhookConfigurations, undefined, name);
  const current = await client.get(path);
  const bundle = Buffer.from(caPem).toString('base64');
  const stale = array(isObject(current) ? current.webhooks : undefined)
    .filter(isObject)
    .filter((w) => !isObject(w.clientConfig) || w.clientConfig.caBundle !== bundle)
    .map((w) => str(w.name))
    .filter((n): n is string => n !== undefined);
  if (stale.length === 0) return 0;
  // Strategic merge keyed by webhook name: touches only caBundle, keeps every other field and webhook.
  await client.request({
    method: 'PATCH',
    path,
    contentType: STRATEGIC_MERGE_PATCH,
    body: { webhooks: stale.map((n) => ({ name: n, clientConfig: { caBundle: bundle } })) },
  });
  return stale.length;
}

/** Secret in the operator's namespace that holds the self-signed CA, so every replica serves under one CA. */
export const CA_SECRET_NAME = 'helmrelease-autopilot-webhook-ca';

/**
 * The shared CA: read from the Secret, or created there by whichever replica comes first (a create that
 * loses the race reads the winner's CA instead).
 */
export async function loadOrCreateCA(client: KubeClient, namespace: string): Promise<KeyPair> {
  const path = objectPath(Secrets, namespace, CA_SECRET_NAME);
  const fromSecret = (raw: unknown): KeyPair | undefined => {
    const data = isObject(raw) && isObject(raw.data) ? raw.data : {};
    const cert = str(data['tls.crt']);
    const key = str(data['tls.key']);
    return cert && key
      ? { cert: Buffer.from(cert, 'base64').toString(), key: Buffer.from(key, 'base64').toString() }
      : undefined;
  };
  try {
    const found = fromSecret(await client.get(path));
    if (found) return found;
    throw new Error(`Secret ${namespace}/${CA_SECRET_NAME} has no tls.crt/tls.key`);
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
  const ca = createCA('helmrelease-autopilot-webhook-ca');
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  try {
    await client.create(collectionPath(Secrets, namespace), {
      apiVersion: 'v1',
      kind: 'Secret',
      type: 'kubernetes.io/tls',
      metadata: { name: CA_SECRET_NAME, namespace },
      data: { 'tls.crt': b64(ca.cert), 'tls.key': b64(ca.key) },
    });
    return ca;
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 409)) throw err;
    const winner = fromSecret(await client.get(path));
    if (!winner) throw new Error(`Secret ${namespace}/${CA_SECRET_NAME} has no tls.crt/tls.key`);
    return winner;
  }
}
