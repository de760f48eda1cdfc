// Configuration: every flag, its environment fallback and default, declared once.
// Precedence: command-line flag, then environment variable, then default. The README's configuration
// table is checked against FLAGS by test/unit/readme.test.ts.

import { type LabelMatcher, parseLabelSelector } from './kube/selector.ts';
import type { ClassifyPolicy } from './retry/classify.ts';
import type { RetryLimits } from './retry/decide.ts';
import { transientPatterns } from './retry/patterns.ts';

export class ConfigError extends Error {}

interface FlagSpec<T> {
  env: string;
  help: string;
  default: T;
  /** Placeholder shown in --help, e.g. "duration". Absent for booleans. */
  type: 'bool' | 'string' | 'int' | 'number' | 'duration' | 'list' | 'enum';
  values?: readonly string[];
  /** A valid non-default value, for flags whose strings are checked (tests that set every flag). */
  example?: string;
  parse: (raw: string, name: string) => T;
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Parses "500ms", "10s", "1m30s", "2h" into milliseconds. */
export function parseDuration(raw: string, name = 'value'): number {
  const s = raw.trim();
  if (s === '0') return 0;
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h)/y;
  let total = 0;
  let pos = 0;
  while (pos < s.length) {
    re.lastIndex = pos;
    const m = re.exec(s);
    if (!m) throw new ConfigError(`--${name}: "${raw}" is not a duration (examples: 500ms, 10s, 5m, 1h30m)`);
    total += Number(m[1]) * (DURATION_UNITS[m[2] as string] as number);
    pos = re.lastIndex;
  }
  if (s.length === 0) throw new ConfigError(`--${name}: empty duration`);
  return Math.round(total);
}

const bool = (help: string, env: string, def: boolean): FlagSpec<boolean> => ({
  env,
  help,
  default: def,
  type: 'bool',
  parse: (raw, name) => {
    const v = raw.trim().toLowerCase();
    if (['true', '1', 'yes'].includes(v)) return true;
    if (['false', '0', 'no'].includes(v)) return false;
    throw new ConfigError(`--${name}: "${raw}" is not a boolean (true or false)`);
  },
});

const string = (help: string, env: string, def: string): FlagSpec<string> => ({
  env,
  help,
  default: def,
  type: 'string',
  parse: (raw) => raw,
});

const int = (
  help: string,
  env: string,
  def: number,
  min: number,
  max = Number.MAX_SAFE_INTEGER,
): FlagSpec<number> => ({
  env,
  help,
  default: def,
  type: 'int',
  parse: (raw, name) => {
    const n = Number(raw);
    if (!/^-?\d+$/.test(raw.trim()) || n < min || n > max) {
      throw new ConfigError(`--${name}: "${raw}" must be an integer from ${min} to ${max}`);
    }
    return n;
  },
});

const number = (help: string, env: string, def: number, min: number, max: number): FlagSpec<number> => ({
  env,
  help,
  default: def,
  type: 'number',
  parse: (raw, name) => {
    const n = Number(raw);
    if (raw.trim() === '' || !Number.isFinite(n) || n < min || n > max) {
      throw new ConfigError(`--${name}: "${raw}" must be a number from ${min} to ${max}`);
    }
    return n;
  },
});

const duration = (help: string, env: string, def: number): FlagSpec<number> => ({
  env,
  help,
  default: def,
  type: 'duration',
  parse: parseDuration,
});

/**
 * A list: the flag may be repeated; the environment variable holds one item per line. With `commas`, items
 * may also be separated by commas (names; never patterns, where a comma is syntax).
 */
const list = (help: string, env: string, o: { commas?: boolean } = {}): FlagSpec<string[]> => ({
  env,
  help,
  default: [],
  type: 'list',
  parse: (raw) =>
    raw
      .split(o.commas ? /[\n,]/ : '\n')
      .map((s) => s.trim())
      .filter((s) => s !== ''),
});

