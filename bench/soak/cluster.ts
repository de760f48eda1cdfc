// The soak's cluster: a control plane with the watch cache off (so an etcd compaction reaches the watches as
// a 410), two operator processes at their default flags but a short Lease, each talking to the API server
// through a TCP proxy of its own (test/support/tcp-proxy.ts) that can freeze its connections, and the shipped
// webhook registration pointed at a loopback forwarder in front of the live replicas, which a webhook outage
// switches off (the API server then admits without it: failurePolicy Ignore).
import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { KubeConfig } from '@kubernetes/client-node';
import { type ControlPlane, freePort, startControlPlane } from '../../hack/controlplane.ts';
import { KubeClient } from '../../src/kube/client.ts';
import {
  collectionPath,
  Leases,
  MutatingWebhookConfigurations,
  Namespaces,
  objectPath,
  Secrets,
} from '../../src/kube/resources.ts';
import { createCA, issueCertificate } from '../../src/tls/certs.ts';
import { isObject, str } from '../../src/util/narrow.ts';
import { sleep } from '../../src/util/sleep.ts';
import { DIGEST_KEY_SECRET } from '../../src/values/key-secret.ts';
import { FreezableProxy } from '../../test/support/tcp-proxy.ts';
import { loopbackRegistration } from '../../test/support/webhook-registration.ts';
import { BENCH_DIGEST_KEYS } from '../triggers/objects.ts';
import { OPERATOR_NAMESPACE, shippedLaunch, warmUp } from '../triggers/operator-process.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const MAIN = join(ROOT, 'cmd', 'helmrelease-autopilot', 'main.ts');
/** The default --lease-name. */
const LEASE = 'helmrelease-autopilot';
/** The operator's user: its writes skip the webhook (the shipped matchConditions, renamed). */
const OPERATOR_USER = 'soak-operator';
/** A short Lease, as the integration tests use, so a failover takes seconds. */
export const LEASE_FLAGS = ['--lease-duration=3s', '--lease-renew-deadline=2s', '--lease-retry-period=250ms'];

/** One operator process behind its own proxy; restarted as a new process with the same name. */
export class Replica {
  readonly name: string;
  child: ChildProcess | undefined;
  identity = '';
  webhookPort = 0;
  starts = 0;
  /** Exits the harness did not ask for (leadership lost: the process ends by design), each restarted. */
  unexpectedExits = 0;
  private expectExit = false;
  private closed = false;
  private readonly proxy: FreezableProxy;
  private readonly kubeconfig: string;
  private readonly certDir: string;
  private readonly logDir: string;
  private exited: Promise<void> = Promise.resolve();

  constructor(o: {
    name: string;
    proxy: FreezableProxy;
    kubeconfig: string;
    certDir: string;
    logDir: string;
  }) {
    this.name = o.name;
    this.proxy = o.proxy;
    this.kubeconfig = o.kubeconfig;
    this.certDir = o.certDir;
    this.logDir = o.logDir;
  }

