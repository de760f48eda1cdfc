// Sharding like Flux: two shards (--watch-label-selector 'sharding.fluxcd.io/key in (shardN)') and a default
// instance ('!sharding.fluxcd.io/key') on one control plane, each a role set as the process runs it (startRoles)
// acting as the operator's ServiceAccount with the shipped RBAC, each with a Lease of its own (granted by a
// Role as the README's kustomize example does). The webhook, served by shard1 only, stamps every release
// whatever its shard. A change to every consumed ConfigMap is then triggered exactly once per release, by the
// shard that owns it (told by each role set's own log).
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type Roles, startRoles } from '../../cmd/helmrelease-autopilot/roles.ts';
import { freePort } from '../../hack/controlplane.ts';
import { parseConfig } from '../../src/config.ts';
import type { KubeClient } from '../../src/kube/client.ts';
import {
  ConfigMaps,
  collectionPath,
  HelmReleases,
  MutatingWebhookConfigurations,
  Namespaces,
  objectPath,
} from '../../src/kube/resources.ts';
import { Flux, Labels } from '../../src/names.ts';
import { createCA, issueCertificate } from '../../src/tls/certs.ts';
import { isObject, stringMap } from '../../src/util/narrow.ts';
import { appName, changeValues, cmName, parallel, valuesOf, watchReleases } from '../support/bulk.ts';
import { adminClient, eventually, operatorClient } from '../support/cluster.ts';
import { helmRelease, writeAtomicWriterLayout } from '../support/webhook.ts';
import { TEST_NAMESPACE_LABEL, webhookConfiguration } from './webhook-fixture.ts';

const PER_SHARD = 500;
const SHARDS = [
  { name: 'shard1', selector: `${Flux.shardKey} in (shard1)`, label: 'shard1' },
  { name: 'shard2', selector: `${Flux.shardKey} in (shard2)`, label: 'shard2' },
  { name: 'default', selector: `!${Flux.shardKey}`, label: undefined },
] as const;
const shardOf = (i: number) => SHARDS[Math.floor(i / PER_SHARD)] as (typeof SHARDS)[number];

/** A pino logger whose lines (parsed) are kept. */
function recordingLogger() {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(l));
      done();
    },
  });
  return { log: pino({ level: 'info' }, stream), lines };
}

