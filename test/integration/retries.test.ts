// Bounded, classified retries against a real API server. The test plays helm-controller: it writes the
// release's status through the /status subresource in the exact shapes Flux writes (test/support/
// flux-status.ts), and it "handles" our requests by recording lastHandledReconcileAt/ResetAt. Time is a
// FakeClock, so backoff is tested without sleeping; each test has its own namespace and controller.
import { Registry } from 'prom-client';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { type RetryController, startRetryController } from '../../controller/retries/controller.ts';
import { createRetryMetrics, type RetryMetrics } from '../../controller/retries/metrics.ts';
import { type Config, parseConfig } from '../../src/config.ts';
import { type HelmRelease, parseHelmRelease } from '../../src/flux/helmrelease.ts';
import { createCaches, type OperatorCaches } from '../../src/kube/caches.ts';
import type { KubeClient } from '../../src/kube/client.ts';
import { collectionPath, Events, HelmReleases, objectPath } from '../../src/kube/resources.ts';
import { Annotations, Flux } from '../../src/names.ts';
import { backoffDelay } from '../../src/retry/backoff.ts';
import { episodeFingerprint } from '../../src/retry/state.ts';
import { isObject } from '../../src/util/narrow.ts';
import { FakeClock } from '../support/clock.ts';
import { adminClient, createNamespace, eventually, operatorClient } from '../support/cluster.ts';
import { testDigestKeys } from '../support/digest-key.ts';
import {
  HelmErrors,
  helmReleaseObject,
  released,
  retryOnFailureFailure,
  type ShapeOptions,
  stalledFailure,
} from '../support/flux-status.ts';
import { testLogger } from '../support/log.ts';
import { startWebhookFixture } from './webhook-fixture.ts';

interface Operator {
  caches: OperatorCaches;
  controller: RetryController;
  registry: Registry;
  client: KubeClient;
}

class Harness {
  readonly client: KubeClient;
  readonly ns: string;
  readonly clock = new FakeClock(Math.floor(Date.now() / 1000) * 1000);
  readonly config: Config;
  readonly operators: Operator[] = [];

  constructor(client: KubeClient, ns: string, argv: string[]) {
    this.client = client;
    this.ns = ns;
    this.config = parseConfig(argv, {});
  }

  static async create(argv: string[] = [], namespace?: string): Promise<Harness> {
    const client = await adminClient();
    return new Harness(client, namespace ?? (await createNamespace(client, 'retries')), argv);
  }

  /** Starts an operator replica (its own caches and queue; its own metrics unless given), scoped to this test's namespace. */
  async start(registry = new Registry(), metrics?: RetryMetrics): Promise<Operator> {
    // The replica acts as the operator's ServiceAccount (manifests/base's RBAC); the test as admin.
    const client = await operatorClient();
    const caches = createCaches({
      client,
      logger: testLogger(),
      namespaces: [this.ns],
      digestKeys: testDigestKeys,
    });
    caches.start();
    await caches.waitForSync();
    const controller = startRetryController({
      client,
      caches,
      config: this.config,
      logger: testLogger(),
      registry,
      ...(metrics ? { metrics } : {}),
      clock: this.clock,
    });
    const op = { caches, controller, registry, client };
    this.operators.push(op);
    await controller.whenIdle();
    return op;
  }

  async stop(op: Operator): Promise<void> {
    await op.controller.stop();
    await op.caches.stop();
    op.client.close();
    this.operators.splice(this.operators.indexOf(op), 1);
  }

  async close(): Promise<void> {
    for (const op of [...this.operators]) await this.stop(op);
    this.client.close();
  }

  path(name: string): string {
    return objectPath(HelmReleases, this.ns, name);
  }

  async createRelease(name: string, opts: Parameters<typeof helmReleaseObject>[2] = {}): Promise<void> {
    await this.client.create(collectionPath(HelmReleases, this.ns), helmReleaseObject(this.ns, name, opts));
  }