  alive(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  async start(): Promise<void> {
    const [health, webhook] = [await freePort(), await freePort()];
    const launch = shippedLaunch();
    this.starts++;
    this.identity = '';
    const log = createWriteStream(join(this.logDir, `operator-${this.name}-${this.starts}.log`));
    const child = spawn(
      process.execPath,
      [
        ...launch.nodeFlags,
        MAIN,
        `--kubeconfig=${this.kubeconfig}`,
        `--namespace=${OPERATOR_NAMESPACE}`,
        '--bind-address=127.0.0.1',
        `--health-port=${health}`,
        '--metrics-port=0',
        `--webhook-port=${webhook}`,
        `--cert-dir=${this.certDir}`,
        ...LEASE_FLAGS,
      ],
      {
        cwd: ROOT,
        env: { PATH: process.env.PATH, HOME: process.env.HOME, ...launch.env },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    this.child = child;
    this.webhookPort = webhook;
    child.stderr?.pipe(log);
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (text) => {
      log.write(`${text}\n`);
      if (this.identity !== '' || !text.includes('"identity"')) return;
      try {
        const raw = JSON.parse(text) as Record<string, unknown>;
        if (typeof raw.identity === 'string') this.identity = raw.identity;
      } catch {
        // not JSON
      }
    });
    this.expectExit = false;
    this.exited = new Promise((resolve) =>
      child.on('exit', () => {
        resolve();
        if (this.expectExit || this.closed || this.child !== child) return;
        // As a kubelet would: the container is restarted after a short back-off.
        this.unexpectedExits++;
        setTimeout(() => {
          if (!this.closed && this.child === child) this.start().catch(() => undefined);
        }, 1000);
      }),
    );
    // Ready: caches synced and the webhook serving.
    const deadline = Date.now() + 120_000;
    while (Date.now() < deadline && this.alive()) {
      try {
        const res = await fetch(`http://127.0.0.1:${health}/readyz`, { signal: AbortSignal.timeout(2000) });
        if (res.ok) return;
      } catch {
        // not yet
      }
      await sleep(100);
    }
    throw new Error(`operator ${this.name} not ready after 120 s (see ${this.logDir})`);
  }

  /** SIGKILL (dies holding its Lease) or SIGTERM (drains, releases it); resolves when it has exited. */
  async signal(sig: 'SIGKILL' | 'SIGTERM'): Promise<void> {
    if (!this.alive()) return;
    this.expectExit = true;
    this.child?.kill(sig);
    await Promise.race([this.exited, sleep(30_000).then(() => this.child?.kill('SIGKILL'))]);
    await this.exited;
  }

  /** Freezes this replica's open connections to the API server (no bytes pass, nothing closes). */
  freeze(): number {
    return this.proxy.freezeOpenConnections();
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.signal('SIGKILL');
    await this.proxy.close();
  }
}

/**
 * The webhook's address as the API server knows it: forwards each connection to a live replica's webhook
 * port, or (during an outage) closes it at once.
 */
export class WebhookForwarder {
  down = false;
  port = 0;
  private next = 0;
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();

  constructor(replicas: () => Replica[]) {
    this.server = net.createServer((client) => {
      this.sockets.add(client);
      client.on('close', () => this.sockets.delete(client));
      client.on('error', () => client.destroy());
      const live = replicas().filter((r) => r.alive());
      if (this.down || live.length === 0) {
        client.destroy();
        return;
      }
      const target = live[this.next++ % live.length] as Replica;
      const upstream = net.connect(target.webhookPort, '127.0.0.1');
      this.sockets.add(upstream);
      upstream.on('close', () => {
        this.sockets.delete(upstream);
        client.destroy();
      });
      upstream.on('error', () => upstream.destroy());
      client.on('close', () => upstream.destroy());
      client.pipe(upstream);
      upstream.pipe(client);
    });
  }

  async listen(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', () => resolve()));
    this.port = (this.server.address() as net.AddressInfo).port;
  }

  /** Starts an outage: open connections are cut and new ones refused. */
  outage(): void {
    this.down = true;
    for (const s of this.sockets) s.destroy();
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

export interface SoakCluster {
  cp: ControlPlane;
  /** Admin client of the harness, straight to the API server. */
  client: KubeClient;
  replicas: Replica[];
  webhook: WebhookForwarder;
  logDir: string;
  /** The replica holding the Lease now, if any. */
  leader(): Promise<Replica | undefined>;
  stop(): Promise<void>;
}

/** A serving certificate for the webhook, in a directory laid out as a mounted Secret; and its CA. */
function servingCert(dir: string): string {
  const ca = createCA('soak-webhook-ca');
  const pair = issueCertificate(ca, {
    commonName: 'localhost',
    hosts: ['127.0.0.1', 'localhost'],
    usage: 'server',
  });
  writeFileSync(join(dir, 'tls.crt'), pair.cert);
  writeFileSync(join(dir, 'tls.key'), pair.key, { mode: 0o600 });
  return ca.cert;
}

export async function startSoakCluster(): Promise<SoakCluster> {
  warmUp();
  const cp = await startControlPlane({ apiserverArgs: ['--watch-cache=false'] });
  const logDir = mkdtempSync(join(tmpdir(), 'soak-logs-'));
  const kc = new KubeConfig();
  kc.loadFromFile(cp.kubeconfigPath);
  const client = await KubeClient.create(kc);
  await client.create(collectionPath(Namespaces), { metadata: { name: OPERATOR_NAMESPACE } });
  // The cluster's digest key, known to the harness: releases are created already stamped.
  await client.create(collectionPath(Secrets, OPERATOR_NAMESPACE), {
    metadata: { name: DIGEST_KEY_SECRET },
    data: { current: Buffer.from(BENCH_DIGEST_KEYS.current.secret).toString('base64') },
  });
  const certDir = mkdtempSync(join(tmpdir(), 'soak-certs-'));
  const caPem = servingCert(certDir);
  const operatorKubeconfig = readFileSync(cp.userKubeconfig(OPERATOR_USER, ['system:masters']), 'utf8');
  const apiPort = Number(new URL(cp.server).port);
  const replicas: Replica[] = [];
  for (const name of ['A', 'B']) {
    const proxy = new FreezableProxy(apiPort);
    const port = await proxy.listen();
    const path = join(logDir, `kubeconfig-${name}`);
    writeFileSync(path, operatorKubeconfig.replace(cp.server, `https://127.0.0.1:${port}`), { mode: 0o600 });
    replicas.push(new Replica({ name, proxy, kubeconfig: path, certDir, logDir }));
  }
  const webhook = new WebhookForwarder(() => replicas);
  await webhook.listen();
  await client.create(
    collectionPath(MutatingWebhookConfigurations),
    loopbackRegistration({
      name: 'helmrelease-autopilot',
      url: `https://127.0.0.1:${webhook.port}/mutate`,
      caPem,
      operatorUser: OPERATOR_USER,
    }),
  );
  return {
    cp,
    client,
    replicas,
    webhook,
    logDir,
    async leader() {
      try {
        const lease = await client.get(objectPath(Leases, OPERATOR_NAMESPACE, LEASE));
        const holder = isObject(lease) && isObject(lease.spec) ? str(lease.spec.holderIdentity) : undefined;
        return replicas.find((r) => r.alive() && r.identity !== '' && r.identity === holder);
      } catch {
        return undefined;
      }
    },
    async stop() {
      for (const r of replicas) await r.close();
      await webhook.close();
      client.close();
      await cp.stop();
    },
  };
}