describe('shards like Flux', () => {
  let admin: KubeClient;
  const id = randomBytes(4).toString('hex');
  const [saNamespace, saName] = inject('operatorUser').split(':').slice(2) as [string, string];
  const leaseOf = (shard: string) => `hra-${id}-${shard}`;
  const roleName = `hra-shards-${id}`;
  const certDir = mkdtempSync(join(tmpdir(), 'autopilot-shards-'));
  const webhookName = `hra-shards-${id}`;
  const roles: Roles[] = [];

  beforeAll(async () => {
    admin = await adminClient();
    // Each shard's Lease granted to the ServiceAccount, as the README's kustomize overlay does.
    await admin.create(`/apis/rbac.authorization.k8s.io/v1/namespaces/${saNamespace}/roles`, {
      metadata: { name: roleName },
      rules: [
        {
          apiGroups: ['coordination.k8s.io'],
          resources: ['leases'],
          resourceNames: SHARDS.map((s) => leaseOf(s.name)),
          verbs: ['get', 'update'],
        },
      ],
    });
    await admin.create(`/apis/rbac.authorization.k8s.io/v1/namespaces/${saNamespace}/rolebindings`, {
      metadata: { name: roleName },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: roleName },
      subjects: [{ kind: 'ServiceAccount', name: saName, namespace: saNamespace }],
    });
  });

  afterAll(async () => {
    for (const r of roles) await r.stop();
    await admin.delete(objectPath(MutatingWebhookConfigurations, undefined, webhookName)).catch(() => {});
    for (const kind of ['roles', 'rolebindings'])
      await admin
        .delete(`/apis/rbac.authorization.k8s.io/v1/namespaces/${saNamespace}/${kind}/${roleName}`)
        .catch(() => {});
    admin.close();
    rmSync(certDir, { recursive: true, force: true });
  });

  it(`${SHARDS.length} instances, ${PER_SHARD} releases each: the webhook stamps all, every change is triggered once by its own shard`, async () => {
    const ns = `shards-${id}`;
    await admin.create(collectionPath(Namespaces), {
      metadata: { name: ns, labels: { [TEST_NAMESPACE_LABEL]: id } },
    });
    const count = PER_SHARD * SHARDS.length;
    await parallel(count, 16, async (i) => {
      await admin.create(collectionPath(ConfigMaps, ns), {
        metadata: { name: cmName(i) },
        data: { 'values.yaml': valuesOf(i, 0) },
      });
    });

    // Three role sets as the ServiceAccount; shard1 also serves the webhook.
    const ca = createCA(`shards-${id}`);
    const pair = issueCertificate(ca, { commonName: 'webhook', hosts: ['127.0.0.1'], usage: 'server' });
    writeAtomicWriterLayout(certDir, { 'tls.crt': pair.cert, 'tls.key': pair.key });
    const webhookPort = await freePort();
    const logs = SHARDS.map(() => recordingLogger());
    for (const [k, shard] of SHARDS.entries()) {
      const flags = [
        `--watch-namespace=${ns}`,
        `--watch-label-selector=${shard.selector}`,
        `--lease-name=${leaseOf(shard.name)}`,
        // 1,500 triggers in seconds rather than at the default 20 writes/s.
        '--write-qps=100',
        '--write-burst=100',
        ...(k === 0
          ? ['--bind-address=127.0.0.1', `--webhook-port=${webhookPort}`, `--cert-dir=${certDir}`]
          : ['--webhook=false']),
      ];
      roles.push(
        await startRoles({
          config: parseConfig(flags, { AUTOPILOT_NAMESPACE: saNamespace }),
          client: await operatorClient(),
          log: (logs[k] as ReturnType<typeof recordingLogger>).log,
          registry: new Registry(),
          exit: (_code, why) => {
            throw new Error(`${shard.name} exited: ${why}`);
          },
        }),
      );
    }
    await admin.create(
      collectionPath(MutatingWebhookConfigurations),
      webhookConfiguration(
        webhookName,
        `https://127.0.0.1:${webhookPort}/mutate`,
        ca.cert,
        id,
        inject('operatorUser'),
      ),
    );
    await eventually(
      async () => {
        const probe = await admin.create(
          collectionPath(HelmReleases, ns),
          helmRelease('probe', [{ kind: 'ConfigMap', name: cmName(0) }]),
          { dryRun: 'All' },
        );
        return labelsOf(probe)[Labels.managed] === 'true';
      },
      { what: 'the webhook serving', timeoutMs: 30_000, intervalMs: 200 },
    );

    // The releases, each shard's labelled for it: every one comes back stamped by shard1's webhook.
    const releases = await watchReleases(admin, ns);
    try {
      const unstamped: string[] = [];
      await parallel(count, 16, async (i) => {
        const label = shardOf(i).label;
        const created = await admin.create(
          collectionPath(HelmReleases, ns),
          helmRelease(appName(i), [{ kind: 'ConfigMap', name: cmName(i) }], {
            ...(label ? { labels: { [Flux.shardKey]: label } } : {}),
          }),
        );
        if (labelsOf(created)[Labels.managed] !== 'true') unstamped.push(appName(i));
      });
      expect(unstamped).toEqual([]);
      await eventually(() => releases.stamped() === count, {
        what: 'every release carries a digest',
        timeoutMs: 30_000,
      });
      // Those whose lookup did not finish within --webhook-lookup-timeout were stamped without a digest:
      // their shard triggered them once (the data Flux used is unknown).
      const stampedAtAdmission = count - new Set(releases.writes.map((w) => w.name)).size;

      // Quiet, then a change to every consumed ConfigMap.
      await quiet(releases.writes, 2000);
      const before = releases.writes.length;
      const logsBefore = logs.map((l) => l.lines.length);
      await parallel(count, 16, (i) => changeValues(admin, ns, i, 1).then(() => undefined));
      const triggered = () => {
        const tokens = new Map<string, Set<string>>();
        for (const w of releases.writes.slice(before)) {
          if (!w.requestedAt) continue;
          const s = tokens.get(w.name) ?? new Set<string>();
          s.add(w.requestedAt);
          tokens.set(w.name, s);
        }
        return tokens;
      };
      await eventually(() => triggered().size === count, {
        what: 'every release triggered',
        timeoutMs: 60_000,
        intervalMs: 200,
      });
      await quiet(releases.writes, 3000);
      const tokens = triggered();
      const twice = [...tokens].filter(([, s]) => s.size !== 1).map(([name]) => name);
      expect(twice).toEqual([]);

      // By its own shard: each role set's log names exactly its releases.
      const byShard = logs.map((l, k) =>
        l.lines
          .slice(logsBefore[k])
          .filter((x) => x.msg === 'release triggered')
          .map((x) => String(x.name)),
      );
      const counts = Object.fromEntries(SHARDS.map((s, k) => [s.name, byShard[k]?.length]));
      console.log(JSON.stringify({ releases: count, stampedAtAdmission, triggersByShard: counts }));
      for (const [k, shard] of SHARDS.entries()) {
        const own = Array.from({ length: count }, (_, i) => i)
          .filter((i) => shardOf(i) === shard)
          .map(appName);
        expect(new Set(byShard[k])).toEqual(new Set(own));
        expect(byShard[k]?.length).toBe(PER_SHARD);
      }
      // Each shard held its own Lease.
      for (const [k, shard] of SHARDS.entries()) {
        expect(logs[k]?.lines.some((x) => x.msg === 'became leader' && x.lease === leaseOf(shard.name))).toBe(
          true,
        );
      }
    } finally {
      await releases.stop();
    }
  }, 240_000);
});

function labelsOf(obj: unknown): Record<string, string> {
  return isObject(obj) && isObject(obj.metadata) ? stringMap(obj.metadata.labels) : {};
}

/** Waits until no write has been seen for ms. */
async function quiet(writes: { at: number }[], ms: number): Promise<void> {
  for (;;) {
    const last = writes.at(-1)?.at ?? 0;
    const wait = last + ms - Date.now();
    if (wait <= 0) return;
    await new Promise((r) => setTimeout(r, wait));
  }
}
