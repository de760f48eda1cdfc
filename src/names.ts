// Every label and annotation name the project reads or writes, in one place.
// The README's reference tables are checked against this module by test/unit/readme.test.ts.

export const PREFIX = 'helmrelease-autopilot.dev';

/** Labels and annotations of ours, with what they mean (the README table is checked against these). */
export const Labels = {
  /** "true" on every HelmRelease that consumes valuesFrom data; stamped by the webhook, backfilled by the reconciler. */
  managed: `${PREFIX}/managed`,
} as const;

export const Annotations = {
  // --- on HelmReleases, written by the operator ---
  /** hmac-sha256:v2:<key id>:<hex>, keyed, over the valuesFrom data the release consumes (src/values/digest.ts). */
  valuesDigest: `${PREFIX}/values-digest`,
  /** Retry state of the current failure episode: attempts made so far. */
  retryAttempts: `${PREFIX}/retry-attempts`,
  /** Retry state: RFC3339 time of the last retry this operator requested. */
  retryLastAttempt: `${PREFIX}/retry-last-attempt`,
  /** Retry state: fingerprint of the failure episode the counters belong to. */
  retryEpisode: `${PREFIX}/retry-episode`,
  /** Set when the retry budget of the current episode is spent: RFC3339 time it was spent. */
  retryExhausted: `${PREFIX}/retry-exhausted`,
  /** The last retry-reset-at token handled (a token restarts the retry budget once). */
  retryResetHandled: `${PREFIX}/retry-reset-handled`,

  // --- on HelmReleases, written by users ---
  /** "true": the operator leaves this release alone (no labels, no digest, no triggers, no retries). */
  ignore: `${PREFIX}/ignore`,
  /** "true": every trigger also sets reconcile.fluxcd.io/forceAt (upgrade even when nothing changed). */
  force: `${PREFIX}/force`,
  /** "false": never retry this release. */
  retry: `${PREFIX}/retry`,
  /** Any new value (e.g. the current time) restarts the retry budget once: Flux's and ours. */
  retryResetAt: `${PREFIX}/retry-reset-at`,
  /** Extra transient-failure patterns for this release: regular expressions separated by newlines. */
  retryPatterns: `${PREFIX}/retry-patterns`,
  /** Comma-separated namespaces (or "*") whose ConfigMaps/Secrets may trigger this release through an explicit link. */
  allowSourceNamespaces: `${PREFIX}/allow-source-namespaces`,

  // --- on ConfigMaps and Secrets, written by users (explicit links) ---
  /** Comma-separated HelmRelease names to trigger on any data change of this object. */
  linkReleases: `${PREFIX}/helmreleases`,
  /** Namespace of the linked releases (default: the object's own namespace). */
  linkNamespace: `${PREFIX}/helmreleases-namespace`,

  // --- on HelmReleases, written by the operator (explicit links) ---
  /** JSON object: linked source ("ConfigMap/ns/name") -> keyed digest of its data when this release was last triggered for it. */
  linkDigests: `${PREFIX}/link-digests`,
} as const;

/** Explicit-link annotation keys of the Go helmrelease-trigger-operator, honoured behind --compat-trigger-operator. */
export const CompatLinkAnnotations = [
  { releases: 'nebius.ai/helmreleases-name', namespace: 'nebius.ai/helmreleases-namespace' },
  { releases: 'uburro.github.com/helmreleases-name', namespace: 'uburro.github.com/helmreleases-namespace' },
] as const;

/** Annotations and labels that Flux's helm-controller reads. */
export const Flux = {
  group: 'helm.toolkit.fluxcd.io',
  version: 'v2',
  kind: 'HelmRelease',
  plural: 'helmreleases',
  /** A new value starts a reconcile. */
  requestedAt: 'reconcile.fluxcd.io/requestedAt',
  /** Forces a one-off install/upgrade; honoured only when equal to requestedAt in the same write. */
  forceAt: 'reconcile.fluxcd.io/forceAt',
  /** Clears the failure counters; honoured only when equal to requestedAt in the same write. */
  resetAt: 'reconcile.fluxcd.io/resetAt',
  /** Label that lets helm-controller >= v1.4 watch a ConfigMap/Secret itself. */
  watchLabel: 'reconcile.fluxcd.io/watch',
  /** Label Flux shards by (--watch-label-selector 'sharding.fluxcd.io/key in (shard1)'). */
  shardKey: 'sharding.fluxcd.io/key',
} as const;

/** Default valuesKey of a valuesFrom entry. */
export const DEFAULT_VALUES_KEY = 'values.yaml';

/** Namespace of the linked releases when helmrelease-trigger-operator's namespace annotation is absent (its default). */
export const COMPAT_DEFAULT_RELEASE_NAMESPACE = 'flux-system';
