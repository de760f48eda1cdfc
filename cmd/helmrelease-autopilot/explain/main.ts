// `helmrelease-autopilot explain`: parse the command line, connect with the user's kubeconfig, explain one
// release or list those that need attention, print text or JSON. Read-only: it never writes to the cluster.
import { FLAGS } from '../../../src/config.ts';
import { KubeClient } from '../../../src/kube/client.ts';
import { loadKubeConfig } from '../../../src/kube/kubeconfig.ts';
import { collectionPath, HelmReleases } from '../../../src/kube/resources.ts';
import { errorMessage } from '../../../src/util/errors.ts';
import { isObject, str } from '../../../src/util/narrow.ts';
import { DIGEST_KEY_SECRET } from '../../../src/values/key-secret.ts';
import { type ExplainContext, type Explanation, explainByName, explainRelease } from './explain.ts';
import { readLinks } from './links.ts';
import { listObjects, SourceReads } from './reads.ts';
import { needsAttention, renderExplanation, renderTable } from './render.ts';
import { readOperatorSettings } from './settings.ts';

export const USAGE = `Usage:
  helmrelease-autopilot explain <namespace>/<name> [flags]     one release, in detail
  helmrelease-autopilot explain <name> -n <namespace> [flags]
  helmrelease-autopilot explain --all [-n <namespace>] [flags]  the releases that need attention
  (as a kubectl plugin: kubectl autopilot explain ...)

Flags:
  -o, --output text|json        output format (default text)
  -n, --namespace string        namespace of the release (or of --all; default: all namespaces)
      --all                     examine every release and list those with a trigger due or held, or a retry
                                pending, due or exhausted
      --kubeconfig string       kubeconfig (default: $KUBECONFIG, then ~/.kube/config, then in-cluster)
      --context string          kubeconfig context (default: the current one)
      --operator-namespace string   namespace of the operator's Deployment (default helmrelease-autopilot)
      --operator-deployment string  the operator's Deployment, whose flags explain applies
                                (default helmrelease-autopilot; "" to read none and assume the defaults)
      --events int              how many of the operator's recent Events to show (default 10)
  Any operator flag (e.g. --retry-max-attempts=3) overrides what the Deployment says.

explain only reads, with your own permissions; what it may not read is named under "Could not read".
`;

export class UsageError extends Error {}

/** Releases --all explains at the same time. */
const ALL_AT_ONCE = 16;

export interface ExplainOptions {
  target?: { namespace: string; name: string };
  all: boolean;
  namespace?: string;
  output: 'text' | 'json';
  kubeconfig: string;
  context: string;
  operatorNamespace: string;
  operatorDeployment: string;
  /** Operator flags ("--name=value") applied on top of the Deployment's. */
  operatorFlags: string[];
  events: number;
}

const OWN = [
  'output',
  'namespace',
  'all',
  'kubeconfig',
  'context',
  'operator-namespace',
  'operator-deployment',
  'events',
];
const SHORT: Record<string, string> = { o: 'output', n: 'namespace', A: 'all' };

/** The type of an operator flag by name ("no-<bool>" included, as the operator's parser accepts it). */
function operatorFlagType(name: string): string | undefined {
  const spec = (FLAGS as Record<string, { type: string }>)[name];
  if (spec) return spec.type;
  const negated = (FLAGS as Record<string, { type: string }>)[name.replace(/^no-/, '')];
  return name.startsWith('no-') && negated?.type === 'bool' ? 'bool' : undefined;
}

export function parseExplainArgs(argv: readonly string[]): ExplainOptions {
  const o: ExplainOptions = {
    all: false,
    output: 'text',
    kubeconfig: '',
    context: '',
    operatorNamespace: 'helmrelease-autopilot',
    operatorDeployment: 'helmrelease-autopilot',
    operatorFlags: [],
    events: 10,
  };
  const positional: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === '-h' || arg === '--help') throw new UsageError('');
    if (!arg.startsWith('-')) {
      positional.push(arg);
      continue;
    }
    const body = arg.startsWith('--') ? arg.slice(2) : arg.slice(1);
    const eq = body.indexOf('=');
    let name = eq < 0 ? body : body.slice(0, eq);
    let value = eq < 0 ? undefined : body.slice(eq + 1);
    if (!arg.startsWith('--')) name = SHORT[name] ?? '';
    const operatorFlag = !OWN.includes(name) && operatorFlagType(name) !== undefined;
    if (!OWN.includes(name) && !operatorFlag) throw new UsageError(`unknown flag ${arg}`);
    const isBool = name === 'all' || (operatorFlag && operatorFlagType(name) === 'bool');
    if (value === undefined && !isBool) {
      value = argv[++i];
      if (value === undefined) throw new UsageError(`${arg} needs a value`);
    }
    if (operatorFlag) {
      o.operatorFlags.push(value === undefined ? `--${name}` : `--${name}=${value}`);
      continue;
    }
    const v = value ?? 'true';
    if (name === 'output') {
      if (v !== 'text' && v !== 'json') throw new UsageError(`--output must be text or json, not "${v}"`);
      o.output = v;
    } else if (name === 'namespace') o.namespace = v;
    else if (name === 'all') o.all = v !== 'false';
    else if (name === 'kubeconfig') o.kubeconfig = v;
    else if (name === 'context') o.context = v;
    else if (name === 'operator-namespace') o.operatorNamespace = v;
    else if (name === 'operator-deployment') o.operatorDeployment = v;
    else if (name === 'events') {
      if (!/^\d+$/.test(v)) throw new UsageError(`--events must be a number, not "${v}"`);
      o.events = Number(v);
    }
  }
  if (o.all) {
    if (positional.length > 0) throw new UsageError('--all takes no release name');
    return o;
  }
  if (positional.length !== 1) throw new UsageError('name one release: <namespace>/<name> (or --all)');
  const [first] = positional as [string];
  const slash = first.indexOf('/');
  const target =
    slash >= 0
      ? { namespace: first.slice(0, slash), name: first.slice(slash + 1) }
      : { namespace: o.namespace ?? '', name: first };
  if (!target.namespace || !target.name)
    throw new UsageError(`"${first}": name the release as <namespace>/<name>`);
  return { ...o, target };
}

