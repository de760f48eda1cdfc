// `helmrelease-autopilot explain` against a real API server: one test per verdict. Where the operator acts
// (a trigger, a spent retry budget) the real operator process acts first and explain is read afterwards, so
// the test proves explain describes what the operator did; where it waits (a due trigger, a scheduled
// retry) explain's answer is checked against the state and the flags alone. The last tests run explain as a
// user with view-like RBAC and no access to Secrets, and through the package's bin (npx).
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import {
  CREATED_UNSTAMPED_ASSUMPTION,
  type Explanation,
} from '../../cmd/helmrelease-autopilot/explain/explain.ts';
import { parseExplainArgs, runExplain } from '../../cmd/helmrelease-autopilot/explain/main.ts';
import { parseValuesFrom } from '../../src/flux/helmrelease.ts';
import type { KubeClient } from '../../src/kube/client.ts';
import { ConfigMaps, collectionPath, HelmReleases, objectPath, Secrets } from '../../src/kube/resources.ts';
import { Annotations, Flux, Labels } from '../../src/names.ts';
import type { JsonObject } from '../../src/util/narrow.ts';
import { keyBytesOf, valuesDigestOfBytes } from '../../src/values/digest.ts';
import { DIGEST_KEY_SECRET } from '../../src/values/key-secret.ts';
import {
  adminClient,
  createNamespace,
  eventually,
  kubeconfigPath,
  userClient,
  userKubeconfig,
} from '../support/cluster.ts';
import { TEST_DIGEST_KEYS } from '../support/digest-key.ts';
import { HelmErrors, released, stalledFailure } from '../support/flux-status.ts';
import { type OperatorProcess, startOperator } from '../support/operator.ts';

const run = promisify(execFile);
const ROOT = join(import.meta.dirname, '..', '..');

/** Digest of one ConfigMap's values.yaml as a release consuming it through valuesFrom gets it stamped. */
function digestOf(
  namespace: string,
  valuesFrom: JsonObject[],
  data: Record<string, Record<string, string>>,
): string {
  const refs = parseValuesFrom(valuesFrom);
  if (!refs.ok) throw new Error(refs.error);
  return valuesDigestOfBytes(TEST_DIGEST_KEYS.current, namespace, refs.value, (ref) =>
    keyBytesOf(ref.kind, { data: data[ref.name] ?? {} }, ref.valuesKey),
  );
}

const CM_VALUES = [{ kind: 'ConfigMap', name: 'values' }];
const seconds = (ms: number) => new Date(Math.floor(ms / 1000) * 1000).toISOString().replace('.000Z', 'Z');