const oneOf = <T extends string>(help: string, env: string, def: T, values: readonly T[]): FlagSpec<T> => ({
  env,
  help,
  default: def,
  type: 'enum',
  values,
  parse: (raw, name) => {
    if (!(values as readonly string[]).includes(raw)) {
      throw new ConfigError(`--${name}: "${raw}" must be one of ${values.join(', ')}`);
    }
    return raw as T;
  },
});

/** A label selector, checked at start-up (the string is kept: parseLabelSelector is cheap to run again). */
const labelSelector = (help: string, env: string, def: string): FlagSpec<string> => ({
  env,
  help,
  default: def,
  type: 'string',
  example: 'owner!=helm',
  parse: (raw, name) => {
    const parsed = parseLabelSelector(raw);
    if (!parsed.ok) throw new ConfigError(`--${name}: ${parsed.error}`);
    return raw;
  },
});

const E = 'AUTOPILOT_';

/** The operator's own namespace when neither --namespace nor the in-cluster namespace names one. */
export const DEFAULT_NAMESPACE = 'helmrelease-autopilot';

export const FLAGS = {
  // process
  kubeconfig: string(
    'Path to a kubeconfig. Default: $KUBECONFIG, then ~/.kube/config, then in-cluster.',
    `${E}KUBECONFIG`,
    '',
  ),
  context: string('kubeconfig context to use. Default: the current context.', `${E}CONTEXT`, ''),
  'log-level': oneOf('Log level.', `${E}LOG_LEVEL`, 'info', [
    'trace',
    'debug',
    'info',
    'warn',
    'error',
    'fatal',
  ]),
  namespace: string(
    `The operator's own namespace (leader Lease, self-signed CA Secret). Default: the in-cluster namespace, else "${DEFAULT_NAMESPACE}".`,
    `${E}NAMESPACE`,
    '',
  ),
  'health-port': int('Port of /healthz and /readyz (plain HTTP).', `${E}HEALTH_PORT`, 8081, 0, 65535),
  'metrics-port': int('Port of /metrics (plain HTTP); 0 turns it off.', `${E}METRICS_PORT`, 8080, 0, 65535),
  'bind-address': string(
    'Address the health, metrics and webhook servers listen on.',
    `${E}BIND_ADDRESS`,
    '0.0.0.0',
  ),
  'shutdown-timeout': duration(
    'How long SIGTERM waits for in-flight work before exiting.',
    `${E}SHUTDOWN_TIMEOUT`,
    20_000,
  ),
  'watch-namespace': list(
    'Watch, stamp and act in these namespaces only (comma-separated or repeated; default: all namespaces).',
    `${E}WATCH_NAMESPACE`,
    { commas: true },
  ),
  'exclude-namespaces': list(
    "Namespaces never stamped, triggered or retried (comma-separated or repeated); they win over --watch-namespace. Default: kube-system and the operator's own (--namespace), as the shipped webhook configuration's namespaceSelector, but for namespaces --watch-namespace names; --exclude-namespaces= for none.",
    `${E}EXCLUDE_NAMESPACES`,
    { commas: true },
  ),
  'watch-label-selector': string(
    "Reconcile only the HelmReleases this label selector matches (sharding, Flux's convention: 'sharding.fluxcd.io/key in (shard1)' for a shard, '!sharding.fluxcd.io/key' for the default instance); each shard needs its own --lease-name. The webhook stamps every release whatever its shard.",
    `${E}WATCH_LABEL_SELECTOR`,
    '',
  ),
  // roles
  webhook: bool('Serve the mutating admission webhook.', `${E}WEBHOOK`, true),
  reconciler: bool(
    'Run the reconcilers (triggers and retries) while holding the leader Lease.',
    `${E}RECONCILER`,
    true,
  ),
  // webhook
  'webhook-port': int('HTTPS port of the admission webhook.', `${E}WEBHOOK_PORT`, 9443, 0, 65535),
  'tls-mode': oneOf(
    'Where the serving certificate comes from: files in --cert-dir (cert-manager), or self-signed.',
    `${E}TLS_MODE`,
    'files',
    ['files', 'self-signed'],
  ),
  'cert-dir': string(
    'Directory with tls.crt and tls.key, laid out as a mounted Secret; reloaded on change.',
    `${E}CERT_DIR`,
    '/tmp/k8s-webhook-server/serving-certs',
  ),
  'cert-poll-interval': duration(
    'How often the certificate files are re-read besides watching the directory.',
    `${E}CERT_POLL_INTERVAL`,
    10_000,
  ),
  'self-signed-dns-names': list(
    'DNS names (and IPs) of the self-signed serving certificate; repeatable.',
    `${E}SELF_SIGNED_DNS_NAMES`,
  ),
  'webhook-configuration': string(
    'MutatingWebhookConfiguration whose caBundle self-signed mode keeps current; empty: none.',
    `${E}WEBHOOK_CONFIGURATION`,
    '',
  ),
  'webhook-lookup-timeout': duration(
    'Budget of the values lookup for one admission; past it the release is admitted without a digest.',
    `${E}WEBHOOK_LOOKUP_TIMEOUT`,
    500,
  ),
  'webhook-client-ca': string(
    "PEM bundle of the CAs whose client certificates may call the webhook (the API server's, given to it by its AdmissionConfiguration); empty: any client. Re-read on change.",
    `${E}WEBHOOK_CLIENT_CA`,
    '',
  ),
  // leader election
  'leader-elect': bool(
    'Hold a coordination.k8s.io Lease before running the reconcilers (off: run them at once).',
    `${E}LEADER_ELECT`,
    true,
  ),
  'lease-name': string(
    'Name of the leader-election Lease in --namespace; must be given, one per shard, with --watch-label-selector.',
    `${E}LEASE_NAME`,
    'helmrelease-autopilot',
  ),
  'lease-duration': duration(
    'How long followers wait after the last renewal before taking over.',
    `${E}LEASE_DURATION`,
    15_000,
  ),
  'lease-renew-deadline': duration(
    'The leader stops its reconcilers when it could not renew for this long.',
    `${E}LEASE_RENEW_DEADLINE`,
    10_000,
  ),
  'lease-retry-period': duration(
    'Interval between attempts to acquire or renew the Lease.',
    `${E}LEASE_RETRY_PERIOD`,
    2_000,
  ),
  // triggers
  debounce: duration(
    'Quiet time after a change before a release is triggered (0: trigger at once).',
    `${E}DEBOUNCE`,
    2_000,
  ),
  concurrency: int('Releases processed at the same time.', `${E}CONCURRENCY`, 4, 1, 256),
  // Flux's own client defaults (--kube-api-qps 50, --kube-api-burst 300): a storm of 1,000 changes is written
  // in about 14 s; --max-upgrades-in-flight, not this, is what spares helm-controller.
  'write-qps': number(
    'Sustained HelmRelease writes per second (all releases together); a change seen now gets the next write before the start-up or resync pass.',
    `${E}WRITE_QPS`,
    50,
    0.1,
    10_000,
  ),
  'write-burst': int('Writes allowed in a burst above --write-qps.', `${E}WRITE_BURST`, 300, 1, 100_000),
  'max-upgrades-in-flight': int(
    'Releases reconciling at once because of our triggers and retries, cluster-wide (0: no limit); the rest wait in order. A release counts from our write until Flux has handled it and stopped progressing.',
    `${E}MAX_UPGRADES_IN_FLIGHT`,
    0,
    0,
    100_000,
  ),
  force: bool(
    'Set reconcile.fluxcd.io/forceAt with every trigger (upgrade even when the values are unchanged).',
    `${E}FORCE`,
    false,
  ),
  'no-release-force': bool(
    'Lockdown: ignore the per-release helmrelease-autopilot.dev/force annotation (--force still applies).',
    `${E}NO_RELEASE_FORCE`,
    false,
  ),
  'no-cross-namespace-links': bool(
    "Lockdown: refuse every cross-namespace link, whatever the release's allow-source-namespaces annotation says.",
    `${E}NO_CROSS_NAMESPACE_LINKS`,
    false,
  ),
  'notify-only': bool(
    'Emit events and metrics for triggers and retries, but write nothing to HelmReleases.',
    `${E}NOTIFY_ONLY`,
    false,
  ),
  'flux-watches-configs': bool(
    'helm-controller watches ConfigMaps/Secrets itself (Flux >= 2.7, DisableConfigWatchers gate off): no reconcile request for changes of sources matching --watch-configs-label-selector, only their digest recorded. Off: trigger on every change (a redundant request costs Flux one no-op reconcile).',
    `${E}FLUX_WATCHES_CONFIGS`,
    false,
  ),
  'watch-configs-label-selector': labelSelector(
    'The label selector helm-controller\'s --watch-configs-label-selector is set to (used with --flux-watches-configs). Empty: no source counts as watched (helm-controller\'s empty value, watch all, is written "!helmrelease-autopilot.dev/none").',
    `${E}WATCH_CONFIGS_LABEL_SELECTOR`,
    'reconcile.fluxcd.io/watch=Enabled',
  ),
  'compat-trigger-operator': bool(
    "Also honour helmrelease-trigger-operator's link annotations (nebius.ai/..., uburro.github.com/...).",
    `${E}COMPAT_TRIGGER_OPERATOR`,
    false,
  ),
  // retries
  retries: bool('Retry releases that failed on transient errors.', `${E}RETRIES`, true),
  'retry-base-delay': duration(
    'Delay before the first retry of a failure episode.',
    `${E}RETRY_BASE_DELAY`,
    30_000,
  ),
  'retry-factor': number('Each further retry waits this many times longer.', `${E}RETRY_FACTOR`, 2, 1, 100),
  'retry-max-delay': duration('Upper bound of the delay between retries.', `${E}RETRY_MAX_DELAY`, 600_000),
  'retry-jitter': number(
    'Random extra delay, as a fraction of the delay (0 to 1).',
    `${E}RETRY_JITTER`,
    0.2,
    0,
    1,
  ),
  'retry-max-attempts': int(
    'Retries per failure episode before giving up.',
    `${E}RETRY_MAX_ATTEMPTS`,
    5,
    0,
    1000,
  ),
  'retry-patterns': list(
    'Extra transient-failure patterns (RE2 regular expressions, case-insensitive); repeatable.',
    `${E}RETRY_PATTERNS`,
  ),
  'no-release-retry-patterns': bool(
    'Lockdown: ignore the per-release helmrelease-autopilot.dev/retry-patterns annotation (told once per release).',
    `${E}NO_RELEASE_RETRY_PATTERNS`,
    false,
  ),
} satisfies Record<string, FlagSpec<unknown>>;

