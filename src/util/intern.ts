// One copy of each namespace name: every cached object carries its namespace, and a string parsed from JSON
// is a fresh copy each time (30,000 copies at 10,000 releases: ~1 MB). Only memory depends on it: the pool
// starts over when it grows past MAX_POOLED (namespaces come and go), and an object keeps the copy it got.
const MAX_POOLED = 20_000;
const namespaces = new Map<string, string>();

/** The pooled copy of a namespace name. */
export function internNamespace(namespace: string): string {
  const pooled = namespaces.get(namespace);
  if (pooled !== undefined) return pooled;
  if (namespaces.size >= MAX_POOLED) namespaces.clear();
  namespaces.set(namespace, namespace);
  return namespace;
}

/**
 * "a/b/c" as one flat string. A template literal builds a chain of concatenation cells that a long-lived map
 * key keeps (~32 bytes each, 118,000 of them at 10,000 releases); join() writes the characters once.
 */
export function flatKey(...parts: string[]): string {
  return parts.join('/');
}
