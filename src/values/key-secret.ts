// The cluster's digest key (docs/adr/0010-keyed-digests.md): 256 random bits in a Secret in the operator's
// namespace, created by whichever replica comes first and read by all the others, so every replica
// computes the same digests. The Secret holds `current` and, during a rotation, `previous`. Loaded once at
// start: until then lookups reject (the webhook admits without a digest) and readiness is false.
import { randomBytes } from 'node:crypto';
import { ApiError, type KubeClient } from '../kube/client.ts';
import { collectionPath, objectPath, Secrets } from '../kube/resources.ts';
import type { Logger } from '../log.ts';
import { errorMessage } from '../util/errors.ts';
import { isObject, str } from '../util/narrow.ts';
import { sleep } from '../util/sleep.ts';
import { DIGEST_KEY_BYTES, type DigestKeys, digestKey } from './digest.ts';

/** The Secret that holds the digest keys, in the operator's namespace (RBAC: get by this name, create). */
export const DIGEST_KEY_SECRET = 'helmrelease-autopilot-digest-key';

/** The keys in the Secret's data (base64 of the raw bytes): `current` required, `previous` optional. */
export function parseDigestKeySecret(raw: unknown): DigestKeys {
  const data = isObject(raw) && isObject(raw.data) ? raw.data : {};
  const bytes = (name: string) => {
    const b64 = str(data[name]);
    return b64 === undefined ? undefined : Buffer.from(b64, 'base64');
  };
  const current = bytes('current');
  if (!current) throw new Error(`Secret ${DIGEST_KEY_SECRET} has no data.current`);
  const previous = bytes('previous');
  const created = isObject(raw) && isObject(raw.metadata) ? str(raw.metadata.creationTimestamp) : undefined;
  const since = created === undefined ? Number.NaN : Date.parse(created);
  return {
    current: digestKey(current),
    ...(previous ? { previous: digestKey(previous) } : {}),
    ...(Number.isFinite(since) ? { since } : {}),
  };
}

/**
 * Creates the Secret with a fresh key; when it exists already (409: another replica, or an earlier run),
 * reads it instead, so two replicas racing end up with the same key.
 */
export async function loadOrCreateDigestKeys(client: KubeClient, namespace: string): Promise<DigestKeys> {
  try {
    const created = await client.create(collectionPath(Secrets, namespace), {
      apiVersion: 'v1',
      kind: 'Secret',
      type: 'Opaque',
      metadata: {
        name: DIGEST_KEY_SECRET,
        namespace,
        labels: {
          'app.kubernetes.io/name': 'helmrelease-autopilot',
          'app.kubernetes.io/component': 'digest-key',
        },
      },
      data: { current: randomBytes(DIGEST_KEY_BYTES).toString('base64') },
    });
    return parseDigestKeySecret(created);
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 409)) throw err;
  }
  return parseDigestKeySecret(await client.get(objectPath(Secrets, namespace, DIGEST_KEY_SECRET)));
}

export interface DigestKeyLoaderOptions {
  client: KubeClient;
  namespace: string;
  logger: Logger;
  /** Wait before the first retry, doubling up to maxRetryMs. */
  retryMs?: number;
  maxRetryMs?: number;
  /** The load itself (tests); default loadOrCreateDigestKeys. */
  load?: (client: KubeClient, namespace: string) => Promise<DigestKeys>;
}

/** Loads the keys in the background, retrying with backoff until it succeeds or is stopped. */
export class DigestKeyLoader {
  private readonly o: Required<DigestKeyLoaderOptions>;
  private keys: DigestKeys | undefined;
  private readonly stopping = new AbortController();
  private readonly done: Promise<DigestKeys | undefined>;
  private resolveDone: (k: DigestKeys | undefined) => void = () => {};

  constructor(o: DigestKeyLoaderOptions) {
    this.o = { retryMs: 500, maxRetryMs: 30_000, load: loadOrCreateDigestKeys, ...o };
    this.done = new Promise((resolve) => {
      this.resolveDone = resolve;
    });
  }

  start(): void {
    void this.run();
  }

  /** The keys, once loaded. */
  current(): DigestKeys | undefined {
    return this.keys;
  }

  loaded(): boolean {
    return this.keys !== undefined;
  }

  /** Resolves with the keys once loaded, or undefined when stopped before. */
  whenLoaded(): Promise<DigestKeys | undefined> {
    return this.done;
  }

  stop(): void {
    this.stopping.abort();
    this.resolveDone(this.keys);
  }

  private async run(): Promise<void> {
    const { namespace, logger } = this.o;
    let wait = this.o.retryMs;
    while (!this.stopping.signal.aborted) {
      try {
        const keys = await this.o.load(this.o.client, namespace);
        if (this.stopping.signal.aborted) break;
        this.keys = keys;
        logger.info(
          {
            secret: `${namespace}/${DIGEST_KEY_SECRET}`,
            keyId: keys.current.id,
            previousKeyId: keys.previous?.id,
          },
          'digest key loaded',
        );
        this.resolveDone(keys);
        return;
      } catch (err) {
        logger.warn(
          { secret: `${namespace}/${DIGEST_KEY_SECRET}`, err: errorMessage(err), retryInMs: wait },
          'cannot load the digest key: no digests until it is loaded',
        );
        await sleep(wait, this.stopping.signal);
        wait = Math.min(wait * 2, this.o.maxRetryMs);
      }
    }
    this.resolveDone(undefined);
  }
}
