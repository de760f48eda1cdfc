// The namespaces the operator works in, defined once from --watch-namespace and --exclude-namespaces: the
// webhook stamps, the trigger reconciler triggers and the retry reconciler retries exactly the releases in
// scope, and the caches watch what the scope needs. The default exclusions mirror the shipped webhook
// configuration's namespaceSelector (kube-system and the operator's own namespace; a test keeps them equal).
import type { FlagValues } from './config.ts';

export interface NamespaceScope {
  /** True for a namespace whose releases are stamped, triggered and retried. */
  inScope(namespace: string): boolean;
  /**
   * The namespaces to watch, one informer each (a namespaced install has RBAC there only); empty: watch
   * cluster-wide and filter with inScope.
   */
  watched: readonly string[];
  /** In words, for people (explain): "namespaces a, b" or "all namespaces except kube-system, ...". */
  description: string;
}

export function namespaceScope(
  c: Pick<FlagValues, 'watch-namespace' | 'exclude-namespaces'>,
): NamespaceScope {
  const excluded = new Set(c['exclude-namespaces']);
  const watched = [...new Set(c['watch-namespace'])].filter((ns) => !excluded.has(ns));
  const listed = new Set(watched);
  return {
    inScope: (ns) => !excluded.has(ns) && (listed.size === 0 || listed.has(ns)),
    watched,
    description:
      watched.length > 0
        ? `namespace${watched.length > 1 ? 's' : ''} ${watched.join(', ')}`
        : excluded.size > 0
          ? `all namespaces except ${[...excluded].join(', ')}`
          : 'all namespaces',
  };
}
