import { describe, expect, it } from 'vitest';
import {
  ConfigError,
  DEFAULT_NAMESPACE,
  FLAGS,
  HelpRequested,
  parseConfig,
  parseDuration,
  usage,
} from './config.ts';

describe('parseDuration', () => {
  it.each([
    ['0', 0],
    ['500ms', 500],
    ['10s', 10_000],
    ['1.5s', 1500],
    ['5m', 300_000],
    ['1h30m', 5_400_000],
  ])('%s is %d ms', (raw, ms) => {
    expect(parseDuration(raw)).toBe(ms);
  });

  it.each(['', '10', '5x', 's', '-1s', '1s junk'])('rejects %j', (raw) => {
    expect(() => parseDuration(raw, 'debounce')).toThrow(ConfigError);
  });
});

describe('parseConfig', () => {
  it('uses the defaults when nothing is given (namespace and exclusions are resolved: see below)', () => {
    const c = parseConfig([], {});
    for (const [name, spec] of Object.entries(FLAGS)) {
      if (name !== 'namespace' && name !== 'exclude-namespaces')
        expect(c[name as keyof typeof c]).toEqual(spec.default);
    }
    expect(c['exclude-namespaces']).toEqual(['kube-system', DEFAULT_NAMESPACE]);
    expect(parseConfig(['--namespace=ops'], {})['exclude-namespaces']).toEqual(['kube-system', 'ops']);
  });

  it('takes a flag over its environment variable over the default', () => {
    expect(parseConfig([], { AUTOPILOT_DEBOUNCE: '3s' }).debounce).toBe(3000);
    expect(parseConfig(['--debounce=1s'], { AUTOPILOT_DEBOUNCE: '3s' }).debounce).toBe(1000);
    expect(parseConfig(['--debounce', '250ms'], {}).debounce).toBe(250);
  });

  it.each([
    [['--force'], true],
    [['--force=false'], false],
    [['--no-force'], false],
    [['--force=true', '--no-force'], false],
  ])('parses booleans: %j', (argv, value) => {
    expect(parseConfig(argv, {}).force).toBe(value);
  });

  it('collects repeated list flags, and one item per line from the environment', () => {
    expect(parseConfig(['--retry-patterns=a', '--retry-patterns', 'b|c'], {})['retry-patterns']).toEqual([
      'a',
      'b|c',
    ]);
    expect(parseConfig([], { AUTOPILOT_RETRY_PATTERNS: 'x\n\n y \n' })['retry-patterns']).toEqual(['x', 'y']);
  });

  it.each([
    [['--nope'], /unknown flag --nope/],
    [['positional'], /unexpected argument "positional"/],
    [['--debounce'], /--debounce needs a value/],
    [['--concurrency=0'], /--concurrency: "0" must be an integer from 1/],
    [['--write-qps=fast'], /--write-qps: "fast" must be a number/],
    [['--log-level=loud'], /--log-level: "loud" must be one of/],
    [['--tls-mode=magic'], /--tls-mode/],
    [['--force=maybe'], /--force: "maybe" is not a boolean/],
    [['--webhook=false', '--reconciler=false'], /nothing to run/],
    [
      ['--retry-base-delay=20m', '--retry-max-delay=10m'],
      /--retry-base-delay must not exceed --retry-max-delay/,
    ],
  ])('rejects %j with a message naming the flag', (argv, message) => {
    expect(() => parseConfig(argv, {})).toThrow(message);
  });

  it.each<[string, string[], Record<string, string>, string | RegExp]>([
    ['a shard with its own Lease', ['--watch-label-selector=s in (a)', '--lease-name=l-a'], {}, 'l-a'],
    ['the Lease from the environment', ['--watch-label-selector=!s'], { AUTOPILOT_LEASE_NAME: 'l-0' }, 'l-0'],
    [
      'a shard without --lease-name',
      ['--watch-label-selector=s in (a)'],
      {},
      /--watch-label-selector needs --lease-name/,
    ],
    ['no selector: the default Lease', [], {}, 'helmrelease-autopilot'],
    [
      'a shard without leader election needs no Lease',
      ['--watch-label-selector=!s', '--leader-elect=false'],
      {},
      'helmrelease-autopilot',
    ],
  ])('sharding: %s', (_case, argv, env, expected) => {
    if (typeof expected === 'string') expect(parseConfig(argv, env)['lease-name']).toBe(expected);
    else expect(() => parseConfig(argv, env)).toThrow(expected);
  });

  it('resolves the retry flags once: compiled patterns (defaults first) and the limits', () => {
    const c = parseConfig(
      ['--retry-patterns=connection reset', '--retry-base-delay=10s', '--retry-max-attempts=3'],
      { AUTOPILOT_RETRY_JITTER: '0.5' },
    );
    expect(c.retry.limits).toEqual({
      baseMs: 10_000,
      factor: 2,
      maxMs: 600_000,
      jitter: 0.5,
      maxAttempts: 3,
    });
    expect(c.retry.patterns.at(-1)?.source).toBe('connection reset');
    expect(c.retry.patterns.at(-1)?.test('Connection Reset by peer')).toBe(true);
    expect(c.retry.patterns.some((p) => p.test('context deadline exceeded'))).toBe(true);
  });

  it.each([
    ['no-cross-namespace-links', 'AUTOPILOT_NO_CROSS_NAMESPACE_LINKS'],
    ['no-release-retry-patterns', 'AUTOPILOT_NO_RELEASE_RETRY_PATTERNS'],
    ['no-release-force', 'AUTOPILOT_NO_RELEASE_FORCE'],
  ] as const)('lockdown flag --%s is off by default, on by flag or %s', (flag, env) => {
    expect(parseConfig([], {})[flag]).toBe(false);
    expect(parseConfig([`--${flag}`], {})[flag]).toBe(true);
    expect(parseConfig([], { [env]: 'true' })[flag]).toBe(true);
  });

  it('--no-release-retry-patterns reaches the retry policy', () => {
    expect(parseConfig([], {}).retry.ignoreReleasePatterns).toBe(false);
    expect(parseConfig(['--no-release-retry-patterns'], {}).retry.ignoreReleasePatterns).toBe(true);
  });

  it('names the environment variable when its value is bad', () => {
    expect(() => parseConfig([], { AUTOPILOT_HEALTH_PORT: '70000' })).toThrow(
      /\$AUTOPILOT_HEALTH_PORT: "70000" must be an integer/,
    );
  });

  it('answers --help with a usage text that lists every flag and variable', () => {
    expect(() => parseConfig(['--debounce=1s', '--help'], {})).toThrow(HelpRequested);
    const text = usage();
    for (const [name, spec] of Object.entries(FLAGS)) {
      expect(text).toContain(`--${name}`);
      expect(text).toContain(`$${spec.env}`);
    }
  });
});