type Flags = typeof FLAGS;
/** Every flag's value, as given. */
export type FlagValues = { [K in keyof Flags]: Flags[K]['default'] };
/** The flags, and what is resolved from them once, at start-up. */
export type Config = FlagValues & { retry: RetryPolicy };

/** The retry flags resolved: the transient patterns compiled (defaults, then --retry-patterns) and the limits. */
export interface RetryPolicy extends ClassifyPolicy {
  limits: RetryLimits;
}

export type FlagName = keyof Flags;

export const HELP_FLAG = 'help';

/** Thrown for --help: the message is the usage text, and the process exits 0. */
export class HelpRequested extends Error {}

export function usage(): string {
  const lines = [
    'Usage: helmrelease-autopilot [flags]',
    '',
    'Every flag can also be set by its environment variable.',
    '',
  ];
  for (const [name, spec] of Object.entries(FLAGS) as [string, FlagSpec<unknown>][]) {
    const placeholder =
      spec.type === 'bool' ? '' : spec.type === 'enum' ? ` ${spec.values?.join('|')}` : ` ${spec.type}`;
    const def = Array.isArray(spec.default) ? '' : ` (default ${formatDefault(spec)})`;
    lines.push(`  --${name}${placeholder}`, `      ${spec.help}${def} [$${spec.env}]`);
  }
  lines.push('  --help', '      Print this help and exit.');
  return lines.join('\n');
}

