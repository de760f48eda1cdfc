// A real Kubernetes control plane on loopback: etcd + kube-apiserver built from the Go module proxy
// (hack/build-control-plane.sh), RBAC on, an admin client certificate, Flux's CRDs read from the Go
// module cache. Every process is started through hack/lib/tether.sh, so none outlives its parent.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { KubeConfig } from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';
import { ApiError, KubeClient } from '../src/kube/client.ts';
import { createCA, createSigningKey, issueCertificate, type KeyPair } from '../src/tls/certs.ts';
import { sleep } from '../src/util/sleep.ts';

const run = promisify(execFile);
export const HACK_DIR = dirname(fileURLToPath(import.meta.url));

export interface ControlPlaneOptions {
  /** Directory of kube-apiserver and etcd; default: built or cached by hack/build-control-plane.sh. */
  binDir?: string;
  /** Install Flux's CRDs (default true). */
  fluxCRDs?: boolean;
  /** Keep the data directory after stop (for debugging). */
  keepDir?: boolean;
  /** Extra kube-apiserver flags. */
  apiserverArgs?: string[];
  /**
   * Make the API server authenticate to admission webhooks with a client certificate (its
   * --admission-control-config-file gives MutatingAdmissionWebhook a kubeconfig), issued by a CA of its
   * own: ControlPlane.webhookClientCA. `hosts` are the kubeconfig user names the API server matches against
   * a webhook's host: "127.0.0.1:9443" (a URL webhook, with its port), "*.svc" (a Service webhook on 443).
   */
  webhookClientAuth?: { hosts: string[] };
}

interface Proc {
  name: string;
  tether: ChildProcess;
  pidFile: string;
  args: string[];
  log: string;
}

export class ControlPlane {
  readonly dir: string;
  readonly kubeconfigPath: string;
  readonly server: string;
  /** etcd's client URL (plain HTTP on loopback), e.g. for compaction in tests. */
  readonly etcdUrl: string;
  readonly ca: KeyPair;
  /** The CA of the client certificate the API server presents to webhooks (webhookClientAuth only). */
  readonly webhookClientCA: KeyPair | undefined;
  private readonly procs: Proc[];
  private readonly keepDir: boolean;
  private stopped = false;

  constructor(init: {
    dir: string;
    kubeconfigPath: string;
    server: string;
    etcdUrl: string;
    ca: KeyPair;
    webhookClientCA?: KeyPair;
    procs: Proc[];
    keepDir: boolean;
  }) {
    this.dir = init.dir;
    this.webhookClientCA = init.webhookClientCA;
    this.etcdUrl = init.etcdUrl;
    this.kubeconfigPath = init.kubeconfigPath;
    this.server = init.server;
    this.ca = init.ca;
    this.procs = init.procs;
    this.keepDir = init.keepDir;
  }

  /** PIDs of etcd and kube-apiserver themselves (not their tethers). */
  pids(): number[] {
    return this.procs.map((p) => Number(readFileSync(p.pidFile, 'utf8').trim())).filter((n) => n > 0);
  }

  /** A kubeconfig for another identity, signed by the cluster CA (client certificate). */
  userKubeconfig(user: string, groups: string[] = []): string {
    const cert = issueCertificate(this.ca, { commonName: user, organizations: groups, usage: 'client' });
    const path = join(this.dir, `kubeconfig-${user.replace(/[^\w.-]/g, '_')}`);
    writeFileSync(path, kubeconfigYaml(this.server, this.ca.cert, cert), { mode: 0o600 });
    return path;
  }

  /** Stops kube-apiserver (only), e.g. to prove watches survive an API server restart. */
  async stopApiserver(): Promise<void> {
    const p = this.proc('kube-apiserver');
    await stopProc(p);
  }

  /** Starts kube-apiserver again with the same flags and waits until it is ready. */
  async startApiserver(): Promise<void> {
    const p = this.proc('kube-apiserver');
    const fresh = startTethered(p.name, p.args, this.dir);
    this.procs[this.procs.indexOf(p)] = fresh;
    await waitReady(this.kubeconfigPath, fresh);
  }

  /** Stops etcd (only): the API server loses its storage until startEtcd. */
  async stopEtcd(): Promise<void> {
    await stopProc(this.proc('etcd'));
  }

  /** Starts etcd again with the same flags and data directory and waits until it is healthy. */
  async startEtcd(): Promise<void> {
    const p = this.proc('etcd');
    const fresh = startTethered(p.name, p.args, this.dir);
    this.procs[this.procs.indexOf(p)] = fresh;
    await waitHttp(`${this.etcdUrl}/health`, fresh, 30_000);
  }

  private proc(name: string): Proc {
    const p = this.procs.find((x) => x.name === name);
    if (!p) throw new Error(`no process ${name}`);
    return p;
  }

