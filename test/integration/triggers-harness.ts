// Shared setup of the trigger integration tests: an operator (caches + trigger controller) scoped to the
// test's namespaces, objects to create, and a watch that counts writes to the releases.
import { Registry } from 'prom-client';
import { type RolloutBudget, startRolloutBudget } from '../../controller/rollout.ts';
import {
  startTriggerController,
  type TriggerConfig,
  type TriggerController,
} from '../../controller/triggers/controller.ts';
import { type CachesOptions, createCaches, type OperatorCaches } from '../../src/kube/caches.ts';
import type { KubeClient } from '../../src/kube/client.ts';
import { Informer } from '../../src/kube/informer.ts';
import {
  ConfigMaps,
  collectionPath,
  Events,
  HelmReleases,
  objectPath,
  Secrets,
} from '../../src/kube/resources.ts';
import { Flux } from '../../src/names.ts';
import { array, isObject, str, stringMap } from '../../src/util/narrow.ts';
import { sleep } from '../../src/util/sleep.ts';
import type { DigestKeys } from '../../src/values/digest.ts';
import { testDigestKeys } from '../support/digest-key.ts';
import { testLogger } from '../support/log.ts';

export const baseConfig: TriggerConfig = {
  debounce: 0,
  concurrency: 4,
  'write-qps': 200,
  'write-burst': 200,
  force: false,
  'notify-only': false,
  'compat-trigger-operator': false,
};

export interface Operator {
  caches: OperatorCaches;
  controller: TriggerController;
  registry: Registry;
  /** --max-upgrades-in-flight (UNLIMITED unless asked for). */
  budget: RolloutBudget;
  stop(): Promise<void>;
}

/** Starts caches and the trigger controller; `namespaces` scopes both (one namespace: a namespaced watch). */
export async function startOperator(
  client: KubeClient,
  namespaces: string[],
  config: Partial<TriggerConfig> = {},
  digestKeys: () => DigestKeys = testDigestKeys,
  caching: Pick<CachesOptions, 'fluxWatches'> & { maxUpgradesInFlight?: number } = {},
): Promise<Operator> {
  const caches = createCaches({
    client,
    logger: testLogger(),
    digestKeys,
    namespaces,
    compatLinks: config['compat-trigger-operator'] ?? false,
    ...(caching.fluxWatches ? { fluxWatches: caching.fluxWatches } : {}),
  });
  const registry = new Registry();
  caches.start();
  const rollout = startRolloutBudget({
    max: caching.maxUpgradesInFlight ?? 0,
    caches,
    registry,
    logger: testLogger(),
  });
  const controller = startTriggerController({
    client,
    caches,
    config: { ...baseConfig, ...config },
    logger: testLogger(),
    registry,
    inScope: (ns) => namespaces.includes(ns),
    rolloutBudget: rollout.budget,
  });
  await caches.waitForSync();
  await controller.whenIdle();
  return {
    caches,
    controller,
    registry,
    budget: rollout.budget,
    stop: async () => {
      rollout.stop();
      await controller.stop();
      await caches.stop();
    },
  };
}

export type ValuesFrom = {
  kind: 'ConfigMap' | 'Secret';
  name: string;
  valuesKey?: string;
  optional?: boolean;
}[];

export async function createRelease(
  client: KubeClient,
  namespace: string,
  name: string,
  valuesFrom: ValuesFrom,
  annotations: Record<string, string> = {},
): Promise<void> {
  await client.create(collectionPath(HelmReleases, namespace), {
    apiVersion: 'helm.toolkit.fluxcd.io/v2',
    kind: 'HelmRelease',
    metadata: { name, annotations },
    spec: {
      interval: '5m',
      chart: { spec: { chart: 'c', sourceRef: { kind: 'HelmRepository', name: 'r' } } },
      ...(valuesFrom.length > 0 ? { valuesFrom } : {}),
    },
  });
}

export async function createConfigMap(
  client: KubeClient,
  namespace: string,
  name: string,
  body: {
    data?: Record<string, string>;
    binaryData?: Record<string, string>;
    annotations?: Record<string, string>;
    labels?: Record<string, string>;
  },
): Promise<void> {
  await client.create(collectionPath(ConfigMaps, namespace), {
    metadata: {
      name,
      ...(body.annotations ? { annotations: body.annotations } : {}),
      ...(body.labels ? { labels: body.labels } : {}),
    },
    ...(body.data ? { data: body.data } : {}),
    ...(body.binaryData ? { binaryData: body.binaryData } : {}),
  });
}

export async function patchConfigMap(client: KubeClient, namespace: string, name: string, patch: unknown) {
  await client.mergePatch(objectPath(ConfigMaps, namespace, name), patch);
}

export async function createSecret(
  client: KubeClient,
  namespace: string,
  name: string,
  data: Record<string, string>,
) {
  await client.create(collectionPath(Secrets, namespace), {
    metadata: { name },
    data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString('base64')])),
  });
}

export async function releaseMeta(client: KubeClient, namespace: string, name: string) {
  const raw = await client.get(objectPath(HelmReleases, namespace, name));
  const meta = isObject(raw) && isObject(raw.metadata) ? raw.metadata : {};
  return {
    resourceVersion: str(meta.resourceVersion) ?? '',
    annotations: stringMap(meta.annotations),
    labels: stringMap(meta.labels),
  };
}

export const requestedAt = async (client: KubeClient, namespace: string, name: string) =>
  (await releaseMeta(client, namespace, name)).annotations[Flux.requestedAt];

/**
 * Plays helm-controller finishing the reconcile a request started: status.lastHandledReconcileAt = the
 * release's requestedAt. Until then the operator holds further triggers (src/flux/activity.ts).
 */
export async function fluxHandled(client: KubeClient, namespace: string, name: string): Promise<void> {
  const token = await requestedAt(client, namespace, name);
  if (!token) throw new Error(`${namespace}/${name} has no requestedAt to handle`);
  await client.mergePatch(`${objectPath(HelmReleases, namespace, name)}/status`, {
    status: { lastHandledReconcileAt: token },
  });
}

/** Watches the releases of a namespace and records every write (resourceVersion change) with its requestedAt. */
export async function countWrites(client: KubeClient, namespace: string) {
  const writes: { name: string; requestedAt: string | undefined }[] = [];
  const informer = new Informer<Record<string, string>>({
    client,
    resource: HelmReleases,
    namespace,
    logger: testLogger(),
    transform: (raw) =>
      isObject(raw) && isObject(raw.metadata) ? stringMap(raw.metadata.annotations) : undefined,
  });
  informer.on({ update: (_old, c) => writes.push({ name: c.name, requestedAt: c.value[Flux.requestedAt] }) });
  informer.start();
  await informer.waitForSync();
  return {
    writes,
    triggers: (name: string) => new Set(writes.filter((w) => w.name === name).map((w) => w.requestedAt)).size,
    stop: () => informer.stop(),
  };
}

export interface EventSeen {
  reason: string;
  type: string;
  note: string;
  regarding: { kind: string; name: string };
}

export async function eventsIn(client: KubeClient, namespace: string): Promise<EventSeen[]> {
  const list = await client.get(collectionPath(Events, namespace));
  return array(isObject(list) ? list.items : undefined).flatMap((e) => {
    if (!isObject(e)) return [];
    const regarding = isObject(e.regarding) ? e.regarding : {};
    return [
      {
        reason: str(e.reason) ?? '',
        type: str(e.type) ?? '',
        note: str(e.note) ?? '',
        regarding: { kind: str(regarding.kind) ?? '', name: str(regarding.name) ?? '' },
      },
    ];
  });
}

export { sleep };
