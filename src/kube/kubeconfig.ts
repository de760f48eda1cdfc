// Where the API server and credentials come from: --kubeconfig, then $KUBECONFIG, then ~/.kube/config,
// then the in-cluster service account. No silent fallback to http://localhost:8080.
//
// Certificates, tokens and token files are handled here, without @kubernetes/client-node: importing it
// costs ~85 MB of RSS, which the operator cannot afford at 10,000 releases (DESIGN.md's memory target).
// Only kubeconfigs whose user needs a plugin (exec, auth-provider) load client-node, on demand.
import { existsSync, readFileSync } from 'node:fs';
import type https from 'node:https';
import { homedir } from 'node:os';
import { delimiter, dirname, isAbsolute, join } from 'node:path';
import { array, isObject, type JsonObject, str } from '../util/narrow.ts';
import type { Credentials } from './client.ts';

export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';
/** Token files (projected service-account tokens) rotate: re-read them at most this often. */
const TOKEN_FILE_TTL_MS = 60_000;

export interface KubeConfigSource {
  kubeConfig: Credentials;
  /** Human-readable origin, for the start-up log. */
  source: string;
}

interface ClusterEntry {
  server: string;
  ca?: Buffer;
  insecure?: boolean;
  tlsServerName?: string;
}

interface UserEntry {
  cert?: Buffer;
  key?: Buffer;
  token?: string;
  tokenFile?: string;
  /** exec or auth-provider: needs client-node. */
  plugin?: boolean;
}

/** Credentials for one cluster and user: TLS material fixed, the bearer token re-read from its file. */
export class StaticCredentials implements Credentials {
  private readonly cluster: ClusterEntry;
  private readonly user: UserEntry;
  private cachedToken: { value: string; at: number } | undefined;
  private readonly now: () => number;

  constructor(cluster: ClusterEntry, user: UserEntry, now: () => number = Date.now) {
    this.cluster = cluster;
    this.user = user;
    this.now = now;
  }

  getCurrentCluster(): { server: string } {
    return { server: this.cluster.server };
  }

  async applyToHTTPSOptions(opts: https.RequestOptions): Promise<void> {
    if (this.cluster.ca) opts.ca = this.cluster.ca;
    if (this.cluster.insecure) opts.rejectUnauthorized = false;
    if (this.cluster.tlsServerName) opts.servername = this.cluster.tlsServerName;
    if (this.user.cert) opts.cert = this.user.cert;
    if (this.user.key) opts.key = this.user.key;
    const token = this.token();
    if (token) opts.headers = { ...opts.headers, authorization: `Bearer ${token}` };
  }

  private token(): string | undefined {
    if (this.user.token) return this.user.token;
    if (!this.user.tokenFile) return undefined;
    const now = this.now();
    if (!this.cachedToken || now - this.cachedToken.at > TOKEN_FILE_TTL_MS) {
      this.cachedToken = { value: readFileSync(this.user.tokenFile, 'utf8').trim(), at: now };
    }
    return this.cachedToken.value;
  }
}

type Named = { name: string; entry: JsonObject };

function named(list: unknown, field: string): Named[] {
  return array(list)
    .filter(isObject)
    .map((o) => ({ name: str(o.name) ?? '', entry: isObject(o[field]) ? (o[field] as JsonObject) : {} }));
}

interface MergedConfig {
  currentContext: string;
  contexts: Map<string, JsonObject>;
  clusters: Map<string, { entry: JsonObject; dir: string }>;
  users: Map<string, { entry: JsonObject; dir: string }>;
}

/** Merges kubeconfig files as kubectl does: the first file to set a name (or current-context) wins. */
async function readKubeConfigFiles(paths: string[]): Promise<MergedConfig> {
  // Loaded for kubeconfig files only: in a cluster (the service account) its 72 modules (~2 MB of RSS) are not.
  const { parse } = await import('yaml');
  const merged: MergedConfig = {
    currentContext: '',
    contexts: new Map(),
    clusters: new Map(),
    users: new Map(),
  };
  for (const path of paths) {
    if (!existsSync(path)) continue;
    const doc: unknown = parse(readFileSync(path, 'utf8'));
    if (!isObject(doc)) throw new Error(`kubeconfig ${path} is not a YAML mapping`);
    const dir = dirname(path);
    merged.currentContext ||= str(doc['current-context']) ?? '';
    for (const c of named(doc.contexts, 'context'))
      if (!merged.contexts.has(c.name)) merged.contexts.set(c.name, c.entry);
    for (const c of named(doc.clusters, 'cluster'))
      if (!merged.clusters.has(c.name)) merged.clusters.set(c.name, { entry: c.entry, dir });
    for (const u of named(doc.users, 'user'))
      if (!merged.users.has(u.name)) merged.users.set(u.name, { entry: u.entry, dir });
  }
  return merged;
}

function bytes(entry: JsonObject, dataKey: string, fileKey: string, dir: string): Buffer | undefined {
  const data = str(entry[dataKey]);
  if (data) return Buffer.from(data, 'base64');
  const file = str(entry[fileKey]);
  if (file) return readFileSync(isAbsolute(file) ? file : join(dir, file));
  return undefined;
}

