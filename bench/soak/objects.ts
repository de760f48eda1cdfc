// The soak's objects. Release app-i (namespaces soak-0..4) consumes its ConfigMap cm-i (key values.yaml, or
// alt.yaml for every fourth; a targetPath for some) and its Secret sec-i; every fifth also an optional
// ConfigMap opt-i that comes and goes; every tenth is linked explicitly by a ConfigMap lnk-i. Created stamped
// (values digest and link digests under the soak's key), as the webhook and the operator would have, so the
// operators' start-up pass writes nothing. Every write of a source is reported to the oracle.
import type { ValuesReference } from '../../src/flux/helmrelease.ts';
import type { KubeClient } from '../../src/kube/client.ts';
import {
  ConfigMaps,
  collectionPath,
  HelmReleases,
  Namespaces,
  objectPath,
  Secrets,
} from '../../src/kube/resources.ts';
import { Annotations, Labels } from '../../src/names.ts';
import { formatLinkDigests } from '../../src/triggers/decide.ts';
import { isObject, str, stringMap } from '../../src/util/narrow.ts';
import { objectDataDigest, valuesDigestOfBytes } from '../../src/values/digest.ts';
import { BENCH_DIGEST_KEYS, parallel } from '../triggers/objects.ts';
import type { Oracle, SourceState } from './oracle.ts';

export const NAMESPACES = 5;
export const namespaceOf = (n: number) => `soak-${n}`;

export interface ReleaseSpec {
  namespace: string;
  name: string;
  refs: ValuesReference[];
  links: string[];
  /** The ConfigMap and key it reads first (the generator's consumed-key changes). */
  configMap: string;
  consumedKey: string;
  secret?: string;
  optional?: string;
}

const ref = (
  kind: 'ConfigMap' | 'Secret',
  name: string,
  extra: Partial<ValuesReference> = {},
): ValuesReference => ({ kind, name, valuesKey: 'values.yaml', targetPath: '', optional: false, ...extra });

export const values = (name: string, gen: number) =>
  `replicaCount: ${gen}\nimage: {repository: example/${name}, tag: "1.${gen}.0"}\n`;

/** The spec of base release g. */
export function baseRelease(g: number, releases: number): ReleaseSpec {
  const perNs = Math.ceil(releases / NAMESPACES);
  const namespace = namespaceOf(Math.floor(g / perNs));
  const i = g % perNs;
  const consumedKey = i % 4 === 1 ? 'alt.yaml' : 'values.yaml';
  const refs = [
    ref('ConfigMap', `cm-${i}`, { valuesKey: consumedKey, ...(i % 4 === 2 ? { targetPath: 'sub' } : {}) }),
    ref('Secret', `sec-${i}`),
    ...(i % 5 === 0 ? [ref('ConfigMap', `opt-${i}`, { optional: true })] : []),
  ];
  return {
    namespace,
    name: `app-${i}`,
    refs,
    links: i % 10 === 3 ? [`ConfigMap/${namespace}/lnk-${i}`] : [],
    configMap: `cm-${i}`,
    consumedKey,
    secret: `sec-${i}`,
    ...(i % 5 === 0 ? { optional: `opt-${i}` } : {}),
  };
}

/** The data of an object in an API answer (a Secret's stays base64), or null when there is none. */
export function stateOf(raw: unknown): { rv: number; state: SourceState } | undefined {
  if (!isObject(raw) || !isObject(raw.metadata)) return undefined;
  return { rv: Number(str(raw.metadata.resourceVersion)), state: stringMap(raw.data) };
}

/** Creates a ConfigMap or Secret and tells the oracle. */
export async function createSource(
  client: KubeClient,
  oracle: Oracle,
  kind: 'ConfigMap' | 'Secret',
  namespace: string,
  name: string,
  data: Record<string, string>,
  annotations: Record<string, string> = {},
): Promise<void> {
  const res = await client.create(collectionPath(kind === 'ConfigMap' ? ConfigMaps : Secrets, namespace), {
    metadata: { name, annotations },
    data,
  });
  const s = stateOf(res);
  if (s) oracle.source(`${kind}/${namespace}/${name}`, s.rv, Date.now(), s.state);
}