export interface ExplainResult {
  /** What to print. */
  output: string;
  /** One release, or every release examined by --all. */
  explanations: Explanation[];
}

/** Runs explain with a client (the CLI's, a test's, the demo's). */
export async function runExplain(
  client: KubeClient,
  o: ExplainOptions,
  now = Date.now,
): Promise<ExplainResult> {
  const settings = await readOperatorSettings(client, {
    namespace: o.operatorNamespace,
    deployment: o.operatorDeployment,
    flags: o.operatorFlags,
  });
  const scope = settings.config['watch-namespace'];
  const compat = settings.config['compat-trigger-operator'];
  const sources = new SourceReads(client);
  const keyNamespace = o.operatorNamespace;
  const keys = {
    where: `${keyNamespace}/${DIGEST_KEY_SECRET}`,
    read: await sources.digestKeys(keyNamespace),
  };
  if (o.target) {
    const links = await readLinks(client, { scope, fallbackNamespaces: [o.target.namespace], compat });
    const ctx: ExplainContext = { client, settings, sources, links, keys, now, events: o.events };
    const e = await explainByName(ctx, o.target.namespace, o.target.name);
    return {
      explanations: [e],
      output: o.output === 'json' ? `${JSON.stringify(e, null, 2)}\n` : renderExplanation(e, now()),
    };
  }
  const list = await listObjects(client, collectionPath(HelmReleases, o.namespace));
  if (list.state !== 'found') {
    const where = o.namespace ? `in ${o.namespace}` : 'in all namespaces';
    throw new Error(
      list.state === 'forbidden'
        ? `no access to HelmReleases ${where}: ${list.message}`
        : `cannot list HelmReleases ${where}`,
    );
  }
  const namespaces = [
    ...new Set(list.value.map((r) => (isObject(r.metadata) ? (str(r.metadata.namespace) ?? '') : ''))),
  ];
  const links = await readLinks(client, { scope, fallbackNamespaces: namespaces, compat });
  const ctx: ExplainContext = { client, settings, sources, links, keys, now, events: 0 };
  // A few releases at a time: their reads are GETs of the sources each consumes (shared between releases).
  const explanations: Explanation[] = [];
  for (let i = 0; i < list.value.length; i += ALL_AT_ONCE) {
    const batch = list.value.slice(i, i + ALL_AT_ONCE);
    explanations.push(...(await Promise.all(batch.map((raw) => explainRelease(ctx, raw)))));
  }
  const output =
    o.output === 'json'
      ? `${JSON.stringify(
          {
            examined: explanations.length,
            releases: explanations.map((e) => ({ attention: needsAttention(e), ...e })),
          },
          null,
          2,
        )}\n`
      : renderTable(explanations, now());
  return { explanations, output };
}

/** The CLI: exit code 0 (explained), 1 (failed), 2 (usage). */
export async function main(argv: readonly string[], env: NodeJS.ProcessEnv): Promise<number> {
  let o: ExplainOptions;
  try {
    o = parseExplainArgs(argv);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    if (err.message) process.stderr.write(`explain: ${err.message}\n\n`);
    (err.message ? process.stderr : process.stdout).write(USAGE);
    return err.message ? 2 : 0;
  }
  let client: KubeClient | undefined;
  try {
    const kube = await loadKubeConfig({ path: o.kubeconfig, context: o.context }, env);
    client = await KubeClient.create(kube.kubeConfig);
    const { output } = await runExplain(client, o);
    process.stdout.write(output);
    return 0;
  } catch (err) {
    process.stderr.write(`explain: ${errorMessage(err)}\n`);
    return 1;
  } finally {
    client?.close();
  }
}
