// Hot reload of the serving certificate, modelled on controller-runtime's certwatcher: watch the directory
// (kubelet and cert-manager swap a "..data" symlink, so the files themselves are never written in place),
// poll as a safety net, swap only when the bytes changed and the new pair is valid, keep the old pair otherwise.
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { type FSWatcher, watch } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createSecureContext } from 'node:tls';
import type { Logger } from '../src/log.ts';
import { errorMessage } from '../src/util/errors.ts';

export const CERT_FILE = 'tls.crt';
export const KEY_FILE = 'tls.key';

export interface CertPair {
  cert: string;
  key: string;
  notAfter: Date;
  subject: string;
  fingerprint256: string;
}

export type PairCheck = { ok: true; pair: CertPair } | { ok: false; error: string };

/** Checks that cert and key parse and belong together, the way a TLS server would load them. */
export function validatePair(cert: string, key: string): PairCheck {
  try {
    const x509 = new X509Certificate(cert);
    if (!x509.checkPrivateKey(createPrivateKey(key)))
      return { ok: false, error: 'private key does not match certificate' };
    createSecureContext({ cert, key });
    return {
      ok: true,
      pair: {
        cert,
        key,
        notAfter: new Date(x509.validTo),
        subject: x509.subject,
        fingerprint256: x509.fingerprint256,
      },
    };
  } catch (err) {
    return { ok: false, error: errorMessage(err) };
  }
}

export interface CertWatcherOptions {
  dir: string;
  pollIntervalMs: number;
  logger: Logger;
  /** Called with every new valid pair (the first one too). */
  onChange: (pair: CertPair) => void;
  /** Called after every read that found a changed but invalid pair. */
  onInvalid?: (error: string) => void;
}

export class CertWatcher {
  private readonly o: CertWatcherOptions;
  private readonly log: Logger;
  private pair: CertPair | undefined;
  private lastBytes = '';
  private watcher: FSWatcher | undefined;
  private poll: NodeJS.Timeout | undefined;
  private reloading: Promise<void> | undefined;
  private again = false;
  private stopped = false;

  constructor(options: CertWatcherOptions) {
    this.o = options;
    this.log = options.logger.child({ certDir: options.dir });
  }

  /** The pair in use, once one valid pair was read. */
  current(): CertPair | undefined {
    return this.pair;
  }

  /** Reads the files once, then watches and polls. Missing files are not an error: they may appear later. */
  async start(): Promise<void> {
    await this.reload();
    this.watchDir();
    this.poll = setInterval(() => void this.reload(), this.o.pollIntervalMs);
    this.poll.unref();
  }

  stop(): void {
    this.stopped = true;
    this.watcher?.close();
    if (this.poll) clearInterval(this.poll);
  }

  /** Re-reads the files now; concurrent calls coalesce into one more read after the running one. */
  reload(): Promise<void> {
    if (this.reloading) {
      this.again = true;
      return this.reloading;
    }
    this.reloading = (async () => {
      do {
        this.again = false;
        await this.readOnce();
      } while (this.again && !this.stopped);
      this.reloading = undefined;
    })();
    return this.reloading;
  }

  private watchDir(): void {
    try {
      this.watcher = watch(this.o.dir, { persistent: false }, () => void this.reload());
      this.watcher.on('error', (err) => {
        // The directory can vanish and come back (a remount); the poll keeps going meanwhile.
        this.log.warn({ err: errorMessage(err) }, 'certificate directory watch failed; relying on polling');
        this.watcher?.close();
        this.watcher = undefined;
      });
    } catch (err) {
      this.log.warn({ err: errorMessage(err) }, 'cannot watch certificate directory; relying on polling');
    }
  }

  private async readOnce(): Promise<void> {
    if (!this.watcher && !this.stopped && this.poll) this.watchDir();
    let cert: string;
    let key: string;
    try {
      [cert, key] = await Promise.all([
        readFile(join(this.o.dir, CERT_FILE), 'utf8'),
        readFile(join(this.o.dir, KEY_FILE), 'utf8'),
      ]);
    } catch (err) {
      if (!this.pair) this.log.debug({ err: errorMessage(err) }, 'no certificate yet');
      else
        this.log.warn({ err: errorMessage(err) }, 'cannot read certificate files; keeping the loaded pair');
      return;
    }
    const bytes = `${cert}\0${key}`;
    if (bytes === this.lastBytes) return;
    const check = validatePair(cert, key);
    if (!check.ok) {
      // Also the normal transient state while a writer replaces the two files one after the other.
      this.log.warn({ err: check.error }, 'invalid certificate pair; keeping the loaded pair');
      this.o.onInvalid?.(check.error);
      return;
    }
    this.lastBytes = bytes;
    this.pair = check.pair;
    this.log.info(
      {
        subject: check.pair.subject,
        notAfter: check.pair.notAfter.toISOString(),
        fingerprint: check.pair.fingerprint256,
      },
      'serving certificate loaded',
    );
    this.o.onChange(check.pair);
  }
}