interface Fixture {
  client: KubeClient;
  ns: string;
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function fixture(): Promise<Fixture> {
  const client = await adminClient();
  cleanups.push(() => client.close());
  const ns = await createNamespace(client, 'explain');
  // The namespace doubles as the operator's (its processes here run with --namespace=ns): a known key there.
  await client.create(collectionPath(Secrets, ns), {
    metadata: { name: DIGEST_KEY_SECRET },
    data: { current: Buffer.from(TEST_DIGEST_KEYS.current.secret).toString('base64') },
  });
  return { client, ns };
}

function operator(ns: string, flags: string[]): OperatorProcess {
  const op = startOperator(ns, flags);
  cleanups.push(async () => {
    op.proc.kill('SIGTERM');
    await op.exit;
  });
  return op;
}

async function configMap(
  f: Fixture,
  name: string,
  data: Record<string, string>,
  labels: Record<string, string> = {},
) {
  await f.client.create(collectionPath(ConfigMaps, f.ns), { metadata: { name, labels }, data });
}

async function release(
  f: Fixture,
  name: string,
  o: {
    valuesFrom?: JsonObject[];
    annotations?: Record<string, string>;
    labels?: Record<string, string>;
    suspend?: boolean;
  },
) {
  await f.client.create(collectionPath(HelmReleases, f.ns), {
    apiVersion: `${Flux.group}/${Flux.version}`,
    kind: Flux.kind,
    metadata: { name, annotations: o.annotations ?? {}, labels: o.labels ?? {} },
    spec: {
      interval: '5m',
      chart: { spec: { chart: 'podinfo', sourceRef: { kind: 'HelmRepository', name: 'podinfo' } } },
      ...(o.valuesFrom ? { valuesFrom: o.valuesFrom } : {}),
      ...(o.suspend ? { suspend: true } : {}),
    },
  });
}

async function setStatus(f: Fixture, name: string, status: Record<string, unknown>) {
  await f.client.mergePatch(`${objectPath(HelmReleases, f.ns, name)}/status`, { status });
}

/** explain as the CLI runs it, with these arguments; no operator Deployment exists here. */
async function explain(client: KubeClient, args: string[], now = Date.now): Promise<Explanation[]> {
  // The operator's namespace (its key Secret) is the release's here: the namespace named in the arguments.
  const named = args.find((a) => !a.startsWith('-') && a.includes('/'))?.split('/')[0];
  const flagged = args[args.findIndex((a) => a === '-n' || a === '--namespace') + 1];
  const ns = named ?? (args.some((a) => a === '-n' || a === '--namespace') ? flagged : undefined);
  const o = parseExplainArgs([
    ...args,
    '--operator-deployment=',
    ...(ns ? [`--operator-namespace=${ns}`] : []),
  ]);
  return (await runExplain(client, o, now)).explanations;
}

async function explainOne(client: KubeClient, target: string, flags: string[] = []): Promise<Explanation> {
  const [e] = await explain(client, [target, ...flags]);
  if (!e) throw new Error('no explanation');
  return e;
}

describe('explain on a real API server', () => {
  it('a consumed key changed and the operator is not running: trigger due (values-changed), digest stamped and now differ', async () => {
    const f = await fixture();
    const v1 = { values: { 'values.yaml': 'greeting: one\n' } };
    await configMap(f, 'values', v1.values, { [Flux.watchLabel]: 'Enabled' });
    await release(f, 'app', {
      valuesFrom: CM_VALUES,
      labels: { [Labels.managed]: 'true' },
      annotations: { [Annotations.valuesDigest]: digestOf(f.ns, CM_VALUES, v1) },
    });
    const v2 = { values: { 'values.yaml': 'greeting: two\n' } };
    await f.client.mergePatch(objectPath(ConfigMaps, f.ns, 'values'), { data: v2.values });

    const e = await explainOne(f.client, `${f.ns}/app`);
    expect(e.sources).toEqual([
      {
        kind: 'ConfigMap',
        name: 'values',
        valuesKey: 'values.yaml',
        optional: false,
        present: true,
        keyPresent: true,
        watchedByFlux: true,
      },
    ]);
    expect(e.digest).toEqual({ stamped: digestOf(f.ns, CM_VALUES, v1), now: digestOf(f.ns, CM_VALUES, v2) });
    expect(e.trigger).toMatchObject({ verdict: 'due', action: 'trigger', reason: 'values-changed' });
    expect(e.trigger.writes).toEqual([Flux.requestedAt]);
    expect(e.retry).toMatchObject({ status: 'none', verdict: 'not-failed' });
    expect(e.notes).toEqual([]);
  });

  it('triggered: after the real operator acted, the trigger is not needed, requestedAt waits for Flux and our ValuesChanged Event is shown', async () => {
    const f = await fixture();
    const v1 = { values: { 'values.yaml': 'greeting: one\n' } };
    await configMap(f, 'values', v1.values);
    await release(f, 'app', {
      valuesFrom: CM_VALUES,
      labels: { [Labels.managed]: 'true' },
      annotations: { [Annotations.valuesDigest]: digestOf(f.ns, CM_VALUES, v1) },
    });
    const flags = ['--debounce=0'];
    operator(f.ns, flags);
    const v2 = { values: { 'values.yaml': 'greeting: two\n' } };
    await f.client.mergePatch(objectPath(ConfigMaps, f.ns, 'values'), { data: v2.values });
    const e = await eventually(
      async () => {
        const x = await explainOne(f.client, `${f.ns}/app`, [`--watch-namespace=${f.ns}`, ...flags]);
        return x.events.some((ev) => ev.reason === 'ValuesChanged') ? x : undefined;
      },
      { timeoutMs: 20_000, intervalMs: 200, what: 'the operator to trigger app' },
    );
    expect(e.digest).toEqual({ stamped: digestOf(f.ns, CM_VALUES, v2), now: digestOf(f.ns, CM_VALUES, v2) });
    expect(e.trigger).toMatchObject({ verdict: 'not-needed', action: 'skip', reason: 'unchanged' });
    expect(e.flux.requests.requestedAt).toMatch(/^\d{4}-\d\d-\d\dT/);
    expect(e.flux.handled.lastHandledReconcileAt).toBeUndefined();
    expect(e.operator).toMatchObject({ inScope: true, scope: `namespace ${f.ns}` });
    const [event] = e.events;
    expect(event).toMatchObject({ type: 'Normal', reason: 'ValuesChanged' });
    expect(event?.note).toContain(e.flux.requests.requestedAt);
  });

  it('not needed: the stamped digest is current; a missing key is reported as the digest reads it', async () => {
    const f = await fixture();
    const refs = [
      ...CM_VALUES,
      { kind: 'ConfigMap', name: 'values', valuesKey: 'extra.yaml', optional: true },
    ];
    const data = { values: { 'values.yaml': 'a: 1\n' } };
    await configMap(f, 'values', data.values);
    await release(f, 'app', {
      valuesFrom: refs,
      labels: { [Labels.managed]: 'true' },
      annotations: { [Annotations.valuesDigest]: digestOf(f.ns, refs, data) },
    });
    const e = await explainOne(f.client, `${f.ns}/app`);
    expect(e.trigger).toEqual({ verdict: 'not-needed', action: 'skip', reason: 'unchanged' });
    expect(e.sources.map((s) => [s.valuesKey, s.present, s.keyPresent])).toEqual([
      ['values.yaml', true, true],
      ['extra.yaml', true, false],
    ]);
  });

  it.each([
    ['suspended', { suspend: true }, 'suspended', 'suspended'],
    ['ignored', { annotations: { [Annotations.ignore]: 'true' } }, 'ignored', 'opted-out'],
  ] as const)(
    '%s: the trigger is held and the retry left alone, with the decisions’ own reasons',
    async (_, o, skip, verdict) => {
      const f = await fixture();
      await configMap(f, 'values', { 'values.yaml': 'a: 1\n' });
      await release(f, 'app', { valuesFrom: CM_VALUES, ...o });
      const at = seconds(Date.now() - 60_000);
      await setStatus(
        f,
        'app',
        stalledFailure(
          { namespace: f.ns, name: 'app', generation: 1, at },
          'upgrade',
          HelmErrors.legacyTimeout,
        ),
      );
      const e = await explainOne(f.client, `${f.ns}/app`);
      expect(e.trigger).toEqual({ verdict: 'held', action: 'skip', reason: skip });
      expect(e.retry).toMatchObject({ status: 'none', verdict, action: 'none' });
      expect(e.digest.now).toBeUndefined();
    },
  );

  it('retry pending: a timed-out upgrade waits for its backoff; the next retry time follows the flags (defaults, then a Deployment-less override)', async () => {
    const f = await fixture();
    await release(f, 'app', {});
    const endedAt = Date.now() - 5_000;
    await setStatus(
      f,
      'app',
      stalledFailure(
        { namespace: f.ns, name: 'app', generation: 1, at: seconds(endedAt) },
        'upgrade',
        HelmErrors.kstatusTimeout,
      ),
    );
    const ended = Date.parse(seconds(endedAt));
    const e = await explainOne(f.client, `${f.ns}/app`);
    expect(e.retry).toMatchObject({
      status: 'pending',
      verdict: 'retry',
      action: 'wait',
      attempts: 0,
      maxAttempts: 5,
    });
    expect(e.retry.reason).toMatch(/^UpgradeFailed matches \//);
    expect(e.retry.episode).toMatch(/^[0-9a-f]{16}$/);
    // --retry-base-delay 30s, --retry-jitter 0.2 (defaults): the first retry 30 to 36 s after the failure.
    const next = Date.parse(e.retry.nextRetryAt ?? '');
    expect(next - ended).toBeGreaterThanOrEqual(30_000);
    expect(next - ended).toBeLessThanOrEqual(36_000);
    expect(e.flux.conditions.map((c) => `${c.type}=${c.status}/${c.reason}`)).toEqual([
      'Stalled=True/RetriesExceeded',
      'Ready=False/UpgradeFailed',
      'Released=False/UpgradeFailed',
    ]);

    const slower = await explainOne(f.client, `${f.ns}/app`, [
      '--retry-base-delay=2m',
      '--retry-jitter=0',
      '--retry-max-attempts=2',
    ]);
    expect(slower.retry).toMatchObject({
      status: 'pending',
      maxAttempts: 2,
      nextRetryAt: new Date(ended + 120_000).toISOString(),
    });
    const due = await explainOne(f.client, `${f.ns}/app`, ['--retry-base-delay=1s', '--retry-max-delay=1s']);
    expect(due.retry).toMatchObject({ status: 'due', action: 'retry', attempts: 0 });
  });

  it('exhausted: the real operator spent the budget; explain shows the attempts, when, and our RetriesExhausted Event', async () => {
    const f = await fixture();
    await release(f, 'app', {});
    const flags = ['--retry-max-attempts=0'];
    operator(f.ns, flags);
    await setStatus(
      f,
      'app',
      stalledFailure(
        { namespace: f.ns, name: 'app', generation: 1, at: seconds(Date.now()) },
        'install',
        HelmErrors.legacyTimeout,
      ),
    );
    const e = await eventually(
      async () => {
        const x = await explainOne(f.client, `${f.ns}/app`, [`--watch-namespace=${f.ns}`, ...flags]);
        return x.events.some((ev) => ev.reason === 'RetriesExhausted') ? x : undefined;
      },
      { timeoutMs: 20_000, intervalMs: 200, what: 'the operator to exhaust the retries of app' },
    );
    expect(e.retry).toMatchObject({
      status: 'exhausted',
      action: 'exhausted',
      verdict: 'retry',
      attempts: 0,
      maxAttempts: 0,
    });
    expect(e.retry.exhaustedAt).toMatch(/^\d{4}-\d\d-\d\dT/);
    expect(e.events.at(-1)).toMatchObject({ type: 'Warning', reason: 'RetriesExhausted' });

    // Ready again: the episode is over (the operator clears its state; explain says there is nothing to retry).
    await setStatus(
      f,
      'app',
      released({ namespace: f.ns, name: 'app', generation: 1, at: seconds(Date.now()) }),
    );
    const ready = await explainOne(f.client, `${f.ns}/app`, ['--retry-max-attempts=0']);
    expect(ready.retry).toMatchObject({ status: 'none', verdict: 'ready' });
  });

  it('a user without access to Secrets gets everything else, and a clear note on what it could not read', async () => {
    const f = await fixture();
    await f.client.create(collectionPath(Secrets, f.ns), {
      metadata: { name: 'creds' },
      stringData: { 'values.yaml': 'password: hunter2\n' },
    });
    await configMap(f, 'values', { 'values.yaml': 'a: 1\n' });
    const both = [...CM_VALUES, { kind: 'Secret', name: 'creds' }];
    await release(f, 'both', { valuesFrom: both, labels: { [Labels.managed]: 'true' } });
    await release(f, 'plain', {
      valuesFrom: CM_VALUES,
      labels: { [Labels.managed]: 'true' },
      annotations: {
        [Annotations.valuesDigest]: digestOf(f.ns, CM_VALUES, { values: { 'values.yaml': 'a: 0\n' } }),
      },
    });
    await setStatus(
      f,
      'both',
      stalledFailure(
        { namespace: f.ns, name: 'both', generation: 1, at: seconds(Date.now()) },
        'upgrade',
        HelmErrors.legacyTimeout,
      ),
    );
    const user = `viewer-${f.ns}`;
    await viewLikeRole(f, user);
    const viewer = await userClient(user);
    cleanups.push(() => viewer.close());
    // The viewer really cannot read the Secret.
    await expect(viewer.get(objectPath(Secrets, f.ns, 'creds'))).rejects.toMatchObject({ status: 403 });

    const e = await explainOne(viewer, `${f.ns}/both`);
    expect(e.sources).toEqual([
      expect.objectContaining({ kind: 'ConfigMap', present: true, keyPresent: true }),
      expect.objectContaining({
        kind: 'Secret',
        present: null,
        keyPresent: null,
        note: `no access to Secret ${f.ns}/creds`,
      }),
    ]);
    // Digests are keyed with the cluster's key, which a tenant may not read: no digest, and no guess.
    const noKey = `no access to the key Secret ${f.ns}/${DIGEST_KEY_SECRET}`;
    expect(e.digest).toEqual({ cannotCompute: noKey });
    expect(e.trigger).toEqual({ verdict: 'unknown', reason: `cannot compute: ${noKey}` });
    expect(e.retry).toMatchObject({ status: 'pending', verdict: 'retry' });
    expect(e.flux.conditions).toHaveLength(3);
    expect(e.notes).toEqual([
      `no access to Secret ${f.ns}/creds`,
      'cannot list ConfigMaps in all namespaces: links from ConfigMaps in other namespaces are unknown',
      `cannot list Secrets in ${f.ns}: links from Secrets in any namespace are unknown`,
    ]);
    // Without access to the operator's Deployment, its flags are assumed to be the defaults, and it says so.
    const [withDeployment] = (await runExplain(viewer, parseExplainArgs([`${f.ns}/both`]))).explanations;
    expect(withDeployment?.notes[0]).toMatch(
      /^no access to Deployment helmrelease-autopilot\/helmrelease-autopilot: the operator's flags are unknown, explain assumes the defaults$/,
    );
    // A release that consumes no Secret still needs the key for its digest: the same honest "unknown".
    const plain = await explainOne(viewer, `${f.ns}/plain`);
    expect(plain.trigger).toEqual({ verdict: 'unknown', reason: `cannot compute: ${noKey}` });
    // The admin's verdict on the Secret-consuming release exists: the viewer's "unknown" hid it, it did not guess.
    const admin = await explainOne(f.client, `${f.ns}/both`);
    expect(admin.trigger).toMatchObject({ verdict: 'due', reason: 'values-changed' });
  });

  it('--all lists the releases that need attention as a table, and -o json all of them', async () => {
    const f = await fixture();
    const data = { values: { 'values.yaml': 'a: 1\n' } };
    await configMap(f, 'values', data.values);
    const current = { [Annotations.valuesDigest]: digestOf(f.ns, CM_VALUES, data) };
    const stale = { [Annotations.valuesDigest]: digestOf(f.ns, CM_VALUES, { values: {} }) };
    const managed = { [Labels.managed]: 'true' };
    await release(f, 'quiet', { valuesFrom: CM_VALUES, labels: managed, annotations: current });
    await release(f, 'changed', { valuesFrom: CM_VALUES, labels: managed, annotations: stale });
    await release(f, 'failing', { valuesFrom: CM_VALUES, labels: managed, annotations: current });
    await setStatus(
      f,
      'failing',
      stalledFailure(
        { namespace: f.ns, name: 'failing', generation: 1, at: seconds(Date.now()) },
        'upgrade',
        HelmErrors.legacyTimeout,
      ),
    );
    const o = parseExplainArgs([
      '--all',
      '-n',
      f.ns,
      '--operator-deployment=',
      `--operator-namespace=${f.ns}`,
    ]);
    const text = (await runExplain(f.client, o)).output;
    const lines = text.trim().split('\n');
    expect(lines[0]).toMatch(/^NAMESPACE\s+NAME\s+TRIGGER\s+RETRY\s+NEXT RETRY\s+WHY$/);
    expect(lines.filter((l) => l.startsWith(f.ns)).map((l) => l.split(/\s+/).slice(1, 4))).toEqual([
      ['changed', 'due', 'none'],
      ['failing', 'not-needed', 'pending'],
    ]);
    expect(lines).toContain('(2 of 3 releases need attention)');
    const json = JSON.parse((await runExplain(f.client, { ...o, output: 'json' })).output) as {
      examined: number;
      releases: { attention: boolean; release: { name: string } }[];
    };
    expect(json.examined).toBe(3);
    expect(json.releases.map((r) => [r.release.name, r.attention])).toEqual([
      ['changed', true],
      ['failing', true],
      ['quiet', false],
    ]);
  });

  it('runs as `npx helmrelease-autopilot explain` (the package bin, Node 24 from the devDependency) with a kubeconfig, read-only', async () => {
    const f = await fixture();
    await configMap(f, 'values', { 'values.yaml': 'a: 1\n' });
    // creationTimestamps count whole seconds: the release is created after the key Secret (the installation).
    await new Promise((r) => setTimeout(r, 1100));
    await release(f, 'app', { valuesFrom: CM_VALUES });
    const before = JSON.stringify(await f.client.get(objectPath(HelmReleases, f.ns, 'app')));
    const { stdout } = await run(
      'npx',
      [
        'helmrelease-autopilot',
        'explain',
        `${f.ns}/app`,
        '-o',
        'json',
        `--operator-namespace=${f.ns}`,
        '--kubeconfig',
        userKubeconfig('system:admin-explain', ['system:masters']),
      ],
      { cwd: ROOT, env: { PATH: process.env.PATH, HOME: process.env.HOME }, timeout: 60_000 },
    );
    const e = JSON.parse(stdout) as Explanation;
    // Admitted without the webhook here, after the installation: the operator triggers it once, as explain says
    // (the key Secret's creation tells, so nothing is assumed).
    expect(e.trigger).toMatchObject({ verdict: 'due', action: 'trigger', reason: 'created-unstamped' });
    expect(e.trigger.assumes ?? []).not.toContain(CREATED_UNSTAMPED_ASSUMPTION);
    expect(JSON.stringify(await f.client.get(objectPath(HelmReleases, f.ns, 'app')))).toBe(before);
    const text = await run(
      'npx',
      ['helmrelease-autopilot', 'explain', 'app', '-n', f.ns, `--operator-namespace=${f.ns}`],
      {
        cwd: ROOT,
        env: { PATH: process.env.PATH, HOME: process.env.HOME, KUBECONFIG: kubeconfigPath() },
        timeout: 60_000,
      },
    );
    expect(text.stdout).toContain(`HelmRelease ${f.ns}/app`);
    expect(text.stdout).toContain('Trigger:   DUE — trigger: created-unstamped');
  });
});

/** A ClusterRole like Kubernetes' view (no Secrets), bound to `user` in the test's namespace only. */
async function viewLikeRole(f: Fixture, user: string): Promise<void> {
  const rbac = '/apis/rbac.authorization.k8s.io/v1';
  const name = `explain-view-${f.ns}`;
  await f.client.create(`${rbac}/clusterroles`, {
    metadata: { name },
    rules: [
      { apiGroups: [''], resources: ['configmaps', 'events'], verbs: ['get', 'list', 'watch'] },
      { apiGroups: ['events.k8s.io'], resources: ['events'], verbs: ['get', 'list', 'watch'] },
      { apiGroups: [Flux.group], resources: [HelmReleases.plural], verbs: ['get', 'list', 'watch'] },
    ],
  });
  await f.client.create(`${rbac}/namespaces/${f.ns}/rolebindings`, {
    metadata: { name: 'viewer' },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name },
    subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: user }],
  });
}
