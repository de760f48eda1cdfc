// Starts the roles this process runs and reports their readiness:
// - the caches (every replica: the webhook reads them, and a follower that takes over starts warm);
// - the webhook (every replica);
// - the reconcilers (triggers, retries) only while this replica holds the leader Lease.
// Losing the Lease stops the reconcilers at once and ends the process (as controller-runtime does), so a
// restarted replica rejoins as a follower with fresh state.

import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Registry } from 'prom-client';
import { TokenBucket } from '../../controller/queue.ts';
import { startRetryController } from '../../controller/retries/controller.ts';
import { startTriggerController } from '../../controller/triggers/controller.ts';
import { startWebhookServer } from '../../webhook/server.ts';
import type { Config } from '../config.ts';
import { createCaches } from '../kube/caches.ts';
import type { KubeClient } from '../kube/client.ts';
import { createEventRecorder } from '../kube/events.ts';
import type { Logger } from '../log.ts';
import { LeaderElector } from './leader.ts';
import type { ReadinessCheck } from './ops-server.ts';

export interface RoleContext {
  config: Config;
  client: KubeClient;
  log: Logger;
  registry: Registry;
  /** The operator's own namespace. */
  namespace: string;
  /** Called when the process must end (leadership lost): main shuts down with this exit code. */
  exit: (code: number, why: string) => void;
}

export interface Roles {
  checks: ReadinessCheck[];
  /** Stops the roles: the webhook stops accepting, the reconcilers drain, the Lease is released. */
  stop(): Promise<void>;
}

export async function startRoles(ctx: RoleContext): Promise<Roles> {
  const { config, client, log, registry } = ctx;
  const watchNamespace = config['watch-namespace'];
  const caches = createCaches({
    client,
    logger: log,
    compatLinks: config['compat-trigger-operator'],
    ...(watchNamespace ? { namespace: watchNamespace } : {}),
  });
  caches.start();
  const checks: ReadinessCheck[] = [{ name: 'caches', ready: () => caches.hasSynced() }];
  const stops: (() => Promise<void>)[] = [() => caches.stop()];

  if (config.reconciler) {
    const reconcilers = reconcilerRole(ctx, caches);
    if (config['leader-elect']) {
      const identity = `${hostname()}_${randomBytes(4).toString('hex')}`;
      let shuttingDown = false;
      const elector = new LeaderElector({
        client,
        namespace: ctx.namespace,
        name: config['lease-name'],
        identity,
        leaseDurationMs: config['lease-duration'],
        renewDeadlineMs: config['lease-renew-deadline'],
        retryPeriodMs: config['lease-retry-period'],
        log,
        onStartedLeading: () => reconcilers.start(),
        onStoppedLeading: async () => {
          await reconcilers.stop();
          if (!shuttingDown) ctx.exit(1, 'leadership lost');
        },
      });
      log.info({ identity, lease: `${ctx.namespace}/${config['lease-name']}` }, 'campaigning for leadership');
      elector.start();
      stops.push(async () => {
        shuttingDown = true;
        await elector.stop();
      });
    } else {
      reconcilers.start();
      stops.push(() => reconcilers.stop());
    }
  }

  if (config.webhook) {
    const server = await startWebhookServer({
      config,
      lookup: caches.values,
      logger: log,
      registry,
      client,
      namespace: ctx.namespace,
    });
    checks.push({ name: 'webhook', ready: () => server.ready() });
    stops.push(() => server.close());
  }

  return {
    checks,
    async stop() {
      // Last started, first stopped: webhook, then reconcilers and Lease, then caches.
      for (const stop of stops.reverse()) await stop();
    },
  };
}

/** The reconcilers as one unit that starts once caches are synced and stops (draining) on demand. */
function reconcilerRole(ctx: RoleContext, caches: ReturnType<typeof createCaches>) {
  const { config, client, log, registry } = ctx;
  // One write budget and one event recorder for both reconcilers.
  const writeLimiter = new TokenBucket(config['write-qps'], config['write-burst']);
  const events = createEventRecorder({ client, logger: log });
  const watchNamespace = config['watch-namespace'];
  let running: { stop(): Promise<void> }[] = [];
  let started = false;
  return {
    start() {
      if (started) return;
      started = true;
      running.push(
        startTriggerController({
          client,
          caches,
          config,
          logger: log,
          registry,
          events,
          writeLimiter,
          ...(watchNamespace ? { inScope: (ns: string) => ns === watchNamespace } : {}),
        }),
      );
      if (config.retries) {
        running.push(
          startRetryController({ client, caches, config, logger: log, registry, events, writeLimiter }),
        );
      }
    },
    async stop() {
      const r = running;
      running = [];
      await Promise.all(r.map((c) => c.stop()));
    },
  };
}
