// Which ConfigMaps and Secrets link to a release through their annotations, read the way the trigger
// controller reads them (metadata-only LISTs, the caches' own transform, linkTargets, the TriggerIndex), but
// with the user's rights: where a cluster-wide LIST is refused, the release's own namespace is tried, and a
// kind that cannot be listed at all is reported as unknown.
import { TriggerIndex } from '../../../controller/triggers/index.ts';
import type { ValuesSourceKind } from '../../../src/flux/helmrelease.ts';
import { linkAnnotationKeys, sourceMetaTransform } from '../../../src/kube/caches.ts';
import { ACCEPT_METADATA_LIST, type KubeClient } from '../../../src/kube/client.ts';
import { collectionPath } from '../../../src/kube/resources.ts';
import { linkTargets } from '../../../src/triggers/links.ts';
import { isObject, type JsonObject, str } from '../../../src/util/narrow.ts';
import { type LinkIndex, listObjects, sourceResource } from './reads.ts';

const KINDS: readonly ValuesSourceKind[] = ['ConfigMap', 'Secret'];

/**
 * Lists each kind in the namespaces of `scope` (empty: all namespaces) and indexes the links; when a
 * cluster-wide list is refused, in each of `fallbackNamespaces` (the namespaces of the releases explained).
 */
export async function readLinks(
  client: KubeClient,
  o: { scope: readonly string[]; fallbackNamespaces: readonly string[]; compat: boolean },
): Promise<LinkIndex> {
  const index = new TriggerIndex();
  const transform = sourceMetaTransform(linkAnnotationKeys(o.compat));
  const unknown: LinkIndex['unknown'] = [];
  for (const kind of KINDS) {
    const list = (ns: string | undefined) =>
      listObjects(client, collectionPath(sourceResource(kind), ns), {}, ACCEPT_METADATA_LIST);
    const items: JsonObject[] = [];
    const everywhere = o.scope.length === 0 ? await list(undefined) : undefined;
    if (everywhere?.state === 'found') items.push(...everywhere.value);
    else if (o.scope.length > 0) {
      for (const ns of o.scope) {
        const r = await list(ns);
        if (r.state === 'found') items.push(...r.value);
        else unknown.push({ kind, why: `cannot list ${kind}s in ${ns}`, from: 'any namespace' });
      }
    } else {
      const refused: string[] = [];
      for (const ns of o.fallbackNamespaces) {
        const r = await list(ns);
        if (r.state === 'found') items.push(...r.value);
        else refused.push(ns);
      }
      unknown.push(
        refused.length > 0
          ? { kind, why: `cannot list ${kind}s in ${refused.join(', ')}`, from: 'any namespace' }
          : { kind, why: `cannot list ${kind}s in all namespaces`, from: 'other namespaces' },
      );
    }
    for (const raw of items) {
      const meta = isObject(raw.metadata) ? raw.metadata : {};
      const namespace = str(meta.namespace) ?? '';
      const name = str(meta.name) ?? '';
      const { links } = transform(raw);
      index.setLinks(kind, namespace, name, linkTargets(namespace, links, o.compat));
    }
  }
  return { linkedSources: (ns, name) => index.linkedSources(ns, name), unknown };
}
