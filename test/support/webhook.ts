// Helpers shared by the webhook's tests and benchmark: an in-memory ValuesLookup, review builders, and a
// mounted-Secret layout writer for the certificate watcher.
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { ValuesReference } from '../../src/flux/helmrelease.ts';
import type { Json, JsonObject } from '../../src/util/narrow.ts';
import { keyBytesOf, valuesDigestOfBytes } from '../../src/values/digest.ts';
import type { ValuesLookup } from '../../src/values/lookup.ts';
import { TEST_DIGEST_KEYS } from './digest-key.ts';

type Data = { data?: Record<string, string>; binaryData?: Record<string, string> };

/** A ValuesLookup over a fixed map of "Kind/namespace/name" to object data, digested under the test key. */
export function memoryLookup(objects: Record<string, Data> = {}, synced = true): ValuesLookup {
  return {
    hasSynced: () => synced,
    async valuesDigest(namespace: string, refs: readonly ValuesReference[]): Promise<string> {
      return valuesDigestOfBytes(TEST_DIGEST_KEYS.current, namespace, refs, (ref) =>
        keyBytesOf(ref.kind, objects[`${ref.kind}/${namespace}/${ref.name}`], ref.valuesKey),
      );
    },
  };
}

export function helmRelease(name: string, valuesFrom: Json[], metadata: JsonObject = {}): JsonObject {
  return {
    apiVersion: 'helm.toolkit.fluxcd.io/v2',
    kind: 'HelmRelease',
    metadata: { name, ...metadata },
    spec: {
      interval: '5m',
      chart: { spec: { chart: 'c', sourceRef: { kind: 'HelmRepository', name: 'r' } } },
      valuesFrom,
    },
  };
}

export function admissionReview(
  uid: string,
  object: JsonObject,
  o: { operation?: string; namespace?: string; oldObject?: JsonObject } = {},
): JsonObject {
  const request: JsonObject = {
    uid,
    kind: { group: 'helm.toolkit.fluxcd.io', version: 'v2', kind: 'HelmRelease' },
    resource: { group: 'helm.toolkit.fluxcd.io', version: 'v2', resource: 'helmreleases' },
    operation: o.operation ?? 'CREATE',
    namespace: o.namespace ?? 'ns',
    name: String((object.metadata as JsonObject).name),
    userInfo: { username: 'alice', groups: ['system:authenticated'] },
    object,
    dryRun: false,
  };
  if (o.oldObject) request.oldObject = o.oldObject;
  return { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request };
}

/**
 * Writes a key pair the way kubelet updates a mounted Secret: files in a fresh timestamped directory, then
 * the "..data" symlink swapped atomically by a rename; tls.crt and tls.key point through "..data".
 */
export function writeAtomicWriterLayout(dir: string, files: Record<string, string>): void {
  mkdirSync(dir, { recursive: true });
  // mkdtemp makes each generation's directory unique (no counter to keep between calls).
  const ts = basename(mkdtempSync(join(dir, `..${Date.now()}_`)));
  for (const [name, content] of Object.entries(files)) writeFileSync(join(dir, ts, name), content);
  const tmp = join(dir, '..data_tmp');
  rmSync(tmp, { force: true });
  symlinkSync(ts, tmp);
  renameSync(tmp, join(dir, '..data'));
  for (const name of Object.keys(files)) {
    const link = join(dir, name);
    if (!existsSync(link)) symlinkSync(join('..data', name), link);
  }
}
