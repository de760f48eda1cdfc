// npm run demo: the operator doing its job, end to end, on this machine. The e2e tier's local environment
// (test/e2e/support/env.ts) starts the control plane, the real helm-controller and the operator with its
// webhook registered on loopback; the demo then installs a chart with values from a ConfigMap, changes the
// ConfigMap, and prints each step with its timing: the webhook's stamp, the operator's trigger, the new Helm
// revision, and `explain`. Ctrl-C (or the end) stops everything: every process runs under hack/lib/tether.sh.
// `npm run demo -- --keep` keeps the cluster running after the last step, until Ctrl-C.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parseExplainArgs, runExplain } from '../cmd/helmrelease-autopilot/explain/main.ts';
import { ConfigMaps, objectPath } from '../src/kube/resources.ts';
import { Annotations, Flux, Labels } from '../src/names.ts';
import { isObject, type JsonObject, str } from '../src/util/narrow.ts';
import { publishChart } from '../test/e2e/support/artifacts.ts';
import { configMapChart } from '../test/e2e/support/chart.ts';
import { E2E_OPERATOR_TUNING, type E2eEnv, startE2eEnv } from '../test/e2e/support/env.ts';
import { configMapData, createRelease, setConfigMap } from '../test/e2e/support/flux.ts';
import { helmControllerVersions } from '../test/e2e/support/helm-controller.ts';
import { until } from '../test/e2e/support/wait.ts';
import { HACK_DIR } from './controlplane.ts';

const run = promisify(execFile);
const started = Date.now();
const elapsed = () => `${((Date.now() - started) / 1000).toFixed(1).padStart(5)} s`;
const say = (line = '') => process.stdout.write(line === '' ? '\n' : `[${elapsed()}] ${line}\n`);
const detail = (line: string) => process.stdout.write(`          ${line}\n`);
const ms = (from: number) => `${Date.now() - from} ms`;

let starting: Promise<E2eEnv> | undefined;
let stopping: Promise<void> | undefined;
function stop(code: number, why?: string): Promise<void> {
  stopping ??= (async () => {
    if (why) process.stderr.write(`\n${why}: stopping\n`);
    // Interrupted while starting: let the start finish or fail (its own clean-up), then stop what it started.
    await starting?.then(
      (env) => env.stop(),
      () => {},
    );
    process.stdout.write(`[${elapsed()}] stopped: control plane, helm-controller and operator are gone\n`);
    process.exit(code);
  })();
  return stopping;
}
process.on('SIGINT', () => void stop(130, 'SIGINT'));
process.on('SIGTERM', () => void stop(143, 'SIGTERM'));

/** The cached binaries, or a build from the Go module proxy (its progress on stderr): minutes the first time. */
async function binaries(version: string): Promise<void> {
  say(
    `binaries: kube-apiserver, etcd and helm-controller ${version} (cached after the first run, which builds them)`,
  );
  for (const [what, script, args] of [
    ['kube-apiserver + etcd', 'build-control-plane.sh', []],
    [`helm-controller ${version}`, 'build-helm-controller.sh', [version]],
  ] as const) {
    const t = Date.now();
    const { stdout } = await run('bash', [join(HACK_DIR, script), ...args], { maxBuffer: 64 << 20 });
    detail(`${what}: ${stdout.trim().split('\n').pop()} (${ms(t)})`);
  }
}