describe('the operator namespace', () => {
  const inCluster = (ns: string | undefined) => ({ inClusterNamespace: () => ns });

  it.each<[string, string[], Record<string, string>, string | undefined, string]>([
    ['the flag', ['--namespace=from-flag'], { AUTOPILOT_NAMESPACE: 'from-env' }, 'in-cluster', 'from-flag'],
    ['the environment variable', [], { AUTOPILOT_NAMESPACE: 'from-env' }, 'in-cluster', 'from-env'],
    ['the in-cluster namespace when neither is set', [], {}, 'in-cluster', 'in-cluster'],
    ['the default outside a cluster', [], {}, undefined, DEFAULT_NAMESPACE],
    ['the default when the in-cluster namespace is empty', [], {}, '', DEFAULT_NAMESPACE],
    ['the in-cluster namespace over an empty flag', ['--namespace='], {}, 'in-cluster', 'in-cluster'],
  ])('comes from %s', (_, argv, env, ns, expected) => {
    expect(parseConfig(argv, env, inCluster(ns)).namespace).toBe(expected);
  });

  it('is never empty, and the in-cluster namespace is read only when no flag names one', () => {
    expect(parseConfig([], {}).namespace).toBe(DEFAULT_NAMESPACE);
    let reads = 0;
    const counting = {
      inClusterNamespace: () => {
        reads++;
        return 'in-cluster';
      },
    };
    parseConfig(['--namespace=ns'], {}, counting);
    expect(reads).toBe(0);
  });
});
