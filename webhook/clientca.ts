// Who may call the webhook (--webhook-client-ca): the PEM bundle of CAs whose client certificates the TLS
// server accepts. Read once at start (a bundle that cannot be read or parsed stops start-up: a security
// setting must not fail open), then watched like the serving certificate: the directory is watched (a
// mounted ConfigMap or Secret swaps a "..data" symlink), the file is polled as a safety net, and a changed
// bundle replaces the old one only when it parses; otherwise the old one stays in use.
import { X509Certificate } from 'node:crypto';
import { type FSWatcher, readFileSync, watch } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { createSecureContext } from 'node:tls';
import type { Logger } from '../src/log.ts';
import { errorMessage } from '../src/util/errors.ts';

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

export type BundleCheck = { ok: true; subjects: string[] } | { ok: false; error: string };

/** Checks that `pem` holds at least one certificate, every one of them a CA, usable as a TLS trust store. */
export function validateCABundle(pem: string): BundleCheck {
  const blocks = pem.match(PEM_CERTIFICATE) ?? [];
  if (blocks.length === 0) return { ok: false, error: 'no PEM certificate in the bundle' };
  try {
    const subjects: string[] = [];
    for (const block of blocks) {
      const x509 = new X509Certificate(block);
      if (!x509.ca) return { ok: false, error: `${x509.subject} is not a CA certificate` };
      subjects.push(x509.subject.replace(/\n/g, ', '));
    }
    createSecureContext({ ca: pem });
    return { ok: true, subjects };
  } catch (err) {
    return { ok: false, error: errorMessage(err) };
  }
}

export interface ClientCAWatcherOptions {
  path: string;
  pollIntervalMs: number;
  logger: Logger;
  /** Called with every new valid bundle after the first. */
  onChange: (pem: string) => void;
}

export class ClientCAWatcher {
  private readonly o: ClientCAWatcherOptions;
  private readonly log: Logger;
  private pem: string;
  private watcher: FSWatcher | undefined;
  private poll: NodeJS.Timeout | undefined;

  /** Reads and checks the bundle now; throws when it cannot be used. */
  constructor(options: ClientCAWatcherOptions) {
    this.o = options;
    this.log = options.logger.child({ clientCA: options.path });
    let pem: string;
    try {
      pem = readFileSync(options.path, 'utf8');
    } catch (err) {
      throw new Error(`--webhook-client-ca ${options.path}: ${errorMessage(err)}`);
    }
    const check = validateCABundle(pem);
    if (!check.ok) throw new Error(`--webhook-client-ca ${options.path}: ${check.error}`);
    this.pem = pem;
    this.log.info({ subjects: check.subjects }, 'webhook clients must present a certificate from these CAs');
  }

  /** The bundle in use. */
  current(): string {
    return this.pem;
  }

  start(): void {
    try {
      this.watcher = watch(dirname(this.o.path), { persistent: false }, () => void this.reload());
      this.watcher.on('error', () => this.watcher?.close());
    } catch (err) {
      this.log.warn({ err: errorMessage(err) }, 'cannot watch the client CA directory; relying on polling');
    }
    this.poll = setInterval(() => void this.reload(), this.o.pollIntervalMs);
    this.poll.unref();
  }

  stop(): void {
    this.watcher?.close();
    if (this.poll) clearInterval(this.poll);
  }

  /** Re-reads the bundle; swaps it in when it changed and is valid. */
  async reload(): Promise<void> {
    let pem: string;
    try {
      pem = await readFile(this.o.path, 'utf8');
    } catch (err) {
      this.log.warn({ err: errorMessage(err) }, 'cannot read the client CA bundle; keeping the loaded one');
      return;
    }
    if (pem === this.pem) return;
    const check = validateCABundle(pem);
    if (!check.ok) {
      this.log.warn({ error: check.error }, 'invalid client CA bundle; keeping the loaded one');
      return;
    }
    this.pem = pem;
    this.log.info({ subjects: check.subjects }, 'client CA bundle reloaded');
    this.o.onChange(pem);
  }
}
