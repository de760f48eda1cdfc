import { describe, expect, it } from 'vitest';
import type { ValuesReference } from '../flux/helmrelease.ts';
import { Annotations, Labels } from '../names.ts';
import { desiredStamp } from './stamp.ts';

const ref: ValuesReference = {
  kind: 'ConfigMap',
  name: 'v',
  valuesKey: 'values.yaml',
  targetPath: '',
  optional: false,
};
const D = `sha256:${'d'.repeat(64)}`;
const subject = (annotations: Record<string, string> = {}, valuesFrom = [ref]) => ({
  metadata: { annotations },
  valuesFrom,
});

describe('desiredStamp', () => {
  it.each([
    ['managed, digest known', subject(), D, { [Labels.managed]: 'true' }, { [Annotations.valuesDigest]: D }],
    [
      'managed, digest unknown',
      subject(),
      undefined,
      { [Labels.managed]: 'true' },
      { [Annotations.valuesDigest]: null },
    ],
    ['no valuesFrom', subject({}, []), D, { [Labels.managed]: null }, { [Annotations.valuesDigest]: null }],
    [
      'opted out',
      subject({ [Annotations.ignore]: 'true' }),
      D,
      { [Labels.managed]: null },
      { [Annotations.valuesDigest]: null },
    ],
    [
      'ignore is only "true"',
      subject({ [Annotations.ignore]: 'yes' }),
      D,
      { [Labels.managed]: 'true' },
      { [Annotations.valuesDigest]: D },
    ],
  ])('%s', (_, hr, digest, labels, annotations) => {
    expect(desiredStamp(hr, digest)).toEqual({ labels, annotations });
  });
});
