// Starts the roles this process runs and reports their readiness:
// - the digest key (every replica; loaded from its Secret with retries: until then the webhook admits
//   without a digest, readiness is false and the reconcilers wait);
// - the caches (every replica: the webhook reads them, and a follower that takes over starts warm);
// - the webhook (every replica);
// - the reconcilers (triggers, retries) only while this replica holds the leader Lease.
// Losing the Lease stops the reconcilers at once and ends the process (as controller-runtime does), so a
// restarted replica rejoins as a follower with fresh state.

import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { Gauge, type Registry } from 'prom-client';
import { TokenBucket } from '../../controller/queue.ts';
import { startRetryController } from '../../controller/retries/controller.ts';
import { startRolloutBudget } from '../../controller/rollout.ts';
import { startTriggerController } from '../../controller/triggers/controller.ts';
import { type Config, fluxWatchMatcher } from '../../src/config.ts';
import { createCaches } from '../../src/kube/caches.ts';
import type { KubeClient } from '../../src/kube/client.ts';
import { createEventRecorder } from '../../src/kube/events.ts';
import { LeaderElector } from '../../src/kube/leader.ts';
import type { Logger } from '../../src/log.ts';
import { type NamespaceScope, namespaceScope } from '../../src/scope.ts';
import { DigestKeyLoader } from '../../src/values/key-secret.ts';
import { startWebhookServer } from '../../webhook/server.ts';
import type { ReadinessCheck } from './ops-server.ts';

export interface RoleContext {
  config: Config;
  client: KubeClient;
  log: Logger;
  registry: Registry;
  /** This replica's name in Events (reportingInstance): the pod name ($HOSTNAME), when known. */
  instance?: string;
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
  // One scope for the webhook and both reconcilers; the caches watch what it needs.
  const scope = namespaceScope(config);
  const digestKeys = new DigestKeyLoader({ client, namespace: config.namespace, logger: log });
  digestKeys.start();
  const selector = config['watch-label-selector'];
  const caches = createCaches({
    client,
    logger: log,
    digestKeys: () => digestKeys.current(),
    compatLinks: config['compat-trigger-operator'],
    namespaces: scope.watched,
    ...(selector ? { releaseLabelSelector: selector } : {}),
    fluxWatches: fluxWatchMatcher(config),
  });
  caches.start();
  // Warm the values store at sync on every replica: the webhook reads it, and a follower that becomes
  // leader starts its first pass warm instead of listing then.
  void caches.warmUp(scope.inScope);
  const checks: ReadinessCheck[] = [
    { name: 'digest-key', ready: () => digestKeys.loaded() },
    { name: 'caches', ready: () => caches.hasSynced() },
  ];
  const stops: (() => Promise<void>)[] = [async () => digestKeys.stop(), () => caches.stop()];

  if (config.reconciler) {
    const reconcilers = reconcilerRole(ctx, caches, scope, digestKeys);
    if (config['leader-elect']) {
      const identity = `${hostname()}_${randomBytes(4).toString('hex')}`;
      let shuttingDown = false;
      const elector = new LeaderElector({
        client,
        namespace: config.namespace,
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
      log.info(
        { identity, lease: `${config.namespace}/${config['lease-name']}`, ...(selector ? { selector } : {}) },
        'campaigning for leadership',
      );
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
      namespace: config.namespace,
      inScope: scope.inScope,
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

/**
 * The reconcilers as one unit that starts once the digest key is loaded (and runs once the caches are
 * synced) and stops (draining) on demand.
 */
function reconcilerRole(
  ctx: RoleContext,
  caches: ReturnType<typeof createCaches>,
  scope: NamespaceScope,
  keys: DigestKeyLoader,
) {
  const { config, client, log, registry } = ctx;
  // One write budget and one event recorder for both reconcilers.
  const writeLimiter = new TokenBucket(config['write-qps'], config['write-burst']);
  const events = createEventRecorder({ client, logger: log, instance: ctx.instance });
  const leader = new Gauge({
    name: 'helmrelease_autopilot_leader',
    help: '1 while this replica runs the reconcilers (it holds the leader Lease, or --leader-elect=false), else 0.',
    registers: [registry],
  });
  leader.set(0);
  // One rollout budget for both reconcilers (--max-upgrades-in-flight), counted by this replica while it leads.
  const rollout = startRolloutBudget({
    max: config['max-upgrades-in-flight'],
    caches,
    registry,
    logger: log,
  });
  const rolloutBudget = rollout.budget;
  let running: { stop(): Promise<void> }[] = [];
  let started = false;
  let stopped = false;
  const run = () => {
    leader.set(1);
    running.push(
      startTriggerController({
        client,
        caches,
        config,
        logger: log,
        registry,
        events,
        writeLimiter,
        rolloutBudget,
        inScope: scope.inScope,
      }),
    );
    if (config.retries) {
      running.push(
        startRetryController({
          client,
          caches,
          config,
          logger: log,
          registry,
          events,
          writeLimiter,
          rolloutBudget,
          inScope: scope.inScope,
        }),
      );
    }
  };
  return {
    start() {
      if (started) return;
      started = true;
      void keys.whenLoaded().then((loaded) => {
        if (loaded && !stopped) run();
      });
    },
    async stop() {
      stopped = true;
      const r = running;
      running = [];
      leader.set(0);
      await Promise.all(r.map((c) => c.stop()));
      rollout.stop();
    },
  };
}
