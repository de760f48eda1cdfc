// Where the operator's memory goes at scale (issue #12): the trigger benchmark's set (N releases, a ConfigMap
// and a Secret each, 100 Helm-release-sized Secrets), the operator at its default flags as `npm start` runs
// it plus --heapsnapshot-signal, a heap snapshot after its first pass, summed (summary.ts) into
// bench/results/heap-<date>.md with RSS (anonymous / file pages) and V8's heap figures.
//   npm run bench:heap -- [--releases N]   (default 10000)
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { startControlPlane } from '../../hack/controlplane.ts';
import { KubeClient } from '../../src/kube/client.ts';
import { collectionPath, Namespaces, Secrets } from '../../src/kube/resources.ts';
import { sleep } from '../../src/util/sleep.ts';
import { DIGEST_KEY_SECRET } from '../../src/values/key-secret.ts';
import { machine } from '../stats.ts';
import { type BenchContext, SETTLE_MS, startOperator } from '../triggers/context.ts';
import { BENCH_DIGEST_KEYS, createScaleSet, ReleasePool } from '../triggers/objects.ts';
import { ReleaseWatch } from '../triggers/observers.ts';
import {
  launchDescription,
  OPERATOR_NAMESPACE,
  servingCertDir,
  warmUp,
} from '../triggers/operator-process.ts';
import { summarize, summaryMarkdown } from './summary.ts';

const argv = process.argv.slice(2);
const i = argv.indexOf('--releases');
const releases = i >= 0 ? Number(argv[i + 1]) : 10_000;
if (!Number.isInteger(releases) || releases < 1) throw new Error(`--releases: not a count: ${argv[i + 1]}`);

const uptime = () => execFileSync('uptime', { encoding: 'utf8' }).trim();
const date = new Date().toISOString();
const before = uptime();
const snapshots = mkdtempSync(join(tmpdir(), 'bench-heap-'));
warmUp();
const cp = await startControlPlane();
const kc = new KubeConfig();
kc.loadFromFile(cp.kubeconfigPath);
const client = await KubeClient.create(kc);
const watch = await new ReleaseWatch(client).start();
const ctx: BenchContext = {
  cp,
  client,
  certDir: servingCertDir(),
  releases: watch,
  pool: new ReleasePool(releases),
  slowMs: Math.max(600_000, releases * 90),
  started: [],
};
let md: string;
try {
  await client.create(collectionPath(Namespaces), { metadata: { name: OPERATOR_NAMESPACE } });
  await client.create(collectionPath(Secrets, OPERATOR_NAMESPACE), {
    metadata: { name: DIGEST_KEY_SECRET },
    data: { current: Buffer.from(BENCH_DIGEST_KEYS.current.secret).toString('base64') },
  });
  process.stderr.write(`creating ${releases} releases\n`);
  await createScaleSet(client, releases, 100);
  const op = await startOperator(ctx, 'heap', [], {
    nodeArgs: ['--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${snapshots}`],
  });
  await op.waitReady(ctx.slowMs);
  await op.waitFirstPass(ctx.slowMs);
  await sleep(SETTLE_MS);
  const memory = { ...op.memory(), ...(await op.heap()) };
  process.kill(op.pid, 'SIGUSR2');
  let file: string | undefined;
  for (let waited = 0; !file && waited < 120_000; waited += 1000) {
    await sleep(1000);
    // Written as <name>.heapsnapshot once complete.
    file = readdirSync(snapshots).find((f) => f.endsWith('.heapsnapshot'));
  }
  if (!file) throw new Error('no heap snapshot within 120 s');
  await sleep(5000); // let the write finish
  await op.stop();
  const summary = summarize(join(snapshots, file));
  const m = machine();
  md = [
    `# Operator heap at ${releases.toLocaleString('en-US')} releases — ${date}`,
    '',
    `Machine: ${m.cpu} × ${m.cores}, ${m.memoryGB} GB; Node ${process.version}. Operator: ${launchDescription()}, default flags.`,
    `Command: \`npm run bench:heap -- --releases ${releases}\`. Load before: \`${before}\`; after: \`${uptime()}\`.`,
    '',
    `After the first pass and ${SETTLE_MS / 1000} s: ${JSON.stringify(memory)}`,
    '',
    summaryMarkdown(summary),
  ].join('\n');
} finally {
  for (const op of ctx.started) if (op.alive()) await op.kill();
  await watch.stop();
  client.close();
  await cp.stop();
  rmSync(ctx.certDir, { recursive: true, force: true });
  rmSync(snapshots, { recursive: true, force: true });
}
const dir = join(import.meta.dirname, '..', 'results');
mkdirSync(dir, { recursive: true });
const stem = `heap-${date.slice(0, 19).replace(/[:T]/g, '-')}`;
writeFileSync(join(dir, `${stem}.md`), md);
process.stdout.write(`${md}\nwritten: bench/results/${stem}.md\n`);
