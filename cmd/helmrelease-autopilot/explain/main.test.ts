import { describe, expect, it } from 'vitest';
import { parseExplainArgs, UsageError } from './main.ts';

describe('parseExplainArgs', () => {
  it.each([
    [['apps/web'], { target: { namespace: 'apps', name: 'web' }, all: false, output: 'text' }],
    [['web', '-n', 'apps', '-o', 'json'], { target: { namespace: 'apps', name: 'web' }, output: 'json' }],
    [['--namespace=apps', 'web'], { target: { namespace: 'apps', name: 'web' } }],
    [['--all'], { all: true, output: 'text', operatorFlags: [] }],
    [['--all', '-n', 'apps'], { all: true, namespace: 'apps' }],
    [['apps/web', '--kubeconfig', '/k', '--context=c'], { kubeconfig: '/k', context: 'c' }],
    [['apps/web', '--operator-deployment='], { operatorDeployment: '' }],
    [['apps/web', '--operator-namespace', 'ops', '--events=3'], { operatorNamespace: 'ops', events: 3 }],
    // Operator flags pass through to the operator's own parser, in the --name=value form.
    [
      ['apps/web', '--retry-max-attempts', '3', '--force', '--no-retries', '--retry-patterns=x'],
      { operatorFlags: ['--retry-max-attempts=3', '--force', '--no-retries', '--retry-patterns=x'] },
    ],
  ] as const)('%j', (argv, expected) => {
    expect(parseExplainArgs(argv)).toMatchObject(expected);
  });

  it.each([
    [['apps/web', 'other'], 'name one release'],
    [[], 'name one release'],
    [['web'], 'name the release as <namespace>/<name>'],
    [['--all', 'apps/web'], '--all takes no release name'],
    [['apps/web', '-o', 'yaml'], '--output must be text or json'],
    [['apps/web', '--bogus'], 'unknown flag --bogus'],
    [['apps/web', '--events', 'many'], '--events must be a number'],
    [['apps/web', '--kubeconfig'], '--kubeconfig needs a value'],
  ] as const)('%j is refused: %s', (argv, message) => {
    expect(() => parseExplainArgs(argv)).toThrow(UsageError);
    expect(() => parseExplainArgs(argv)).toThrow(message);
  });
});
