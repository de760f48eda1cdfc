import { describe, expect, it } from 'vitest';
import { parseConfig } from './config.ts';
import { namespaceScope } from './scope.ts';

const scopeOf = (argv: string[], env: NodeJS.ProcessEnv = {}) =>
  namespaceScope(parseConfig(argv, env, { inClusterNamespace: () => 'ops' }));

describe('namespace scope', () => {
  it.each<[string, string[], NodeJS.ProcessEnv, Record<string, boolean>, string[]]>([
    [
      'default: all but kube-system and our own',
      [],
      {},
      { team: true, 'kube-system': false, ops: false },
      [],
    ],
    [
      'one watched namespace',
      ['--watch-namespace=a'],
      {},
      { a: true, b: false, 'kube-system': false },
      ['a'],
    ],
    ['a comma-separated list', ['--watch-namespace=a, b'], {}, { a: true, b: true, c: false }, ['a', 'b']],
    [
      'a repeated flag',
      ['--watch-namespace=a', '--watch-namespace', 'b'],
      {},
      { a: true, b: true, c: false },
      ['a', 'b'],
    ],
    [
      'env, one per line or comma-separated',
      [],
      { AUTOPILOT_WATCH_NAMESPACE: 'a\nb,c\n' },
      { a: true, c: true, d: false },
      ['a', 'b', 'c'],
    ],
    [
      'an explicit exclusion wins over the watch list',
      ['--watch-namespace=a,b', '--exclude-namespaces=b'],
      {},
      { a: true, b: false },
      ['a'],
    ],
    [
      'a watched namespace is not excluded by default (a namespaced install beside its releases)',
      ['--watch-namespace=ops'],
      {},
      { ops: true, 'kube-system': false, a: false },
      ['ops'],
    ],
    [
      'explicit exclusions replace the default',
      ['--exclude-namespaces=x'],
      {},
      { x: false, 'kube-system': true, ops: true },
      [],
    ],
    [
      '--exclude-namespaces= excludes none',
      ['--exclude-namespaces='],
      {},
      { 'kube-system': true, ops: true },
      [],
    ],
    ['env exclusions', [], { AUTOPILOT_EXCLUDE_NAMESPACES: 'x,y' }, { x: false, y: false, ops: true }, []],
  ])('%s', (_name, argv, env, expected, watched) => {
    const s = scopeOf(argv, env);
    for (const [ns, inScope] of Object.entries(expected)) expect([ns, s.inScope(ns)]).toEqual([ns, inScope]);
    expect(s.watched).toEqual(watched);
  });

  it.each([
    [['--watch-namespace=Bad_Name'], '--watch-namespace: "Bad_Name" is not a namespace name'],
    [['--exclude-namespaces=a/b'], '--exclude-namespaces: "a/b" is not a namespace name'],
    [['--watch-namespace=a', '--exclude-namespaces=a,b'], 'nothing to watch'],
  ])('refuses %j', (argv, message) => {
    expect(() => scopeOf(argv)).toThrow(message);
  });
});
