// A tenant can harm only its own releases, proved on the real API server with the operator's own wiring
// (cmd/helmrelease-autopilot/roles.ts: caches, webhook, trigger and retry reconcilers, all built from the
// parsed flags) running in-process as the operator's ServiceAccount, and the shipped webhook configuration
// registered on loopback (confined to this suite's namespaces):
// - one scope: a release outside --watch-namespace is neither stamped, nor triggered, nor retried;
// - --no-cross-namespace-links refuses a link the release allows (Warning event, metric, no trigger);
// - a per-release retry pattern that is catastrophic for a backtracking engine, classified over and over,
//   does not delay another tenant's admission.
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino, { type Logger } from 'pino';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type Roles, startRoles } from '../../cmd/helmrelease-autopilot/roles.ts';
import { freePort } from '../../hack/controlplane.ts';
import { parseConfig } from '../../src/config.ts';
import type { KubeClient } from '../../src/kube/client.ts';
import {
  collectionPath,
  HelmReleases,
  MutatingWebhookConfigurations,
  Namespaces,
  objectPath,
} from '../../src/kube/resources.ts';
import { Annotations, Flux, Labels, PREFIX } from '../../src/names.ts';
import { createCA, issueCertificate } from '../../src/tls/certs.ts';
import { sleep } from '../../src/util/sleep.ts';
import { adminClient, eventually, operatorClient } from '../support/cluster.ts';
import { HelmErrors, stalledFailure } from '../support/flux-status.ts';
import { testLogger } from '../support/log.ts';
import { helmRelease, writeAtomicWriterLayout } from '../support/webhook.ts';
import { loopbackRegistration } from '../support/webhook-registration.ts';
import { createConfigMap, createRelease, eventsIn, patchConfigMap, releaseMeta } from './triggers-harness.ts';

const SCOPE_LABEL = `${PREFIX}/scope-test`;

interface Running {
  roles: Roles;
  registry: Registry;
  stop(): Promise<void>;
}

let admin: KubeClient;
let asOperator: KubeClient;
let operatorUser: string;
const id = randomBytes(3).toString('hex');
const hookName = `helmrelease-autopilot-scope-${id}`;
const port = await freePort();
const certDir = mkdtempSync(join(tmpdir(), 'scope-certs-'));
const ca = createCA(`scope-test-ca-${id}`);

/** A namespace the registered webhook applies to (the operator's scope decides what it does there). */
async function namespace(prefix: string): Promise<string> {
  const name = `${prefix}-${randomBytes(3).toString('hex')}`;
  await admin.create(collectionPath(Namespaces), {
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: { name, labels: { [SCOPE_LABEL]: id } },
  });
  return name;
}

/** The operator's roles from its flags, in-process, as its ServiceAccount. */
async function startOperator(flags: string[], log: Logger = testLogger()): Promise<Running> {
  const config = parseConfig(
    [
      '--leader-elect=false',
      '--bind-address=127.0.0.1',
      `--webhook-port=${port}`,
      `--cert-dir=${certDir}`,
      '--debounce=0',
      '--retry-base-delay=100ms',
      '--retry-max-delay=1s',
      '--retry-jitter=0',
      ...flags,
    ],
    {},
    { inClusterNamespace: () => 'helmrelease-autopilot' },
  );
  const registry = new Registry();
  const roles = await startRoles({
    config,
    client: asOperator,
    log,
    registry,
    exit: (code, why) => {
      throw new Error(`operator asked to exit ${code}: ${why}`);
    },
  });
  await eventually(() => roles.checks.every((c) => c.ready()), { timeoutMs: 20_000, what: 'operator ready' });
  return { roles, registry, stop: () => roles.stop() };
}

/** Dry-run creates in `ns` until the API server calls the webhook there (configurations load asynchronously). */
async function waitForWebhook(ns: string): Promise<void> {
  await eventually(
    async () => {
      const obj = await admin.create(
        collectionPath(HelmReleases, ns),
        helmRelease('probe', [{ kind: 'ConfigMap', name: 'absent', optional: true }]),
        { dryRun: 'All' },
      );
      return (obj as { metadata?: { labels?: Record<string, string> } }).metadata?.labels?.[Labels.managed];
    },
    { timeoutMs: 20_000, intervalMs: 200, what: `webhook active in ${ns}` },
  );
}