async function main(): Promise<void> {
  const { current } = helmControllerVersions();
  await binaries(current);

  let t = Date.now();
  say('starting etcd + kube-apiserver, helm-controller and the operator (webhook registered on loopback)');
  starting = startE2eEnv({ helmControllerVersion: current });
  const env = await starting;
  const { client } = env;
  detail(`ready in ${ms(t)}; KUBECONFIG=${env.kubeconfigPath}`);
  detail(`logs: ${env.processes.map((p) => p.log).join(', ')}`);
  detail(`operator flags: ${E2E_OPERATOR_TUNING.join(' ')}`);

  const ns = await env.namespace('demo');
  say(`namespace ${ns}: a sample chart served from loopback (one ConfigMap rendering .Values.greeting)`);
  const chart = configMapChart();
  await publishChart(client, env.artifacts, ns, 'chart', chart);
  detail(
    `HelmChart ${ns}/chart -> ${env.artifacts.baseUrl}/charts/${chart.name}-${chart.version}-... (${chart.digest.slice(0, 19)}...)`,
  );

  await setConfigMap(client, ns, 'app-values', { 'values.yaml': 'greeting: hello\n' });
  say(`ConfigMap ${ns}/app-values: values.yaml = "greeting: hello"`);

  t = Date.now();
  const created = (await createRelease(client, ns, 'app', {
    chart: 'chart',
    valuesFrom: [{ kind: 'ConfigMap', name: 'app-values' }],
  })) as JsonObject;
  const meta = isObject(created.metadata) ? created.metadata : {};
  const labels = isObject(meta.labels) ? meta.labels : {};
  const annotations = isObject(meta.annotations) ? meta.annotations : {};
  const stamped = str(annotations[Annotations.valuesDigest]);
  say(`HelmRelease ${ns}/app created, valuesFrom ConfigMap app-values; stamped by the webhook at admission:`);
  detail(`${Labels.managed}=${str(labels[Labels.managed]) ?? '(missing)'}`);
  detail(`${Annotations.valuesDigest}=${stamped ?? '(missing)'}`);

  let o = await until(
    env,
    ns,
    'app',
    (x) => x.ready && x.history[0]?.status === 'deployed',
    'installed',
    120_000,
  );
  say(`helm-controller installed it: Helm revision ${o.history[0]?.version} in ${ms(t)}`);
  detail(
    `ConfigMap ${ns}/app-rendered: greeting=${(await configMapData(client, ns, 'app-rendered')).greeting}`,
  );

  t = Date.now();
  await client.mergePatch(objectPath(ConfigMaps, ns, 'app-values'), {
    data: { 'values.yaml': 'greeting: bonjour\n' },
  });
  say(`ConfigMap ${ns}/app-values changed: values.yaml = "greeting: bonjour"`);
  o = await until(
    env,
    ns,
    'app',
    (x) => x.annotations[Flux.requestedAt] !== undefined,
    'the operator to trigger',
    60_000,
  );
  const token = o.annotations[Flux.requestedAt] as string;
  // The token is the operator's clock when it decided (same machine): the trigger latency, debounce included.
  say(`the operator triggered the release ${Date.parse(token) - t} ms after the change (debounce 500 ms):`);
  detail(`${Flux.requestedAt}=${token}`);
  detail(
    `${Annotations.valuesDigest}: ${shortDigest(stamped)}… -> ${shortDigest(o.annotations[Annotations.valuesDigest])}…`,
  );
  o = await until(
    env,
    ns,
    'app',
    (x) => x.ready && x.history[0]?.version === 2 && str(x.status.lastHandledReconcileAt) === token,
    'the upgrade',
    120_000,
  );
  say(`helm-controller upgraded it: Helm revision ${o.history[0]?.version}, ${ms(t)} after the change`);
  detail(
    `ConfigMap ${ns}/app-rendered: greeting=${(await configMapData(client, ns, 'app-rendered')).greeting}`,
  );

  t = Date.now();
  const explained = await runExplain(
    client,
    parseExplainArgs([`${ns}/app`, '--operator-deployment=', ...E2E_OPERATOR_TUNING]),
  );
  say(
    `npx helmrelease-autopilot explain ${ns}/app   (${ms(t)}; the operator's flags given, it runs outside a Deployment here)`,
  );
  process.stdout.write(`\n${explained.output}\n`);
  say(`done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  if (process.argv.includes('--keep')) {
    say(`kept running (--keep): export KUBECONFIG=${env.kubeconfigPath}; Ctrl-C stops everything`);
    await new Promise(() => {});
  }
}

main().then(
  () => stop(0),
  (err: unknown) => {
    process.stderr.write(`demo failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    void stop(1);
  },
);

/** The end of a digest, enough to tell two apart on screen ("hmac-sha256:v2:<keyid>:<hex>" or "sha256:<hex>"). */
function shortDigest(digest: string | undefined): string {
  if (!digest) return '(none)';
  const hex = digest.slice(digest.lastIndexOf(':') + 1);
  return hex.slice(0, 12);
}