export function formatDefault(spec: FlagSpec<unknown>): string {
  if (spec.type === 'duration') return formatDuration(spec.default as number);
  if (Array.isArray(spec.default)) return '';
  return spec.default === '' ? '""' : String(spec.default);
}

export function formatDuration(ms: number): string {
  if (ms === 0) return '0';
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}

/** What the flags' defaults depend on outside argv and env, passed in so parseConfig stays pure. */
export interface ConfigSources {
  /** The namespace of the pod's service account (the in-cluster namespace file), if there is one. */
  inClusterNamespace?: () => string | undefined;
}

/**
 * Parses argv (without node and script) and env. Throws ConfigError for bad input, HelpRequested for --help.
 * The result is resolved: `namespace` is never empty.
 */
export function parseConfig(
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
  sources: ConfigSources = {},
): Config {
  const specs = FLAGS as Record<string, FlagSpec<unknown>>;
  const fromArgs = new Map<string, string[]>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === '--help' || arg === '-h') throw new HelpRequested(usage());
    if (!arg.startsWith('--'))
      throw new ConfigError(`unexpected argument "${arg}" (flags start with --; see --help)`);
    let [name, value] = splitFlag(arg.slice(2));
    let spec = specs[name];
    if (!spec && name.startsWith('no-') && specs[name.slice(3)]?.type === 'bool' && value === undefined) {
      name = name.slice(3);
      spec = specs[name];
      value = 'false';
    }
    if (!spec) throw new ConfigError(`unknown flag --${name} (see --help)`);
    if (value === undefined) {
      if (spec.type === 'bool') value = 'true';
      else {
        const next = argv[i + 1];
        if (next === undefined) throw new ConfigError(`--${name} needs a value`);
        value = next;
        i++;
      }
    }
    fromArgs.set(name, [...(fromArgs.get(name) ?? []), value]);
  }
  const config: Record<string, unknown> = {};
  const given = (name: FlagName) => fromArgs.has(name) || Boolean(env[FLAGS[name].env]);
  for (const [name, spec] of Object.entries(specs)) {
    const given = fromArgs.get(name);
    if (given && spec.type === 'list') config[name] = given.flatMap((v) => spec.parse(v, name) as string[]);
    else if (given) config[name] = spec.parse(given[given.length - 1] as string, name);
    else if (env[spec.env] !== undefined && env[spec.env] !== '')
      config[name] = parseEnv(spec, name, env[spec.env] as string);
    else config[name] = spec.default;
  }
  config.namespace ||= sources.inClusterNamespace?.() || DEFAULT_NAMESPACE;
  const excludeGiven =
    fromArgs.has('exclude-namespaces') || env[FLAGS['exclude-namespaces'].env] !== undefined;
  if (!excludeGiven)
    config['exclude-namespaces'] = defaultExcludedNamespaces(
      config.namespace as string,
      config['watch-namespace'] as string[],
    );
  const c = config as FlagValues;
  // Two shards on one Lease would take turns instead of running side by side: say so at start.
  if (c['watch-label-selector'] !== '' && c.reconciler && c['leader-elect'] && !given('lease-name')) {
    throw new ConfigError(
      '--watch-label-selector needs --lease-name: every shard holds a Lease of its own (and the leader-election Role must grant it)',
    );
  }
  return validate(c);
}