const metric = async (registry: Registry, name: string) =>
  (await registry.getSingleMetric(name)?.get())?.values.reduce((n, v) => n + v.value, 0) ?? 0;

beforeAll(async () => {
  admin = await adminClient();
  asOperator = await operatorClient();
  operatorUser = inject('operatorUser');
  const serving = issueCertificate(ca, { commonName: 'webhook', hosts: ['127.0.0.1'], usage: 'server' });
  writeAtomicWriterLayout(certDir, { 'tls.crt': serving.cert, 'tls.key': serving.key });
  await admin.create(
    collectionPath(MutatingWebhookConfigurations),
    loopbackRegistration({
      name: hookName,
      url: `https://127.0.0.1:${port}/mutate`,
      caPem: ca.cert,
      operatorUser,
      webhookName: `${id}.helmreleases.helmrelease-autopilot.dev`,
      namespaceSelector: { matchLabels: { [SCOPE_LABEL]: id } },
    }),
  );
});

afterAll(async () => {
  await admin.delete(objectPath(MutatingWebhookConfigurations, undefined, hookName)).catch(() => {});
  admin.close();
  asOperator.close();
});

describe('one scope for the webhook and the reconcilers', () => {
  it('a release outside --watch-namespace is neither stamped, nor triggered, nor retried', async () => {
    const [in1, in2, out] = [await namespace('in1'), await namespace('in2'), await namespace('out')];
    const op = await startOperator([`--watch-namespace=${in1},${in2}`]);
    try {
      await waitForWebhook(in1);
      for (const ns of [in1, in2, out]) {
        await createConfigMap(admin, ns, 'values', { data: { 'values.yaml': 'a: 1' } });
        await createRelease(admin, ns, 'app', [{ kind: 'ConfigMap', name: 'values' }]);
      }
      // Stamped at admission in scope (both watched namespaces: one informer each); untouched outside.
      for (const ns of [in1, in2]) {
        const m = await releaseMeta(admin, ns, 'app');
        expect(m.labels[Labels.managed]).toBe('true');
        expect(m.annotations[Annotations.valuesDigest]).toBeDefined();
      }
      const outside = await releaseMeta(admin, out, 'app');
      expect(outside.labels[Labels.managed]).toBeUndefined();
      expect(outside.annotations[Annotations.valuesDigest]).toBeUndefined();

      // Triggered in scope only.
      for (const ns of [in1, in2, out])
        await patchConfigMap(admin, ns, 'values', { data: { 'values.yaml': 'a: 2' } });
      for (const ns of [in1, in2]) {
        await eventually(async () => (await releaseMeta(admin, ns, 'app')).annotations[Flux.requestedAt], {
          what: `trigger in ${ns}`,
        });
      }
      // Retried in scope only: a transient failure on every release.
      const at = new Date(Date.now() - 60_000).toISOString();
      for (const ns of [in1, out]) {
        const before = (await releaseMeta(admin, ns, 'app')).annotations[Flux.requestedAt];
        await admin.mergePatch(`${objectPath(HelmReleases, ns, 'app')}/status`, {
          status: {
            ...stalledFailure(
              { namespace: ns, name: 'app', generation: 1, at },
              'upgrade',
              HelmErrors.legacyTimeout,
            ),
            lastHandledReconcileAt: before ?? '',
          },
        });
      }
      // A retry writes requestedAt + forceAt (ADR 0011).
      await eventually(async () => (await releaseMeta(admin, in1, 'app')).annotations[Flux.forceAt], {
        what: `retry in ${in1}`,
      });
      // The out-of-scope release had every chance: the in-scope ones were handled after its events.
      await sleep(1000);
      const after = await releaseMeta(admin, out, 'app');
      expect(after.annotations[Flux.requestedAt]).toBeUndefined();
      expect(after.annotations[Flux.forceAt]).toBeUndefined();
      expect(after.annotations[Flux.resetAt]).toBeUndefined();
      expect(after.annotations[Annotations.retryAttempts]).toBeUndefined();
      expect(after.labels[Labels.managed]).toBeUndefined();
    } finally {
      await op.stop();
    }
  });
});

