// Starts the roles this process runs (webhook, reconcilers) and reports their readiness.
import type { Registry } from 'prom-client';
import type { Config } from '../config.ts';
import type { KubeClient } from '../kube/client.ts';
import type { Logger } from '../log.ts';
import type { ReadinessCheck } from './ops-server.ts';

export interface RoleContext {
  config: Config;
  client: KubeClient;
  log: Logger;
  registry: Registry;
  /** The operator's own namespace. */
  namespace: string;
}

export interface Roles {
  checks: ReadinessCheck[];
  stop(): Promise<void>;
}

export async function startRoles(ctx: RoleContext): Promise<Roles> {
  const stops: (() => Promise<void>)[] = [];
  const checks: ReadinessCheck[] = [];
  ctx.log.debug({ namespace: ctx.namespace }, 'starting roles');
  return {
    checks,
    async stop() {
      for (const stop of stops.reverse()) await stop();
    },
  };
}
