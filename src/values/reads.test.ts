// What Flux reads, row by row from fluxcd/pkg chartutil v1.27.2: `values_test.go:<line>` rows are chartutil's
// own test cases (TestChartValuesFromReferences), `values.go:<line>` rows are derived from its code where it
// has no test. Merge order, targetPath precedence and YAML/strvals errors are Flux's composition, not which
// bytes it reads; those rows check that the bytes are read (the composition's outcome is Flux's to report).
import { describe, expect, it } from 'vitest';
import type { ValuesReference } from '../flux/helmrelease.ts';
import { keyBytesOf } from './digest.ts';
import { fluxReads } from './reads.ts';

type Obj = { data?: Record<string, string>; binaryData?: Record<string, string> };
const b64 = (s: string) => Buffer.from(s).toString('base64');

const ref = (
  kind: ValuesReference['kind'],
  name: string,
  o: Partial<ValuesReference> = {},
): ValuesReference => ({
  kind,
  name,
  valuesKey: 'values.yaml',
  targetPath: '',
  optional: false,
  ...o,
});

/** What the table expects: the bytes (as text) of each entry read, null for a skipped one; or the failing index. */
type Expect = { reads: (string | null)[] } | { failsAt: number };

const cases: [string, Record<string, Obj>, ValuesReference[], Expect][] = [
  [
    'values_test.go:47 a ConfigMap and a Secret with the default key (then inline values)',
    {
      'ConfigMap/values': { data: { 'values.yaml': 'flat: value\n' } },
      'Secret/values': { data: { 'values.yaml': b64('other: values\n') } },
    },
    [ref('ConfigMap', 'values'), ref('Secret', 'values')],
    { reads: ['flat: value\n', 'other: values\n'] },
  ],
  [
    'values_test.go:84 a Secret key with a targetPath',
    { 'Secret/values': { data: { single: b64('value') } } },
    [ref('Secret', 'values', { valuesKey: 'single', targetPath: 'merge.at.specific.path' })],
    { reads: ['value'] },
  ],
  [
    'values_test.go:107 a targetPath entry listed before a root merge',
    {
      'Secret/values': { data: { key: b64('value') } },
      'ConfigMap/values': { data: { 'values.yaml': 'flat: value\n' } },
    },
    [
      ref('Secret', 'values', { valuesKey: 'key', targetPath: 'nested.configuration[0]' }),
      ref('ConfigMap', 'values'),
    ],
    { reads: ['value', 'flat: value\n'] },
  ],
  [
    'values_test.go:148 a root merge, then a targetPath into a list',
    {
      'ConfigMap/values': { data: { 'values.yaml': 'flat: value\n' } },
      'Secret/values': { data: { 'values.yaml': b64('foo') } },
    },
    [ref('ConfigMap', 'values'), ref('Secret', 'values', { targetPath: 'nested.configuration[1]' })],
    { reads: ['flat: value\n', 'foo'] },
  ],
  ['values_test.go:186 a missing Secret, required: fails', {}, [ref('Secret', 'missing')], { failsAt: 0 }],
  [
    'values_test.go:196 a missing Secret, optional: skipped',
    {},
    [ref('Secret', 'missing', { optional: true })],
    { reads: [null] },
  ],
  [
    'values_test.go:208 a missing ConfigMap, required: fails',
    {},
    [ref('ConfigMap', 'missing')],
    { failsAt: 0 },
  ],
  [
    'values_test.go:218 a missing ConfigMap, optional: skipped',
    {},
    [ref('ConfigMap', 'missing', { optional: true })],
    { reads: [null] },
  ],
  [
    'values_test.go:230 a Secret without the key, required: fails',
    { 'Secret/values': { data: { 'values.yaml': b64('a: b\n') } } },
    [ref('Secret', 'values', { valuesKey: 'nonexisting' })],
    { failsAt: 0 },
  ],
  [
    'values_test.go:244 a ConfigMap without the key, required: fails',
    { 'ConfigMap/values': { data: { 'values.yaml': 'a: b\n' } } },
    [ref('ConfigMap', 'values', { valuesKey: 'nonexisting' })],
    { failsAt: 0 },
  ],
  [
    'values_test.go:267 data that is not a YAML map is still read (Flux fails it: ValuesError)',
    { 'ConfigMap/values': { data: { 'values.yaml': '\ninvalid' } } },
    [ref('ConfigMap', 'values')],
    { reads: ['\ninvalid'] },
  ],
  [
    'values_test.go:305 literal, multi-line YAML at a targetPath',
    { 'ConfigMap/values': { data: { 'application.yml': 'server:\n  port: 8080\n' } } },
    [
      ref('ConfigMap', 'values', {
        valuesKey: 'application.yml',
        targetPath: 'externalConfig.application\\.yml.content',
        literal: true,
      }),
    ],
    { reads: ['server:\n  port: 8080\n'] },
  ],
  [
    'values_test.go:329 literal, a Secret with HOCON',
    { 'Secret/values': { data: { 'application.conf': b64('akka { loglevel = "INFO" }') } } },
    [ref('Secret', 'values', { valuesKey: 'application.conf', targetPath: 'config', literal: true })],
    { reads: ['akka { loglevel = "INFO" }'] },
  ],
  [
    'values_test.go:353 literal without a targetPath (a root merge; literal ignored)',
    { 'ConfigMap/values': { data: { 'values.yaml': 'flat: value\n' } } },
    [ref('ConfigMap', 'values', { literal: true })],
    { reads: ['flat: value\n'] },
  ],
  [
    'values_test.go:398 literal, comma-separated brokers',
    { 'Secret/values': { data: { brokers: b64('kafka01.net:9092,kafka02.net:9092') } } },
    [ref('Secret', 'values', { valuesKey: 'brokers', targetPath: 'kafka.brokers', literal: true })],
    { reads: ['kafka01.net:9092,kafka02.net:9092'] },
  ],
  [
    'values.go:216 a ConfigMap without the key, optional: skipped',
    { 'ConfigMap/values': { data: { other: 'x' } } },
    [ref('ConfigMap', 'values', { optional: true })],
    { reads: [null] },
  ],
  [
    'values.go:205 a Secret without the key, optional: skipped',
    { 'Secret/values': { data: { other: b64('x') } } },
    [ref('Secret', 'values', { optional: true })],
    { reads: [null] },
  ],
  [
    'values.go:216 a ConfigMap key only in binaryData is missing (required: fails)',
    { 'ConfigMap/values': { binaryData: { 'values.yaml': b64('a: b\n') } } },
    [ref('ConfigMap', 'values')],
    { failsAt: 0 },
  ],
  [
    'values.go:216 a ConfigMap key only in binaryData is missing (optional: skipped)',
    { 'ConfigMap/values': { binaryData: { 'values.yaml': b64('a: b\n') } } },
    [ref('ConfigMap', 'values', { optional: true })],
    { reads: [null] },
  ],
  [
    'values.go:167 one object referenced twice, optional then required, missing: fails at the required one',
    {},
    [ref('ConfigMap', 'values', { optional: true }), ref('ConfigMap', 'values', { valuesKey: 'b.yaml' })],
    { failsAt: 1 },
  ],
  [
    'values.go:249 an empty value is present (contributes nothing, but is no missing key)',
    { 'ConfigMap/values': { data: { 'values.yaml': '' } } },
    [ref('ConfigMap', 'values')],
    { reads: [''] },
  ],
  [
    'values.go:196 reading stops at the first failing entry',
    {
      'ConfigMap/a': { data: { 'values.yaml': 'a: 1\n' } },
      'ConfigMap/c': { data: { 'values.yaml': 'c: 1\n' } },
    },
    [ref('ConfigMap', 'a'), ref('ConfigMap', 'b'), ref('ConfigMap', 'c')],
    { failsAt: 1 },
  ],
];

describe('fluxReads: the bytes chartutil reads, case by case', () => {
  it.each(cases)('%s', (_, objects, refs, expected) => {
    const reads = fluxReads(refs, (r) => keyBytesOf(r.kind, objects[`${r.kind}/${r.name}`], r.valuesKey));
    if ('failsAt' in expected) {
      expect(reads).toMatchObject({ ok: false, index: expected.failsAt });
      return;
    }
    expect(reads.ok).toBe(true);
    if (!reads.ok) return;
    expect(
      reads.entries.map((e) => (e.bytes === null ? null : Buffer.from(e.bytes).toString('utf8'))),
    ).toEqual(expected.reads);
  });
});
