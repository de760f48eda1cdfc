// HelmRelease objects and status blocks in the exact shapes helm-controller v1.x writes (read from its
// internal/reconcile and api/v2 sources), for the retry classifier's table tests and for integration
// tests that play Flux through the /status subresource.
import { Flux } from '../../src/names.ts';

export const CHART = 'podinfo';
export const CHART_VERSION = '6.5.0';
export const CONFIG_DIGEST = 'sha256:9c3f6b8e1d2a4c5b7e8f0a1b2c3d4e5f60718293a4b5c6d7e8f9a0b1c2d3e4f5';

/** Helm errors, as they end the condition message. */
export const HelmErrors = {
  legacyTimeout: 'context deadline exceeded',
  waitTimeout: 'timed out waiting for the condition',
  kstatusTimeout: "timeout waiting for: [Deployment/apps/podinfo status: 'InProgress']",
  rateLimiterTimeout:
    'client rate limiter Wait returned an error: rate: Wait(n=1) would exceed context deadline',
  ioTimeout:
    'Get "https://10.96.0.1:443/api/v1/namespaces/apps/secrets": dial tcp 10.96.0.1:443: i/o timeout',
  tlsTimeout:
    'Get "https://ghcr.io/v2/stefanprodan/charts/podinfo/manifests/6.5.0": net/http: TLS handshake timeout',
  connectionReset: 'read tcp 10.0.0.5:48812->10.96.0.1:443: read: connection reset by peer',
  invalidSpec:
    'cannot patch "podinfo" with kind Deployment: Deployment.apps "podinfo" is invalid: spec.template.spec.containers[0].image: Required value',
  schema:
    "values don't meet the specifications of the schema(s) in the following chart(s):\npodinfo:\n- replicaCount: Invalid type. Expected: integer, given: string",
  template:
    'YAML parse error on podinfo/templates/deployment.yaml: error converting YAML to JSON: yaml: line 12: mapping values are not allowed in this context',
} as const;

export interface ShapeOptions {
  namespace: string;
  name: string;
  generation: number;
  /** RFC3339 time of the transitions. */
  at: string;
  revision?: string;
  configDigest?: string;
  /** status.lastHandledReconcileAt/ResetAt: the request tokens Flux has handled. */
  handled?: string;
}

type Cond = {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  observedGeneration: number;
  lastTransitionTime: string;
};

const cond = (
  o: ShapeOptions,
  type: string,
  status: Cond['status'],
  reason: string,
  message: string,
): Cond => ({
  type,
  status,
  reason,
  message,
  observedGeneration: o.generation,
  lastTransitionTime: o.at,
});

function base(o: ShapeOptions, extra: Record<string, unknown>): Record<string, unknown> {
  return {
    observedGeneration: o.generation,
    lastAttemptedGeneration: o.generation,
    lastAttemptedRevision: o.revision ?? CHART_VERSION,
    lastAttemptedConfigDigest: o.configDigest ?? CONFIG_DIGEST,
    storageNamespace: o.namespace,
    ...(o.handled ? { lastHandledReconcileAt: o.handled, lastHandledResetAt: o.handled } : {}),
    ...extra,
  };
}

const failureMessage = (o: ShapeOptions, action: 'install' | 'upgrade', helmError: string) =>
  `Helm ${action} failed for release ${o.namespace}/${o.name} with chart ${CHART}@${o.revision ?? CHART_VERSION}: ${helmError}`;

/**
 * Defaults (retries: 0, no remediation of the last failure): the action failed, Ready mirrors Released,
 * and Flux stalled with RetriesExceeded — it will not try again by itself.
 */
export function stalledFailure(o: ShapeOptions, action: 'install' | 'upgrade', helmError: string) {
  const reason = action === 'install' ? 'InstallFailed' : 'UpgradeFailed';
  const msg = failureMessage(o, action, helmError);
  return base(o, {
    lastAttemptedReleaseAction: action,
    failures: 1,
    [`${action}Failures`]: 1,
    conditions: [
      cond(o, 'Stalled', 'True', 'RetriesExceeded', `Failed to ${action} after 1 attempt(s)`),
      cond(o, 'Ready', 'False', reason, msg),
      cond(o, 'Released', 'False', reason, msg),
    ],
  });
}

/** upgrade.remediation.retries > 0, spent: rolled back, Ready carries RollbackSucceeded, Released the failure. */
export function rolledBackFailure(o: ShapeOptions, helmError: string) {
  const rollback = `Helm rollback to previous release ${o.namespace}/${o.name}.v1 with chart ${CHART}@6.4.0 succeeded`;
  return base(o, {
    lastAttemptedReleaseAction: 'upgrade',
    failures: 3,
    upgradeFailures: 3,
    conditions: [
      cond(o, 'Stalled', 'True', 'RetriesExceeded', 'Failed to upgrade after 3 attempt(s)'),
      cond(o, 'Ready', 'False', 'RollbackSucceeded', rollback),
      cond(o, 'Released', 'False', 'UpgradeFailed', failureMessage(o, 'upgrade', helmError)),
      cond(o, 'Remediated', 'True', 'RollbackSucceeded', rollback),
    ],
  });
}