function parseEnv(spec: FlagSpec<unknown>, name: string, raw: string): unknown {
  try {
    return spec.parse(raw, name);
  } catch (err) {
    throw new ConfigError(`$${spec.env}: ${(err as Error).message.replace(/^--[\w-]+: /, '')}`);
  }
}

function splitFlag(s: string): [string, string | undefined] {
  const eq = s.indexOf('=');
  return eq < 0 ? [s, undefined] : [s.slice(0, eq), s.slice(eq + 1)];
}

/**
 * What the shipped webhook configuration's namespaceSelector excludes, kube-system and the operator's own,
 * but for those --watch-namespace names (a namespaced install may live beside the releases it serves).
 */
export function defaultExcludedNamespaces(namespace: string, watched: readonly string[] = []): string[] {
  return [...new Set(['kube-system', namespace])].filter((ns) => !watched.includes(ns));
}

/** Checks that need more than one flag, and the resolved parts. */
function validate(c: FlagValues): Config {
  if (c['lease-renew-deadline'] >= c['lease-duration']) {
    throw new ConfigError('--lease-renew-deadline must be shorter than --lease-duration');
  }
  if (c['lease-retry-period'] >= c['lease-renew-deadline']) {
    throw new ConfigError('--lease-retry-period must be shorter than --lease-renew-deadline');
  }
  if (c['retry-base-delay'] > c['retry-max-delay']) {
    throw new ConfigError('--retry-base-delay must not exceed --retry-max-delay');
  }
  if (c['retry-base-delay'] <= 0) throw new ConfigError('--retry-base-delay must be greater than 0');
  const retry = resolveRetryPolicy(c);
  checkScope(c);
  if (!c.webhook && !c.reconciler)
    throw new ConfigError('--webhook and --reconciler are both off: nothing to run');
  return { ...c, retry };
}