function resolveContext(
  cfg: MergedConfig,
  context: string,
  origin: string,
): { cluster: ClusterEntry; user: UserEntry } {
  const name = context || cfg.currentContext;
  if (!name) throw new Error(`kubeconfig ${origin} has no current-context (pass --context)`);
  const ctx = cfg.contexts.get(name);
  if (!ctx) throw new Error(`kubeconfig ${origin} has no context "${name}"`);
  const c = cfg.clusters.get(str(ctx.cluster) ?? '');
  if (!c) throw new Error(`kubeconfig ${origin}: context "${name}" names an unknown cluster`);
  const server = str(c.entry.server);
  if (!server) throw new Error(`kubeconfig ${origin}: the cluster of context "${name}" has no server`);
  const u = cfg.users.get(str(ctx.user) ?? '');
  const ue = u?.entry ?? {};
  const ca = bytes(c.entry, 'certificate-authority-data', 'certificate-authority', c.dir);
  const tlsServerName = str(c.entry['tls-server-name']);
  const tokenFile = str(ue.tokenFile);
  const cert = bytes(ue, 'client-certificate-data', 'client-certificate', u?.dir ?? '');
  const key = bytes(ue, 'client-key-data', 'client-key', u?.dir ?? '');
  return {
    cluster: {
      server,
      ...(ca ? { ca } : {}),
      ...(c.entry['insecure-skip-tls-verify'] === true ? { insecure: true } : {}),
      ...(tlsServerName ? { tlsServerName } : {}),
    },
    user: {
      ...(cert ? { cert } : {}),
      ...(key ? { key } : {}),
      ...(str(ue.token) ? { token: str(ue.token) as string } : {}),
      ...(tokenFile ? { tokenFile: isAbsolute(tokenFile) ? tokenFile : join(u?.dir ?? '', tokenFile) } : {}),
      ...(isObject(ue.exec) || isObject(ue['auth-provider']) || str(ue.username) ? { plugin: true } : {}),
    },
  };
}

/** Credentials from kubeconfig files, delegating to client-node only for plugin-based users. */
async function fromFiles(paths: string[], context: string, origin: string): Promise<Credentials> {
  const { cluster, user } = resolveContext(await readKubeConfigFiles(paths), context, origin);
  if (!user.plugin) return new StaticCredentials(cluster, user);
  const { KubeConfig } = await import('@kubernetes/client-node');
  const kc = new KubeConfig();
  if (paths.length === 1) kc.loadFromFile(paths[0] as string);
  else kc.loadFromDefault();
  if (context) kc.setCurrentContext(context);
  return kc;
}

export interface LoadOptions {
  path: string;
  context: string;
  /** For tests: where the in-cluster service account would be mounted. */
  serviceAccountDir?: string;
  home?: string;
}

export async function loadKubeConfig(
  options: LoadOptions,
  env: NodeJS.ProcessEnv,
): Promise<KubeConfigSource> {
  const home = join(options.home ?? homedirOrEmpty(), '.kube', 'config');
  const saDir = options.serviceAccountDir ?? SERVICE_ACCOUNT_DIR;
  if (options.path) {
    if (!existsSync(options.path)) throw new Error(`kubeconfig ${options.path} does not exist`);
    return {
      kubeConfig: await fromFiles([options.path], options.context, options.path),
      source: options.path,
    };
  }
  if (env.KUBECONFIG) {
    const paths = env.KUBECONFIG.split(delimiter).filter((p) => p !== '');
    if (!paths.some((p) => existsSync(p)))
      throw new Error(`no file of $KUBECONFIG (${env.KUBECONFIG}) exists`);
    return {
      kubeConfig: await fromFiles(paths, options.context, '$KUBECONFIG'),
      source: `$KUBECONFIG (${env.KUBECONFIG})`,
    };
  }
  if (existsSync(home)) return { kubeConfig: await fromFiles([home], options.context, home), source: home };
  if (env.KUBERNETES_SERVICE_HOST && existsSync(join(saDir, 'token'))) {
    const host = env.KUBERNETES_SERVICE_HOST.includes(':')
      ? `[${env.KUBERNETES_SERVICE_HOST}]`
      : env.KUBERNETES_SERVICE_HOST;
    const cluster: ClusterEntry = {
      server: `https://${host}:${env.KUBERNETES_SERVICE_PORT ?? '443'}`,
      ca: readFileSync(join(saDir, 'ca.crt')),
    };
    return {
      kubeConfig: new StaticCredentials(cluster, { tokenFile: join(saDir, 'token') }),
      source: 'in-cluster service account',
    };
  }
  throw new Error(
    'no Kubernetes configuration: pass --kubeconfig, set KUBECONFIG, or run in a cluster (for a local one: npm run cluster)',
  );
}

/** The namespace of the mounted service account (in a pod), or undefined outside a cluster. */
export function readInClusterNamespace(serviceAccountDir = SERVICE_ACCOUNT_DIR): string | undefined {
  try {
    return readFileSync(join(serviceAccountDir, 'namespace'), 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

function homedirOrEmpty(): string {
  try {
    return homedir();
  } catch {
    // A numeric user without a passwd entry and without $HOME (distroless images).
    return '/nonexistent';
  }
}
