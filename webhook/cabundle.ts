// Self-signed mode's promise: our MutatingWebhookConfiguration carries our CA in every webhook's caBundle,
// not only right after start. One object is watched (fieldSelector metadata.name=<name>, which RBAC grants
// by resourceNames), and whenever a webhook's caBundle differs from ours (the manifest was re-applied, the
// object recreated) it is patched back. Consecutive re-patches back off, so a second writer of the
// caBundle (a cainjector, another CA) cannot make us hammer the API server.
import { isNotFound, type KubeClient } from '../src/kube/client.ts';
import { Informer } from '../src/kube/informer.ts';
import { MutatingWebhookConfigurations } from '../src/kube/resources.ts';
import type { Logger } from '../src/log.ts';
import { errorMessage } from '../src/util/errors.ts';
import { array, isObject, str } from '../src/util/narrow.ts';
import { sleep } from '../src/util/sleep.ts';
import { patchCABundle } from './selfsigned.ts';

/** A re-patch needed within this long of the previous one counts as a fight and waits longer. */
const FIGHT_WINDOW_MS = 60_000;
const MAX_DELAY_MS = 300_000;

/** Delay before the n-th consecutive re-patch (0 for the first): 0, 1 s, 2 s, 4 s ... at most 5 min. */
export function repatchDelay(streak: number): number {
  return streak === 0 ? 0 : Math.min(1000 * 2 ** (streak - 1), MAX_DELAY_MS);
}

/** The caBundle (base64, as stored) of every webhook of a MutatingWebhookConfiguration. */
export function caBundles(raw: unknown): string[] {
  return array(isObject(raw) ? raw.webhooks : undefined)
    .filter(isObject)
    .map((w) => (isObject(w.clientConfig) ? (str(w.clientConfig.caBundle) ?? '') : ''));
}

export interface CABundleKeeperOptions {
  client: KubeClient;
  /** Name of our MutatingWebhookConfiguration. */
  name: string;
  caPem: string;
  logger: Logger;
  /** Watch and restore the caBundle (true), or write it once and stop (a CA of this replica alone). */
  watch: boolean;
}

export interface CABundleKeeper {
  /** Patches done so far (for tests and logs). */
  patches(): number;
  stop(): Promise<void>;
}

/**
 * Writes our caBundle whenever asked (`kick`), one patch at a time: consecutive re-patches within the fight
 * window back off, failed writes retry with their own backoff. Asked once at the start in either mode.
 */
class CABundlePatcher {
  patches = 0;
  private readonly o: CABundleKeeperOptions;
  private readonly log: Logger;
  private readonly signal: AbortSignal;
  // Written once at start in either mode: the watch adds restoring, it is not needed for the first write
  // (nor does the first write wait for the watch's RBAC).
  private wanted = true;
  private wake: (() => void) | undefined;
  private streak = 0;
  private lastPatch = Number.NEGATIVE_INFINITY;
  private failures = 0;

  constructor(o: CABundleKeeperOptions, log: Logger, signal: AbortSignal) {
    this.o = o;
    this.log = log;
    this.signal = signal;
    signal.addEventListener('abort', () => this.wake?.(), { once: true });
  }

  kick(): void {
    this.wanted = true;
    this.wake?.();
  }

  async run(): Promise<void> {
    while (!this.signal.aborted) {
      if (!this.wanted) {
        await new Promise<void>((resolve) => {
          this.wake = resolve;
        });
        this.wake = undefined;
        continue;
      }
      await this.backOff();
      if (this.signal.aborted) break;
      this.wanted = false;
      if (await this.patchOnce()) return;
    }
  }

  /** Waits before a re-patch that comes soon after the previous one (someone else keeps changing it). */
  private async backOff(): Promise<void> {
    this.streak = Date.now() - this.lastPatch < FIGHT_WINDOW_MS ? this.streak + 1 : 0;
    if (this.streak >= 3)
      this.log.warn(
        { streak: this.streak },
        'the caBundle keeps being changed by someone else; re-patching more slowly',
      );
    await sleep(repatchDelay(this.streak), this.signal);
  }

  /** One write; true when the keeper is done (written once, not watching). */
  private async patchOnce(): Promise<boolean> {
    try {
      const changed = await patchCABundle(this.o.client, this.o.name, this.o.caPem);
      this.failures = 0;
      if (changed > 0) {
        this.patches++;
        this.lastPatch = Date.now();
      }
      this.log.info({ changed }, 'caBundle is current');
      return !this.o.watch;
    } catch (err) {
      // Gone while watched: its creation will be reported. Otherwise (not there yet when written once,
      // the API server away) try again.
      if (this.o.watch && isNotFound(err)) {
        this.log.info('webhook configuration not found; waiting for it to be created');
        return false;
      }
      const delay = Math.min(1000 * 2 ** this.failures++, 30_000);
      this.log.warn({ err: errorMessage(err), retryInMs: delay }, 'cannot write caBundle; retrying');
      this.wanted = true;
      await sleep(delay, this.signal);
      return false;
    }
  }
}

export function keepCABundle(o: CABundleKeeperOptions): CABundleKeeper {
  const log = o.logger.child({ webhookConfiguration: o.name });
  const ours = Buffer.from(o.caPem).toString('base64');
  const stopping = new AbortController();
  const patcher = new CABundlePatcher(o, log, stopping.signal);
  const kick = () => patcher.kick();

  const informer = o.watch
    ? new Informer<string[]>({
        client: o.client,
        resource: MutatingWebhookConfigurations,
        fieldSelector: `metadata.name=${o.name}`,
        transform: caBundles,
        logger: log,
      })
    : undefined;
  informer?.on({
    add: (c) => c.value.some((b) => b !== ours) && kick(),
    update: (_old, c) => c.value.some((b) => b !== ours) && kick(),
  });

  const loop = patcher.run();
  informer?.start();

  return {
    patches: () => patcher.patches,
    async stop() {
      stopping.abort();
      await informer?.stop();
      await loop;
    },
  };
}