  /**
   * Compacts etcd (through its JSON gateway) at `revision`, default its current one: older resourceVersions
   * expire, and a watch resumed from one of them answers 410.
   */
  async compactEtcd(revision?: number): Promise<void> {
    let at = revision === undefined ? undefined : String(revision);
    if (at === undefined) {
      const range = await fetch(`${this.etcdUrl}/v3/kv/range`, {
        method: 'POST',
        body: JSON.stringify({ key: Buffer.from('/').toString('base64') }),
      });
      at = ((await range.json()) as { header: { revision: string } }).header.revision;
    }
    const res = await fetch(`${this.etcdUrl}/v3/kv/compaction`, {
      method: 'POST',
      body: JSON.stringify({ revision: at, physical: true }),
    });
    if (!res.ok) throw new Error(`etcd compaction failed: ${res.status} ${await res.text()}`);
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    // API server first, then etcd.
    for (const p of [...this.procs].reverse()) await stopProc(p);
    if (!this.keepDir) rmSync(this.dir, { recursive: true, force: true });
  }
}

export async function resolveBinDir(): Promise<string> {
  const { stdout } = await run('bash', [join(HACK_DIR, 'build-control-plane.sh')], { maxBuffer: 64 << 20 });
  return stdout.trim().split('\n').pop() as string;
}

