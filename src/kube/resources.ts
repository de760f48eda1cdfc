// REST paths of the resources this project touches.
import { Flux } from '../names.ts';

export interface Resource {
  group: string;
  version: string;
  plural: string;
  kind: string;
}

export const ConfigMaps: Resource = { group: '', version: 'v1', plural: 'configmaps', kind: 'ConfigMap' };
export const Secrets: Resource = { group: '', version: 'v1', plural: 'secrets', kind: 'Secret' };
export const Namespaces: Resource = { group: '', version: 'v1', plural: 'namespaces', kind: 'Namespace' };
export const Events: Resource = { group: 'events.k8s.io', version: 'v1', plural: 'events', kind: 'Event' };
export const Leases: Resource = {
  group: 'coordination.k8s.io',
  version: 'v1',
  plural: 'leases',
  kind: 'Lease',
};
export const HelmReleases: Resource = {
  group: Flux.group,
  version: Flux.version,
  plural: Flux.plural,
  kind: Flux.kind,
};
export const MutatingWebhookConfigurations: Resource = {
  group: 'admissionregistration.k8s.io',
  version: 'v1',
  plural: 'mutatingwebhookconfigurations',
  kind: 'MutatingWebhookConfiguration',
};

/** /api/v1/[namespaces/ns/]plural or /apis/group/version/[namespaces/ns/]plural */
export function collectionPath(r: Resource, namespace?: string): string {
  const root = r.group === '' ? `/api/${r.version}` : `/apis/${r.group}/${r.version}`;
  return namespace
    ? `${root}/namespaces/${encodeURIComponent(namespace)}/${r.plural}`
    : `${root}/${r.plural}`;
}

export function objectPath(r: Resource, namespace: string | undefined, name: string): string {
  return `${collectionPath(r, namespace)}/${encodeURIComponent(name)}`;
}
