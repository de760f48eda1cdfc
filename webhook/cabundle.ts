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

export function keepCABundle(o: CABundleKeeperOptions): CABundleKeeper {
  const log = o.logger.child({ webhookConfiguration: o.name });
  const ours = Buffer.from(o.caPem).toString('base64');
  const stopping = new AbortController();
  // Written once at start in either mode: the watch adds restoring, it is not needed for the first write
  // (nor does the first write wait for the watch's RBAC).
  let wanted = true;
  let wake: (() => void) | undefined;
  let patches = 0;
  const kick = () => {
    wanted = true;
    wake?.();
  };
  stopping.signal.addEventListener('abort', () => wake?.(), { once: true });

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

  const loop = (async () => {
    let streak = 0;
    let lastPatch = Number.NEGATIVE_INFINITY;
    let failures = 0;
    while (!stopping.signal.aborted) {
      if (!wanted) {
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
        wake = undefined;
        continue;
      }
      streak = Date.now() - lastPatch < FIGHT_WINDOW_MS ? streak + 1 : 0;
      if (streak >= 3)
        log.warn({ streak }, 'the caBundle keeps being changed by someone else; re-patching more slowly');
      await sleep(repatchDelay(streak), stopping.signal);
      if (stopping.signal.aborted) break;
      wanted = false;
      try {
        const changed = await patchCABundle(o.client, o.name, o.caPem);
        failures = 0;
        if (changed > 0) {
          patches++;
          lastPatch = Date.now();
        }
        log.info({ changed }, 'caBundle is current');
        if (!o.watch) return;
      } catch (err) {
        // Gone while watched: its creation will be reported. Otherwise (not there yet when written once,
        // the API server away) try again.
        if (o.watch && isNotFound(err)) {
          log.info('webhook configuration not found; waiting for it to be created');
          continue;
        }
        const delay = Math.min(1000 * 2 ** failures++, 30_000);
        log.warn({ err: errorMessage(err), retryInMs: delay }, 'cannot write caBundle; retrying');
        wanted = true;
        await sleep(delay, stopping.signal);
      }
    }
  })();
  informer?.start();

  return {
    patches: () => patches,
    async stop() {
      stopping.abort();
      await informer?.stop();
      await loop;
    },
  };
}