  async get(name: string): Promise<HelmRelease> {
    const p = parseHelmRelease(await this.client.get(this.path(name)));
    if (!p.ok) throw new Error(p.error);
    return p.value;
  }

  shape(name: string, generation: number, handled?: string): ShapeOptions {
    const at = new Date(this.clock.now()).toISOString().replace(/\.\d+Z$/, 'Z');
    return { namespace: this.ns, name, generation, at, ...(handled ? { handled } : {}) };
  }

  /** Writes status as helm-controller would, then waits until every operator has seen and processed it. */
  async setStatus(name: string, status: Record<string, unknown>): Promise<string> {
    const res = await this.client.mergePatch(`${this.path(name)}/status`, { status });
    const rv = isObject(res) && isObject(res.metadata) ? String(res.metadata.resourceVersion) : '';
    await this.settle(name, rv);
    return rv;
  }

  /** Waits until every operator's cache holds at least resourceVersion rv of name, and its queue is idle. */
  async settle(name: string, rv?: string): Promise<void> {
    const want = rv ?? (await this.get(name)).metadata.resourceVersion;
    for (const op of this.operators) {
      await eventually(
        () => Number(op.caches.helmReleases.get(this.ns, name)?.resourceVersion) >= Number(want),
        {
          what: `cache of ${name} at resourceVersion ${want}`,
        },
      );
      await op.controller.whenIdle();
    }
  }

  /** Advances the fake clock, then lets every operator finish what fell due (including its writes). */
  async advance(ms: number): Promise<void> {
    await this.clock.advance(ms);
    for (const op of this.operators) await op.controller.whenIdle();
    await new Promise((r) => setTimeout(r, 50));
    for (const op of this.operators) await op.controller.whenIdle();
  }

  /** The delay before retry number attempts+1 of release hr, exactly as the operator computes it. */
  delay(hr: HelmRelease, attempts: number): number {
    const episode = episodeFingerprint(hr);
    return backoffDelay(attempts, this.config.retry.limits, `${hr.metadata.uid}/${episode}/${attempts}`);
  }

  /**
   * Plays helm-controller handling our request and failing again the same way: a retry (requestedAt ==
   * forceAt) is one more attempt on Flux's counters; a restart by hand (requestedAt == resetAt) clears them
   * first.
   */
  async fluxFailsAgain(name: string, helmError: string = HelmErrors.legacyTimeout): Promise<string> {
    const hr = await this.get(name);
    const token = hr.metadata.annotations[Flux.requestedAt] as string;
    const reset = hr.metadata.annotations[Flux.resetAt] === token;
    if (!reset) expect(hr.metadata.annotations[Flux.forceAt]).toBe(token);
    const counted = (reset ? 0 : hr.status.upgradeFailures) + 1;
    return this.setStatus(name, {
      ...stalledFailure(this.shape(name, hr.metadata.generation, token), 'upgrade', helmError),
      failures: counted,
      upgradeFailures: counted,
      lastHandledForceAt: hr.metadata.annotations[Flux.forceAt] ?? null,
      lastHandledResetAt: hr.metadata.annotations[Flux.resetAt] ?? null,
    });
  }

  async events(name: string): Promise<{ reason: string; type: string; note: string }[]> {
    const list = await this.client.get(collectionPath(Events, this.ns));
    const items = isObject(list) && Array.isArray(list.items) ? list.items : [];
    return items
      .filter((e) => isObject(e) && isObject(e.regarding) && e.regarding.name === name)
      .map((e) => {
        const ev = e as { reason: string; type: string; note: string };
        return { reason: ev.reason, type: ev.type, note: ev.note };
      });
  }

  async outcome(op: Operator, outcome: string): Promise<number> {
    const metric = await op.registry.getSingleMetric('helmrelease_autopilot_retries_total')?.get();
    return metric?.values.find((v) => v.labels.outcome === outcome)?.value ?? 0;
  }
}

const harnesses: Harness[] = [];
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const h of harnesses.splice(0)) await h.close();
  for (const c of cleanups.splice(0)) await c();
});