const b64 = (s: string) => Buffer.from(s).toString('base64');

/** The HelmRelease object of a spec; `stamp`: with our label and digests as of `data`. */
export function releaseObject(
  spec: ReleaseSpec,
  stamp?: (ref: ValuesReference) => Uint8Array | null,
  linkData?: Record<string, Record<string, string>>,
): Record<string, unknown> {
  const key = BENCH_DIGEST_KEYS.current;
  const annotations: Record<string, string> = {};
  if (stamp)
    annotations[Annotations.valuesDigest] = valuesDigestOfBytes(key, spec.namespace, spec.refs, stamp);
  if (linkData && spec.links.length > 0) {
    const links: Record<string, string> = {};
    for (const id of spec.links) {
      const [kind, namespace, name] = id.split('/') as ['ConfigMap', string, string];
      links[id] = objectDataDigest(key, { kind, namespace, name }, { data: linkData[id] ?? {} });
    }
    annotations[Annotations.linkDigests] = formatLinkDigests(links) as string;
  }
  return {
    apiVersion: 'helm.toolkit.fluxcd.io/v2',
    kind: 'HelmRelease',
    metadata: {
      name: spec.name,
      ...(stamp ? { labels: { [Labels.managed]: 'true' } } : {}),
      annotations,
    },
    spec: {
      interval: '1h',
      chart: { spec: { chart: 'app', sourceRef: { kind: 'HelmRepository', name: 'repo' } } },
      valuesFrom: spec.refs.map((r) => ({
        kind: r.kind,
        name: r.name,
        ...(r.valuesKey !== 'values.yaml' ? { valuesKey: r.valuesKey } : {}),
        ...(r.targetPath ? { targetPath: r.targetPath } : {}),
        ...(r.optional ? { optional: true } : {}),
      })),
    },
  };
}

/** The base set: namespaces, sources, then the releases, stamped. */
export async function createBaseSet(
  client: KubeClient,
  oracle: Oracle,
  releases: number,
): Promise<ReleaseSpec[]> {
  for (let n = 0; n < NAMESPACES; n++)
    await client.create(collectionPath(Namespaces), { metadata: { name: namespaceOf(n) } });
  const specs = Array.from({ length: releases }, (_, g) => baseRelease(g, releases));
  const linkData: Record<string, Record<string, string>> = {};
  await parallel(specs, 16, async (s) => {
    const cm = {
      'values.yaml': values(s.name, 0),
      'alt.yaml': values(`${s.name}-alt`, 0),
      'unused.txt': 'u0',
    };
    await createSource(client, oracle, 'ConfigMap', s.namespace, s.configMap, cm);
    await createSource(client, oracle, 'Secret', s.namespace, s.secret as string, {
      'values.yaml': b64(`password: p0-${s.name}\n`),
    });
    for (const id of s.links) {
      const name = id.split('/')[2] as string;
      linkData[id] = { 'settings.conf': 'gen=0' };
      await createSource(client, oracle, 'ConfigMap', s.namespace, name, linkData[id], {
        [Annotations.linkReleases]: s.name,
      });
    }
  });
  await parallel(specs, 16, async (s) => {
    const stamp = (r: ValuesReference) =>
      r.kind === 'ConfigMap' && r.name === s.configMap
        ? Buffer.from(r.valuesKey === 'alt.yaml' ? values(`${s.name}-alt`, 0) : values(s.name, 0))
        : r.kind === 'Secret'
          ? Buffer.from(`password: p0-${s.name}\n`)
          : null;
    const res = await client.create(
      collectionPath(HelmReleases, s.namespace),
      releaseObject(s, stamp, linkData),
    );
    const rv = Number(isObject(res) && isObject(res.metadata) ? str(res.metadata.resourceVersion) : NaN);
    oracle.created({
      key: `${s.namespace}/${s.name}`,
      namespace: s.namespace,
      name: s.name,
      refs: s.refs,
      links: s.links,
      createdRv: rv,
      createdAt: Date.now(),
      stamped: true,
    });
  });
  return specs;
}

export const sourcePath = (kind: 'ConfigMap' | 'Secret', namespace: string, name: string) =>
  objectPath(kind === 'ConfigMap' ? ConfigMaps : Secrets, namespace, name);