/** install.remediation.retries > 0, spent: uninstalled, Ready carries UninstallSucceeded. */
export function uninstalledFailure(o: ShapeOptions, helmError: string) {
  const uninstall = `Helm uninstall remediation for release ${o.namespace}/${o.name}.v1 with chart ${CHART}@${CHART_VERSION} succeeded`;
  return base(o, {
    lastAttemptedReleaseAction: 'install',
    failures: 2,
    installFailures: 2,
    conditions: [
      cond(o, 'Stalled', 'True', 'RetriesExceeded', 'Failed to install after 2 attempt(s)'),
      cond(o, 'Ready', 'False', 'UninstallSucceeded', uninstall),
      cond(o, 'Released', 'False', 'InstallFailed', failureMessage(o, 'install', helmError)),
      cond(o, 'Remediated', 'True', 'UninstallSucceeded', uninstall),
    ],
  });
}

/** Remediation retries left: Flux requeues and tries again by itself (Reconciling=True ProgressingWithRetry). */
export function retryingFailure(o: ShapeOptions, helmError: string) {
  const msg = failureMessage(o, 'upgrade', helmError);
  return base(o, {
    lastAttemptedReleaseAction: 'upgrade',
    failures: 1,
    upgradeFailures: 1,
    conditions: [
      cond(o, 'Reconciling', 'True', 'ProgressingWithRetry', msg),
      cond(o, 'Ready', 'False', 'UpgradeFailed', msg),
      cond(o, 'Released', 'False', 'UpgradeFailed', msg),
    ],
  });
}

/**
 * RetryOnFailure (v1.4.3+; or the DefaultToRetryOnFailure gate): the attempt failed, Flux requeues after the
 * retry interval by itself, without a limit and without Stalled.
 */
export function retryOnFailureFailure(
  o: ShapeOptions,
  action: 'install' | 'upgrade',
  helmError: string,
  failures = 1,
) {
  const reason = action === 'install' ? 'InstallFailed' : 'UpgradeFailed';
  const msg = failureMessage(o, action, helmError);
  return base(o, {
    lastAttemptedReleaseAction: action,
    failures,
    [`${action}Failures`]: failures,
    conditions: [
      cond(o, 'Reconciling', 'True', 'ProgressingWithRetry', 'retrying after 5m0s'),
      cond(o, 'Ready', 'False', reason, msg),
      cond(o, 'Released', 'False', reason, msg),
    ],
  });
}

/** RetryOnFailure as v1.4.0-v1.4.2 reported it: no Reconciling, Ready=False RetryAfterInterval. */
export function retryAfterIntervalFailure(o: ShapeOptions, helmError: string) {
  const msg = failureMessage(o, 'upgrade', helmError);
  return base(o, {
    lastAttemptedReleaseAction: 'upgrade',
    failures: 1,
    upgradeFailures: 1,
    conditions: [
      cond(o, 'Ready', 'False', 'RetryAfterInterval', 'Will retry after 5m0s'),
      cond(o, 'Released', 'False', 'UpgradeFailed', msg),
    ],
  });
}

/** An action is running (patched before Helm starts). */
export function inProgress(o: ShapeOptions) {
  const msg = "Running 'upgrade' action with timeout of 5m0s";
  return base(o, {
    conditions: [
      cond(o, 'Reconciling', 'True', 'Progressing', msg),
      cond(o, 'Ready', 'Unknown', 'Progressing', msg),
      cond(o, 'Released', 'False', 'UpgradeFailed', failureMessage(o, 'upgrade', HelmErrors.legacyTimeout)),
    ],
  });
}

/** A failure before any Helm action: the chart could not be loaded (Flux retries this itself). */
export function artifactFailure(o: ShapeOptions) {
  return base(o, {
    conditions: [
      cond(
        o,
        'Ready',
        'False',
        'ArtifactFailed',
        'Could not load chart: GET http://source-controller.flux-system.svc/helmchart/apps/podinfo.tgz: context deadline exceeded',
      ),
    ],
  });
}

/** Success. */
export function released(o: ShapeOptions, action: 'install' | 'upgrade' = 'upgrade') {
  const msg =
    action === 'install'
      ? `Helm install succeeded for release ${o.namespace}/${o.name}.v1 with chart ${CHART}@${o.revision ?? CHART_VERSION}`
      : `Helm upgrade succeeded for release ${o.namespace}/${o.name}.v2 with chart ${CHART}@${o.revision ?? CHART_VERSION}`;
  const reason = action === 'install' ? 'InstallSucceeded' : 'UpgradeSucceeded';
  return base(o, {
    lastAttemptedReleaseAction: action,
    failures: 0,
    conditions: [cond(o, 'Ready', 'True', reason, msg), cond(o, 'Released', 'True', reason, msg)],
  });
}

/** A HelmRelease the v2 CRD accepts. */
export function helmReleaseObject(
  namespace: string,
  name: string,
  opts: {
    annotations?: Record<string, string>;
    suspend?: boolean;
    values?: Record<string, unknown>;
    /** spec.install / spec.upgrade (strategy, remediation). */
    install?: Record<string, unknown>;
    upgrade?: Record<string, unknown>;
  } = {},
) {
  return {
    apiVersion: `${Flux.group}/${Flux.version}`,
    kind: Flux.kind,
    metadata: { namespace, name, ...(opts.annotations ? { annotations: opts.annotations } : {}) },
    spec: {
      interval: '5m',
      chart: {
        spec: {
          chart: CHART,
          version: CHART_VERSION,
          sourceRef: { kind: 'HelmRepository', name: 'podinfo' },
        },
      },
      ...(opts.suspend ? { suspend: true } : {}),
      ...(opts.values ? { values: opts.values } : {}),
      ...(opts.install ? { install: opts.install } : {}),
      ...(opts.upgrade ? { upgrade: opts.upgrade } : {}),
    },
  };
}