async function harness(argv: string[] = [], namespace?: string): Promise<Harness> {
  const h = await Harness.create(argv, namespace);
  harnesses.push(h);
  return h;
}

const ours = (hr: HelmRelease) =>
  Object.fromEntries(
    Object.entries(hr.metadata.annotations).filter(
      ([k]) => k.startsWith('reconcile.fluxcd.io/') || k.includes('/retry'),
    ),
  );

describe('retries on a real API server', () => {
  it('a timed-out upgrade is retried after the backoff, with requestedAt == forceAt and one attempt counted', async () => {
    const h = await harness();
    await h.createRelease('app');
    const op = await h.start();
    const failedRv = await h.setStatus(
      'app',
      stalledFailure(h.shape('app', 1), 'upgrade', HelmErrors.kstatusTimeout),
    );
    const first = h.delay(await h.get('app'), 0);
    expect(first).toBeGreaterThanOrEqual(30_000);

    await h.advance(first - 1000);
    expect((await h.get('app')).metadata.resourceVersion).toBe(failedRv);
    await eventually(async () => (await h.events('app')).some((e) => e.reason === 'RetryScheduled'), {
      what: 'RetryScheduled event',
    });

    await h.advance(1000);
    const hr = await h.get('app');
    const token = hr.metadata.annotations[Flux.requestedAt];
    expect(token).toBe(new Date(h.clock.now()).toISOString());
    expect(hr.metadata.annotations[Flux.forceAt]).toBe(token);
    expect(hr.metadata.annotations[Flux.resetAt]).toBeUndefined();
    expect(hr.metadata.annotations[Annotations.retryAttempts]).toBe('1');
    expect(hr.metadata.annotations[Annotations.retryLastAttempt]).toBe(token);
    expect(hr.metadata.annotations[Annotations.retryEpisode]).toBe(episodeFingerprint(hr));
    expect(await h.outcome(op, 'triggered')).toBe(1);
    await eventually(async () => (await h.events('app')).some((e) => e.reason === 'RetryTriggered'), {
      what: 'RetryTriggered event',
    });
  });

  it("the operator's own write does not trigger another retry; Flux's next failure waits for the grown backoff", async () => {
    const h = await harness();
    await h.createRelease('app');
    const op = await h.start();
    await h.setStatus('app', stalledFailure(h.shape('app', 1), 'upgrade', HelmErrors.legacyTimeout));
    await h.advance(h.delay(await h.get('app'), 0));
    const afterWrite = await h.get('app');
    expect(afterWrite.metadata.annotations[Annotations.retryAttempts]).toBe('1');

    // Flux has not handled the request yet: however long that takes, nothing more is written.
    await h.settle('app');
    for (let i = 0; i < 6; i++) await h.advance(h.config['retry-max-delay']);
    expect((await h.get('app')).metadata.resourceVersion).toBe(afterWrite.metadata.resourceVersion);
    expect(await h.outcome(op, 'triggered')).toBe(1);

    // Flux handles it and fails the same way: the second retry comes after delay(1), counted from then.
    const rv = await h.fluxFailsAgain('app');
    const second = h.delay(await h.get('app'), 1);
    expect(second).toBeGreaterThan(h.delay(afterWrite, 0));
    await h.advance(second - 1000);
    expect((await h.get('app')).metadata.resourceVersion).toBe(rv);
    await h.advance(1000);
    expect((await h.get('app')).metadata.annotations[Annotations.retryAttempts]).toBe('2');
    expect(await h.outcome(op, 'triggered')).toBe(2);
  });

  it('stops at the cap: exhausted annotation, a Warning event, a metric, and no more writes', async () => {
    const h = await harness(['--retry-max-attempts', '2']);
    await h.createRelease('app');
    const op = await h.start();
    await h.setStatus('app', stalledFailure(h.shape('app', 1), 'install', HelmErrors.waitTimeout));
    for (let attempt = 0; attempt < 2; attempt++) {
      await h.advance(h.delay(await h.get('app'), attempt));
      expect((await h.get('app')).metadata.annotations[Annotations.retryAttempts]).toBe(String(attempt + 1));
      await h.fluxFailsAgain('app', HelmErrors.waitTimeout);
    }
    const spent = await eventually(async () => {
      const hr = await h.get('app');
      return hr.metadata.annotations[Annotations.retryExhausted] ? hr : undefined;
    });
    expect(spent.metadata.annotations[Annotations.retryAttempts]).toBe('2');
    expect(await h.outcome(op, 'exhausted')).toBe(1);
    const exhaustedGauge = await op.registry.getSingleMetric('helmrelease_autopilot_retry_exhausted')?.get();
    expect(exhaustedGauge?.values[0]?.value).toBe(1);
    await eventually(async () =>
      (await h.events('app')).some((e) => e.reason === 'RetriesExhausted' && e.type === 'Warning'),
    );

    await h.settle('app');
    for (let i = 0; i < 6; i++) await h.advance(h.config['retry-max-delay']);
    expect((await h.get('app')).metadata.resourceVersion).toBe(spent.metadata.resourceVersion);
    expect(await h.outcome(op, 'triggered')).toBe(2);
  });

  it('a restart mid-backoff neither resets the count nor retries early; a restart before Flux acted does not retry at all', async () => {
    const h = await harness();
    await h.createRelease('app');
    let op = await h.start();
    await h.setStatus('app', stalledFailure(h.shape('app', 1), 'upgrade', HelmErrors.legacyTimeout));
    await h.advance(h.delay(await h.get('app'), 0));
    const written = await h.get('app');
    expect(written.metadata.annotations[Annotations.retryAttempts]).toBe('1');

    // Restart before Flux handled the request.
    await h.stop(op);
    op = await h.start();
    await h.advance(h.config['retry-max-delay'] * 2);
    expect((await h.get('app')).metadata.resourceVersion).toBe(written.metadata.resourceVersion);

    // Flux fails again; restart in the middle of the backoff.
    const rv = await h.fluxFailsAgain('app');
    const second = h.delay(await h.get('app'), 1);
    await h.advance(second / 2);
    await h.stop(op);
    op = await h.start();
    await h.advance(second / 2 - 1000);
    expect((await h.get('app')).metadata.resourceVersion).toBe(rv);
    expect(await h.outcome(op, 'triggered')).toBe(0);
    await h.advance(1000);
    expect((await h.get('app')).metadata.annotations[Annotations.retryAttempts]).toBe('2');
    expect(await h.outcome(op, 'triggered')).toBe(1);
  });

  it('two replicas at once count one attempt (resourceVersion precondition)', async () => {
    const h = await harness();
    await h.createRelease('app');
    const a = await h.start();
    const b = await h.start();
    await h.setStatus('app', stalledFailure(h.shape('app', 1), 'upgrade', HelmErrors.legacyTimeout));
    await h.advance(h.delay(await h.get('app'), 0));
    await h.settle('app');
    const hr = await h.get('app');
    expect(hr.metadata.annotations[Annotations.retryAttempts]).toBe('1');
    expect((await h.outcome(a, 'triggered')) + (await h.outcome(b, 'triggered'))).toBe(1);
  });

  it('success resets the budget: Ready clears our state, and the next failure starts from attempt 1', async () => {
    const h = await harness(['--retry-max-attempts', '2']);
    await h.createRelease('app');
    await h.start();
    await h.setStatus('app', stalledFailure(h.shape('app', 1), 'upgrade', HelmErrors.legacyTimeout));
    await h.advance(h.delay(await h.get('app'), 0));
    await h.fluxFailsAgain('app');
    await h.advance(h.delay(await h.get('app'), 1));
    expect((await h.get('app')).metadata.annotations[Annotations.retryAttempts]).toBe('2');

    // The user bumps the chart values (generation 2); Flux upgrades successfully.
    await h.client.mergePatch(h.path('app'), { spec: { values: { replicaCount: 2 } } });
    const token = (await h.get('app')).metadata.annotations[Flux.requestedAt];
    await h.setStatus('app', released({ ...h.shape('app', 2, token), configDigest: 'sha256:beef' }));
    const cleared = await eventually(async () => {
      const hr = await h.get('app');
      return hr.metadata.annotations[Annotations.retryAttempts] === undefined ? hr : undefined;
    });
    expect(cleared.metadata.annotations[Annotations.retryEpisode]).toBeUndefined();
    expect(cleared.metadata.annotations[Annotations.retryLastAttempt]).toBeUndefined();
    expect(cleared.metadata.annotations[Flux.requestedAt]).toBe(token);

    // Later, generation 3 fails on a timeout: a fresh budget.
    await h.client.mergePatch(h.path('app'), { spec: { values: { replicaCount: 3 } } });
    await h.setStatus(
      'app',
      stalledFailure(
        { ...h.shape('app', 3, token), configDigest: 'sha256:cafe' },
        'upgrade',
        HelmErrors.ioTimeout,
      ),
    );
    await h.advance(h.delay(await h.get('app'), 0));
    expect((await h.get('app')).metadata.annotations[Annotations.retryAttempts]).toBe('1');
  });

  it('non-transient, suspended, opted-out and spec-changed releases are never touched', async () => {
    const h = await harness();
    const cases: [string, () => Promise<Record<string, unknown>>][] = [
      ['schema', async () => stalledFailure(h.shape('schema', 1), 'install', HelmErrors.schema)],
      ['invalid', async () => stalledFailure(h.shape('invalid', 1), 'upgrade', HelmErrors.invalidSpec)],
      ['suspended', async () => stalledFailure(h.shape('suspended', 1), 'upgrade', HelmErrors.legacyTimeout)],
      ['optout', async () => stalledFailure(h.shape('optout', 1), 'upgrade', HelmErrors.legacyTimeout)],
      ['changed', async () => stalledFailure(h.shape('changed', 1), 'upgrade', HelmErrors.legacyTimeout)],
    ];
    await h.createRelease('schema');
    await h.createRelease('invalid');
    await h.createRelease('suspended', { suspend: true });
    await h.createRelease('optout', { annotations: { [Annotations.retry]: 'false' } });
    await h.createRelease('changed');
    const op = await h.start();
    const rvs = new Map<string, string>();
    for (const [name, status] of cases) await h.setStatus(name, await status());
    // The spec changes after the failed attempt: Flux has not attempted generation 2 yet.
    const changed = await h.client.mergePatch(h.path('changed'), { spec: { values: { a: 1 } } });
    await h.settle(
      'changed',
      String(isObject(changed) && isObject(changed.metadata) && changed.metadata.resourceVersion),
    );
    for (const [name] of cases) rvs.set(name, (await h.get(name)).metadata.resourceVersion);

    for (let i = 0; i < 10; i++) await h.advance(h.config['retry-max-delay']);
    for (const [name] of cases) {
      const hr = await h.get(name);
      expect(hr.metadata.resourceVersion, name).toBe(rvs.get(name));
      expect(ours(hr), name).toEqual(name === 'optout' ? { [Annotations.retry]: 'false' } : {});
    }
    expect(await h.outcome(op, 'triggered')).toBe(0);
  });

  it('malformed per-release settings: a Warning event and the defaults, never a crash', async () => {
    const h = await harness();
    await h.createRelease('app', {
      annotations: {
        [Annotations.retryPatterns]: 'connection reset\n(unclosed',
        [Annotations.retryAttempts]: 'lots',
      },
    });
    const op = await h.start();
    await h.setStatus('app', stalledFailure(h.shape('app', 1), 'upgrade', HelmErrors.legacyTimeout));
    await eventually(async () =>
      (await h.events('app')).some(
        (e) => e.reason === 'InvalidRetrySettings' && e.type === 'Warning' && e.note.includes('(unclosed'),
      ),
    );
    await h.advance(h.delay(await h.get('app'), 0));
    expect((await h.get('app')).metadata.annotations[Annotations.retryAttempts]).toBe('1');
    expect(await h.outcome(op, 'triggered')).toBe(1);
  });

  it('--notify-only: events and metrics, no writes', async () => {
    const h = await harness(['--notify-only']);
    await h.createRelease('app');
    const op = await h.start();
    const rv = await h.setStatus(
      'app',
      stalledFailure(h.shape('app', 1), 'upgrade', HelmErrors.legacyTimeout),
    );
    for (let i = 0; i < 4; i++) await h.advance(h.config['retry-max-delay']);
    expect((await h.get('app')).metadata.resourceVersion).toBe(rv);
    expect(await h.outcome(op, 'notified')).toBe(1);
    await eventually(async () => (await h.events('app')).some((e) => e.reason === 'RetryDue'));
  });

  it('--no-retries: nothing is written', async () => {
    const h = await harness(['--no-retries']);
    await h.createRelease('app');
    await h.start();
    const rv = await h.setStatus(
      'app',
      stalledFailure(h.shape('app', 1), 'upgrade', HelmErrors.legacyTimeout),
    );
    for (let i = 0; i < 4; i++) await h.advance(h.config['retry-max-delay']);
    expect((await h.get('app')).metadata.resourceVersion).toBe(rv);
  });

  it('the budget counts Flux’s own attempts: remediation.retries 2 and --retry-max-attempts 4 make 5 failed attempts, not 15', async () => {
    const h = await harness(['--retry-max-attempts', '4']);
    await h.createRelease('app');
    const op = await h.start();
    // Flux made its 3 attempts (retries: 2) and stalled.
    await h.setStatus('app', {
      ...stalledFailure(h.shape('app', 1), 'upgrade', HelmErrors.legacyTimeout),
      failures: 3,
      upgradeFailures: 3,
    });
    for (let attempt = 0; attempt < 2; attempt++) {
      await h.advance(h.delay(await h.get('app'), attempt));
      const hr = await h.get('app');
      expect(hr.metadata.annotations[Annotations.retryAttempts]).toBe(String(attempt + 1));
      expect(hr.metadata.annotations[Flux.resetAt]).toBeUndefined();
      await h.fluxFailsAgain('app');
    }
    const spent = await eventually(async () => {
      const hr = await h.get('app');
      return hr.metadata.annotations[Annotations.retryExhausted] ? hr : undefined;
    });
    expect(spent.status.upgradeFailures).toBe(5);
    expect(await h.outcome(op, 'triggered')).toBe(2);
    await eventually(async () =>
      (await h.events('app')).some(
        (e) => e.reason === 'RetriesExhausted' && e.note.includes('5 failed attempts'),
      ),
    );
  });

  it('RetryOnFailure: Flux retries by itself, so no write; one event per episode and a gauge', async () => {
    const h = await harness();
    await h.createRelease('app', { upgrade: { strategy: { name: 'RetryOnFailure' } } });
    const op = await h.start();
    const rv = await h.setStatus(
      'app',
      retryOnFailureFailure(h.shape('app', 1), 'upgrade', HelmErrors.legacyTimeout),
    );
    await eventually(async () => (await h.events('app')).some((e) => e.reason === 'FluxRetries'));
    // Flux's next attempts fail the same way: no second event, no write of ours.
    for (let failures = 2; failures <= 4; failures++) {
      await h.setStatus(
        'app',
        retryOnFailureFailure(h.shape('app', 1), 'upgrade', HelmErrors.legacyTimeout, failures),
      );
      await h.advance(h.config['retry-max-delay']);
    }
    const gauge = await op.registry.getSingleMetric('helmrelease_autopilot_retry_flux_retrying')?.get();
    expect(gauge?.values[0]?.value).toBe(1);
    expect((await h.events('app')).filter((e) => e.reason === 'FluxRetries')).toHaveLength(1);
    expect(ours(await h.get('app'))).toEqual({});
    expect(Number((await h.get('app')).metadata.resourceVersion)).toBeGreaterThan(Number(rv));
    expect(await h.outcome(op, 'triggered')).toBe(0);
  });

  it('retry-reset-at restarts the budget once (Flux’s too); removing retry-exhausted by hand is undone by the webhook', async () => {
    const fixture = await startWebhookFixture({ operatorUser: inject('operatorUser') });
    cleanups.push(() => fixture.stop());
    const h = await harness(['--retry-max-attempts', '1'], await fixture.namespace());
    await h.createRelease('app');
    const op = await h.start();
    await h.setStatus('app', stalledFailure(h.shape('app', 1), 'upgrade', HelmErrors.legacyTimeout));
    await h.advance(h.delay(await h.get('app'), 0));
    await h.fluxFailsAgain('app');
    const exhausted = await eventually(async () => {
      const hr = await h.get('app');
      return hr.metadata.annotations[Annotations.retryExhausted] ? hr : undefined;
    });

    // Removing the annotation by hand: the webhook's carry-over restores it (an applier looks the same).
    await h.client.mergePatch(h.path('app'), {
      metadata: { annotations: { [Annotations.retryExhausted]: null } },
    });
    expect((await h.get('app')).metadata.annotations[Annotations.retryExhausted]).toBe(
      exhausted.metadata.annotations[Annotations.retryExhausted],
    );

    // The supported way: a new token. One write clears our state and asks for an attempt with a reset.
    await h.client.mergePatch(h.path('app'), {
      metadata: { annotations: { [Annotations.retryResetAt]: 'restart-1' } },
    });
    const restarted = await eventually(async () => {
      const hr = await h.get('app');
      return hr.metadata.annotations[Annotations.retryResetHandled] === 'restart-1' ? hr : undefined;
    });
    const token = restarted.metadata.annotations[Flux.requestedAt];
    expect(restarted.metadata.annotations[Flux.resetAt]).toBe(token);
    expect(restarted.metadata.annotations[Annotations.retryExhausted]).toBeUndefined();
    expect(restarted.metadata.annotations[Annotations.retryAttempts]).toBe('0');
    expect(await h.outcome(op, 'restarted')).toBe(1);

    // Flux handles the reset (its counters start again) and fails: one more retry of ours, then exhausted.
    await h.fluxFailsAgain('app');
    expect((await h.get('app')).status.upgradeFailures).toBe(1);
    // (+1 ms: the restart's token was moved a millisecond past the first retry's, made at the same time.)
    await h.advance(h.delay(await h.get('app'), 0) + 1);
    expect((await h.get('app')).metadata.annotations[Annotations.retryAttempts]).toBe('1');
    await h.fluxFailsAgain('app');
    await eventually(async () => (await h.get('app')).metadata.annotations[Annotations.retryExhausted]);
    // The same token does not act twice, however long it stays.
    await h.settle('app');
    const rv = (await h.get('app')).metadata.resourceVersion;
    for (let i = 0; i < 4; i++) await h.advance(h.config['retry-max-delay']);
    expect((await h.get('app')).metadata.resourceVersion).toBe(rv);
    expect(await h.outcome(op, 'restarted')).toBe(1);
    expect(await h.outcome(op, 'triggered')).toBe(2);
  });

  it('starts again in one process, on the same registry and metrics, and carries on from the stored state', async () => {
    const h = await harness();
    await h.createRelease('app');
    // One metrics object per registry (prom-client refuses a name twice). In production the controller
    // starts once per process: losing the Lease ends the process (ADR 0003).
    const registry = new Registry();
    const metrics = createRetryMetrics(registry);
    const first = await h.start(registry, metrics);
    await h.setStatus('app', stalledFailure(h.shape('app', 1), 'upgrade', HelmErrors.legacyTimeout));
    await h.advance(h.delay(await h.get('app'), 0));
    await h.stop(first);
    const second = await h.start(registry, metrics);
    await h.fluxFailsAgain('app');
    await h.advance(h.delay(await h.get('app'), 1));
    expect((await h.get('app')).metadata.annotations[Annotations.retryAttempts]).toBe('2');
    expect(await h.outcome(second, 'triggered')).toBe(2);
  });
});