export async function freePort(): Promise<number> {
  return await new Promise((resolve, reject) => {
    const srv = createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

export async function startControlPlane(options: ControlPlaneOptions = {}): Promise<ControlPlane> {
  const binDir = options.binDir ?? (await resolveBinDir());
  const runId = process.env.AUTOPILOT_RUN_ID ?? 'dev';
  const dir = mkdtempSync(join(tmpdir(), `autopilot-cp-${runId}-`));
  const procs: Proc[] = [];
  try {
    const [etcdPort, peerPort, apiPort] = [await freePort(), await freePort(), await freePort()];
    const ca = createCA('helmrelease-autopilot-test-ca');
    const serving = issueCertificate(ca, {
      commonName: 'kube-apiserver',
      hosts: [
        '127.0.0.1',
        'localhost',
        'kubernetes',
        'kubernetes.default',
        'kubernetes.default.svc',
        '10.0.0.1',
      ],
      usage: 'server',
    });
    const admin = issueCertificate(ca, {
      commonName: 'admin',
      organizations: ['system:masters'],
      usage: 'client',
    });
    const sa = createSigningKey();
    const pki = join(dir, 'pki');
    mkdirSync(pki);
    const files: Record<string, string> = {
      'ca.crt': ca.cert,
      'apiserver.crt': serving.cert,
      'apiserver.key': serving.key,
      'sa.key': sa.privateKey,
      'sa.pub': sa.publicKey,
    };
    for (const [name, content] of Object.entries(files))
      writeFileSync(join(pki, name), content, { mode: 0o600 });
    const webhookClient = options.webhookClientAuth
      ? webhookClientAuthFiles(pki, options.webhookClientAuth.hosts)
      : undefined;

    const etcdUrl = `http://127.0.0.1:${etcdPort}`;
    const peerUrl = `http://127.0.0.1:${peerPort}`;
    const etcd = startTethered(
      'etcd',
      [
        join(binDir, 'etcd'),
        `--data-dir=${join(dir, 'etcd')}`,
        '--name=default',
        `--listen-client-urls=${etcdUrl}`,
        `--advertise-client-urls=${etcdUrl}`,
        `--listen-peer-urls=${peerUrl}`,
        `--initial-advertise-peer-urls=${peerUrl}`,
        `--initial-cluster=default=${peerUrl}`,
        '--unsafe-no-fsync=true',
        '--quota-backend-bytes=8589934592',
        '--log-level=warn',
      ],
      dir,
    );
    procs.push(etcd);
    await waitHttp(`${etcdUrl}/health`, etcd, 30_000);

    const server = `https://127.0.0.1:${apiPort}`;
    const apiserver = startTethered(
      'kube-apiserver',
      [
        join(binDir, 'kube-apiserver'),
        `--etcd-servers=${etcdUrl}`,
        '--bind-address=127.0.0.1',
        '--advertise-address=127.0.0.1',
        `--secure-port=${apiPort}`,
        `--cert-dir=${join(dir, 'apiserver-certs')}`,
        `--tls-cert-file=${join(pki, 'apiserver.crt')}`,
        `--tls-private-key-file=${join(pki, 'apiserver.key')}`,
        `--client-ca-file=${join(pki, 'ca.crt')}`,
        '--authorization-mode=RBAC',
        '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
        `--service-account-key-file=${join(pki, 'sa.pub')}`,
        `--service-account-signing-key-file=${join(pki, 'sa.key')}`,
        '--service-cluster-ip-range=10.0.0.0/24',
        '--allow-privileged=true',
        // No controller-manager here: nothing would create default ServiceAccounts.
        '--disable-admission-plugins=ServiceAccount',
        '--max-requests-inflight=2000',
        '--max-mutating-requests-inflight=1000',
        '--profiling=false',
        '--v=1',
        ...(webhookClient ? [`--admission-control-config-file=${webhookClient.admissionConfig}`] : []),
        ...(options.apiserverArgs ?? []),
      ],
      dir,
    );
    procs.push(apiserver);
    const kubeconfigPath = join(dir, 'kubeconfig');
    writeFileSync(kubeconfigPath, kubeconfigYaml(server, ca.cert, admin), { mode: 0o600 });
    await waitReady(kubeconfigPath, apiserver);
    const cp = new ControlPlane({
      dir,
      kubeconfigPath,
      server,
      etcdUrl,
      ca,
      ...(webhookClient ? { webhookClientCA: webhookClient.ca } : {}),
      procs,
      keepDir: options.keepDir ?? false,
    });
    if (options.fluxCRDs ?? true) await installCRDs(kubeconfigPath, await fluxCRDFiles());
    return cp;
  } catch (err) {
    for (const p of procs.reverse()) await stopProc(p);
    if (!options.keepDir) rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

/**
 * The API server's credentials for webhooks ("Authenticate apiservers" in the Kubernetes webhook docs): an
 * AdmissionConfiguration whose MutatingAdmissionWebhook reads a kubeconfig with one user per host, each
 * presenting a client certificate from a CA of its own (not the cluster CA, whose certificates every
 * cluster user holds).
 */
function webhookClientAuthFiles(pki: string, hosts: string[]): { admissionConfig: string; ca: KeyPair } {
  const ca = createCA('kube-apiserver-webhook-client-ca');
  const cert = issueCertificate(ca, { commonName: 'kube-apiserver-webhook-client', usage: 'client' });
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  const kubeconfig = join(pki, 'webhook-client.kubeconfig');
  writeFileSync(
    kubeconfig,
    [
      'apiVersion: v1',
      'kind: Config',
      'users:',
      ...hosts.flatMap((h) => [
        `- name: ${JSON.stringify(h)}`,
        '  user:',
        `    client-certificate-data: ${b64(cert.cert)}`,
        `    client-key-data: ${b64(cert.key)}`,
      ]),
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
  const admissionConfig = join(pki, 'admission-configuration.yaml');
  writeFileSync(
    admissionConfig,
    [
      'apiVersion: apiserver.config.k8s.io/v1',
      'kind: AdmissionConfiguration',
      'plugins:',
      '- name: MutatingAdmissionWebhook',
      '  configuration:',
      '    apiVersion: apiserver.config.k8s.io/v1',
      '    kind: WebhookAdmissionConfiguration',
      `    kubeConfigFile: ${JSON.stringify(kubeconfig)}`,
      '',
    ].join('\n'),
  );
  return { admissionConfig, ca };
}

function kubeconfigYaml(server: string, caCert: string, user: KeyPair): string {
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  return [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    '- name: local',
    '  cluster:',
    `    server: ${server}`,
    `    certificate-authority-data: ${b64(caCert)}`,
    'users:',
    '- name: user',
    '  user:',
    `    client-certificate-data: ${b64(user.cert)}`,
    `    client-key-data: ${b64(user.key)}`,
    'contexts:',
    '- name: local',
    '  context: {cluster: local, user: user}',
    'current-context: local',
    '',
  ].join('\n');
}

function startTethered(name: string, args: string[], dir: string): Proc {
  const log = join(dir, `${name}.log`);
  const pidFile = join(dir, `${name}.pid`);
  writeFileSync(pidFile, '');
  const fd = openSync(log, 'a');
  const tether = spawn('bash', [join(HACK_DIR, 'lib', 'tether.sh'), String(process.pid), ...args], {
    stdio: ['ignore', fd, fd],
    env: { ...process.env, TETHER_PIDFILE: pidFile },
  });
  return { name, tether, pidFile, args, log };
}

async function stopProc(p: Proc): Promise<void> {
  if (p.tether.exitCode !== null || p.tether.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => p.tether.once('exit', () => resolve()));
  p.tether.kill('SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), 15_000);
  });
  const outcome = await Promise.race([exited, timeout]);
  clearTimeout(timer);
  if (outcome === 'timeout') {
    p.tether.kill('SIGKILL');
    const pid = Number(readFileSync(p.pidFile, 'utf8').trim());
    if (pid > 0) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
}

function failure(p: Proc, what: string): Error {
  let tail = '';
  try {
    tail = readFileSync(p.log, 'utf8').split('\n').slice(-30).join('\n');
  } catch {
    // no log
  }
  return new Error(`${p.name}: ${what}\n--- last lines of ${p.log} ---\n${tail}`);
}

async function waitHttp(url: string, p: Proc, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (p.tether.exitCode !== null) throw failure(p, `exited with ${p.tether.exitCode}`);
    try {
      const res = await fetch(url);
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    await sleep(100);
  }
  throw failure(p, `not healthy after ${timeoutMs} ms`);
}

async function waitReady(kubeconfigPath: string, p: Proc): Promise<void> {
  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfigPath);
  const client = await KubeClient.create(kc);
  const deadline = Date.now() + 90_000;
  try {
    while (Date.now() < deadline) {
      if (p.tether.exitCode !== null) throw failure(p, `exited with ${p.tether.exitCode}`);
      try {
        await client.getText('/readyz', 2000);
        return;
      } catch {
        // not ready yet
      }
      await sleep(200);
    }
    throw failure(p, 'not ready after 90 s');
  } finally {
    client.close();
  }
}

/** Paths of the CRDs this project needs, read from Flux's Go modules (or $FLUX_CRDS_DIR). */
export async function fluxCRDFiles(): Promise<string[]> {
  const fromEnv = process.env.FLUX_CRDS_DIR;
  const names = {
    helm: 'helm.toolkit.fluxcd.io_helmreleases.yaml',
    charts: 'source.toolkit.fluxcd.io_helmcharts.yaml',
    oci: 'source.toolkit.fluxcd.io_ocirepositories.yaml',
  };
  if (fromEnv) return Object.values(names).map((n) => join(fromEnv, n));
  const versions = readVersions();
  const helmDir = await moduleDir(`github.com/fluxcd/helm-controller@${versions.HELM_CONTROLLER_VERSION}`);
  const sourceDir = await moduleDir(
    `github.com/fluxcd/source-controller@${versions.SOURCE_CONTROLLER_VERSION}`,
  );
  return [
    join(helmDir, 'config/crd/bases', names.helm),
    join(sourceDir, 'config/crd/bases', names.charts),
    join(sourceDir, 'config/crd/bases', names.oci),
  ];
}

export function readVersions(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of readFileSync(join(HACK_DIR, 'versions.env'), 'utf8').split('\n')) {
    const m = /^([A-Z][A-Z0-9_]*)=(\S+)/.exec(line);
    if (m) out[m[1] as string] = m[2] as string;
  }
  return out;
}

/** Downloads a Go module into the module cache (if needed) and returns its directory. */
export async function moduleDir(moduleAtVersion: string): Promise<string> {
  const { stdout } = await run('go', ['mod', 'download', '-json', moduleAtVersion], {
    cwd: tmpdir(),
    env: { ...process.env, GOFLAGS: '-mod=mod', GOTOOLCHAIN: 'local' },
    maxBuffer: 16 << 20,
  }).catch((err: Error) => {
    throw new Error(
      `cannot read ${moduleAtVersion} from the Go module cache (set FLUX_CRDS_DIR to a directory of CRD files instead): ${err.message}`,
    );
  });
  const info = JSON.parse(stdout) as { Dir?: string; Error?: string };
  if (!info.Dir) throw new Error(`go mod download ${moduleAtVersion}: ${info.Error ?? 'no directory'}`);
  return info.Dir;
}

/** Creates (or replaces) CRDs from YAML files and waits until they are Established. */
export async function installCRDs(kubeconfigPath: string, files: string[]): Promise<void> {
  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfigPath);
  const client = await KubeClient.create(kc);
  const base = '/apis/apiextensions.k8s.io/v1/customresourcedefinitions';
  try {
    const names: string[] = [];
    for (const file of files) {
      for (const doc of parseAllDocuments(readFileSync(file, 'utf8'))) {
        const crd = doc.toJS() as {
          kind?: string;
          metadata?: { name?: string; resourceVersion?: string };
        } | null;
        if (crd?.kind !== 'CustomResourceDefinition' || !crd.metadata?.name) continue;
        names.push(crd.metadata.name);
        try {
          await client.create(base, crd);
        } catch (err) {
          if (!(err instanceof ApiError && err.status === 409)) throw err;
          const current = (await client.get(`${base}/${crd.metadata.name}`)) as {
            metadata: { resourceVersion: string };
          };
          crd.metadata.resourceVersion = current.metadata.resourceVersion;
          await client.request({ method: 'PUT', path: `${base}/${crd.metadata.name}`, body: crd });
        }
      }
    }
    const deadline = Date.now() + 30_000;
    for (const name of names) {
      for (;;) {
        const crd = (await client.get(`${base}/${name}`)) as {
          status?: { conditions?: { type: string; status: string }[] };
        };
        if (crd.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True')) break;
        if (Date.now() > deadline) throw new Error(`CRD ${name} not Established after 30 s`);
        await sleep(100);
      }
    }
  } finally {
    client.close();
  }
}