describe('--no-cross-namespace-links', () => {
  it('refuses a link the release allows: a LinkRefused Warning on the source, the metric, no trigger', async () => {
    const [src, apps] = [await namespace('src'), await namespace('apps')];
    const op = await startOperator([`--watch-namespace=${src},${apps}`, '--no-cross-namespace-links']);
    try {
      await createRelease(admin, apps, 'app', [], { [Annotations.allowSourceNamespaces]: src });
      await createConfigMap(admin, src, 'shared', {
        data: { k: 'v1' },
        annotations: { [Annotations.linkReleases]: 'app', [Annotations.linkNamespace]: apps },
      });
      const refused = await eventually(
        async () => (await eventsIn(admin, src)).find((e) => e.reason === 'LinkRefused'),
        { what: 'LinkRefused event' },
      );
      expect(refused).toMatchObject({ type: 'Warning', regarding: { kind: 'ConfigMap', name: 'shared' } });
      expect(refused.note).toContain('--no-cross-namespace-links');
      expect(await metric(op.registry, 'helmrelease_autopilot_trigger_refused_links_total')).toBeGreaterThan(
        0,
      );
      await patchConfigMap(admin, src, 'shared', { data: { k: 'v2' } });
      await sleep(1500);
      const m = await releaseMeta(admin, apps, 'app');
      expect(m.annotations[Flux.requestedAt]).toBeUndefined();
      expect(m.annotations[Annotations.linkDigests]).toBeUndefined();
    } finally {
      await op.stop();
    }
  });
});

describe('a catastrophic per-release pattern', () => {
  it("does not delay another tenant's admission while it is classified over and over", async () => {
    const [attacker, neighbour] = [await namespace('attacker'), await namespace('neighbour')];
    // Counts the retry reconciler's decisions about the attacker's release (one per classification).
    const name = 'a'.repeat(53);
    let classified = 0;
    const log = pino(
      { level: 'debug' },
      {
        write: (line: string) => {
          if (line.includes('"msg":"no retry"') && line.includes(`"name":"${name}"`)) classified++;
        },
      },
    );
    const op = await startOperator([`--watch-namespace=${attacker},${neighbour}`], log);
    try {
      await waitForWebhook(neighbour);
      const admissions = async (label: string, n: number) => {
        const ms: number[] = [];
        for (let i = 0; i < n; i++) {
          const name = `${label}-${i}`;
          const t0 = performance.now();
          const created = (await admin.create(
            collectionPath(HelmReleases, neighbour),
            helmRelease(name, [{ kind: 'ConfigMap', name: 'absent', optional: true }]),
          )) as { metadata: { labels?: Record<string, string> } };
          ms.push(performance.now() - t0);
          expect(created.metadata.labels?.[Labels.managed]).toBe('true');
          await sleep(100);
        }
        return ms.sort((a, b) => a - b);
      };
      const quiet = await admissions('quiet', 20);

      // 53 a's: the longest name a HelmRelease may have; the message repeats it, as Flux's does.
      await createRelease(admin, attacker, name, [], { [Annotations.retryPatterns]: '^.*(a+)+$' });
      let writes = 0;
      let stop = false;
      // Play Flux: a failure that no default pattern matches (so the tenant's pattern is tried), rewritten
      // every 50 ms so the retry reconciler classifies the release again each time.
      const churn = (async () => {
        while (!stop) {
          const at = new Date().toISOString();
          await admin.mergePatch(`${objectPath(HelmReleases, attacker, name)}/status`, {
            status: stalledFailure(
              { namespace: attacker, name, generation: 1, at },
              'upgrade',
              `${HelmErrors.connectionReset} (${name})`,
            ),
          });
          writes++;
          await sleep(50);
        }
      })();
      await sleep(500);
      const attacked = await admissions('attacked', 20);
      stop = true;
      await churn;

      const p = (xs: number[], q: number) =>
        xs[Math.min(xs.length - 1, Math.ceil(q * xs.length) - 1)] as number;
      process.stdout.write(
        `\nneighbour admission latency (ms, 20 creates each): quiet p50 ${p(quiet, 0.5).toFixed(1)} max ${p(quiet, 1).toFixed(1)}; ` +
          `while the attacker's release was classified ${classified} times (${writes} status writes): p50 ${p(attacked, 0.5).toFixed(1)} max ${p(attacked, 1).toFixed(1)}\n`,
      );
      expect(classified).toBeGreaterThan(20);
      expect(p(attacked, 1)).toBeLessThan(1000);
      // The attacker's own release was classified (non-transient: its pattern does not match) — no retry.
      const m = await releaseMeta(admin, attacker, name);
      expect(m.annotations[Flux.requestedAt]).toBeUndefined();
    } finally {
      await op.stop();
    }
  });
});