/** Namespace names are DNS labels; a watch list that exclusions empty would watch nothing. */
function checkScope(c: FlagValues): void {
  for (const flag of ['watch-namespace', 'exclude-namespaces'] as const) {
    const bad = c[flag].find((ns) => !DNS_LABEL.test(ns));
    if (bad !== undefined) throw new ConfigError(`--${flag}: "${bad}" is not a namespace name`);
  }
  const watched = c['watch-namespace'];
  if (watched.length > 0 && watched.every((ns) => c['exclude-namespaces'].includes(ns))) {
    throw new ConfigError(
      `--watch-namespace: every namespace given (${watched.join(', ')}) is in --exclude-namespaces: nothing to watch`,
    );
  }
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/**
 * The sources helm-controller watches itself, as a matcher of their labels; undefined when the operator is
 * not told that it does (--flux-watches-configs off) or the selector is empty.
 */
export function fluxWatchMatcher(
  c: Pick<FlagValues, 'flux-watches-configs' | 'watch-configs-label-selector'>,
): LabelMatcher | undefined {
  const raw = c['watch-configs-label-selector'];
  if (!c['flux-watches-configs'] || raw.trim() === '') return undefined;
  const parsed = parseLabelSelector(raw);
  if (!parsed.ok) throw new ConfigError(`--watch-configs-label-selector: ${parsed.error}`);
  return parsed.matches;
}

/** Compiles the transient patterns once (a bad one names its flag) and assembles the retry limits. */
function resolveRetryPolicy(c: FlagValues): RetryPolicy {
  const compiled = transientPatterns(c['retry-patterns']);
  if (!compiled.ok) throw new ConfigError(`${compiled.error} [$${FLAGS['retry-patterns'].env}]`);
  return {
    patterns: compiled.patterns,
    ignoreReleasePatterns: c['no-release-retry-patterns'],
    limits: {
      baseMs: c['retry-base-delay'],
      factor: c['retry-factor'],
      maxMs: c['retry-max-delay'],
      jitter: c['retry-jitter'],
      maxAttempts: c['retry-max-attempts'],
    },
  };
}
