// explain: why a HelmRelease was (or was not) triggered or retried, and what the operator will do next.
// Nothing here decides: the trigger input is gathered by the reconciler's own gatherer (src/triggers/gather.ts)
// and judged by decideTrigger; the retry input is retryInput and judged by decideRetry; scope is
// namespaceScope. This module only reads (with the user's rights) and reports what those functions return,
// reason strings included, so explain cannot disagree with the operator.
import { type Config, fluxWatchMatcher } from '../../../src/config.ts';
import { type Condition, type HelmRelease, parseHelmRelease } from '../../../src/flux/helmrelease.ts';
import type { KubeClient } from '../../../src/kube/client.ts';
import { collectionPath, Events, HelmReleases, objectPath } from '../../../src/kube/resources.ts';
import { Annotations, Flux, Labels, PREFIX } from '../../../src/names.ts';
import { type Action, decideRetry, retryInput } from '../../../src/retry/decide.ts';
import { namespaceScope } from '../../../src/scope.ts';
import {
  decideTrigger,
  parseLinkDigests,
  recordedLinks,
  skipBeforeLookup,
  type TriggerDecision,
  type TriggerInput,
} from '../../../src/triggers/decide.ts';
import { gatherTriggerInput } from '../../../src/triggers/gather.ts';
import { type SourceId, sourceId } from '../../../src/triggers/links.ts';
import { errorMessage } from '../../../src/util/errors.ts';
import { array, isObject, type JsonObject, num, str } from '../../../src/util/narrow.ts';
import { type DigestKeys, keyBytesOf } from '../../../src/values/digest.ts';
import {
  describeSource,
  getObject,
  type LinkIndex,
  listObjects,
  type Read,
  type SourceReads,
  snapshotReads,
} from './reads.ts';
import type { OperatorSettings } from './settings.ts';

/** due: the operator will trigger; held: it skips the release for now; not-needed: nothing changed. */
export type TriggerVerdict = 'due' | 'held' | 'not-needed' | 'out-of-scope' | 'unknown';
/** pending: a retry is scheduled; due: it is sent on the next evaluation; exhausted: the budget is spent. */
export type RetryStatus = 'pending' | 'due' | 'exhausted' | 'none' | 'off' | 'out-of-scope';

export interface SourceReport {
  kind: string;
  name: string;
  valuesKey: string;
  optional: boolean;
  /** null: could not be read (see note). */
  present: boolean | null;
  keyPresent: boolean | null;
  /** Carries Flux's own watch label (helm-controller >= v1.4 reconciles on its changes itself). */
  watchedByFlux: boolean | null;
  note?: string;
}

export interface LinkReport {
  source: SourceId;
  /** linked, refused, unlinked, gone (decideTrigger's input), or unknown when not evaluated. */
  state: string;
  recordedDigest?: string;
  digestNow?: string;
}

export interface Explanation {
  release: { namespace: string; name: string; generation: number; suspended: boolean; managed: boolean };
  operator: { source: string; note?: string; inScope: boolean; scope: string; settings: string[] };
  sources: SourceReport[];
  digest: { stamped?: string; now?: string; cannotCompute?: string };
  trigger: {
    verdict: TriggerVerdict;
    /** decideTrigger's action (trigger, backfill, skip) and reason, as returned. */
    action?: string;
    reason: string;
    /** Annotations the trigger would write (requestedAt and, where due, forceAt/resetAt). */
    writes?: string[];
    changedLinks?: SourceId[];
    /** What the verdict assumes because something could not be read. */
    assumes?: string[];
  };
  links: LinkReport[];
  refusedLinks: SourceId[];
  retry: {
    status: RetryStatus;
    verdict?: string;
    reason: string;
    action?: Action['kind'];
    episode?: string;
    attempts?: number;
    maxAttempts: number;
    nextRetryAt?: string;
    exhaustedAt?: string;
    problems?: string[];
  };
  flux: {
    conditions: Condition[];
    requests: Record<string, string | undefined>;
    handled: Record<string, string | undefined>;
    history: { version: number; status: string; chartVersion: string }[];
    failures: { failures: number; installFailures: number; upgradeFailures: number };
  };
  events: { time: string; type: string; reason: string; note: string; controller: string }[];
  /** What explain could not read, and what that means. */
  notes: string[];
}

export interface ExplainContext {
  client: KubeClient;
  settings: OperatorSettings;
  sources: SourceReads;
  links: LinkIndex;
  /** The cluster's digest keys as the user could read them, and where they live. */
  keys: { where: string; read: Read<DigestKeys> };
  now: () => number;
  /** How many of our recent Events to show (0: do not read Events). */
  events: number;
}

/** Reads HelmRelease ns/name and explains it; throws when the release cannot be read. */
export async function explainByName(
  ctx: ExplainContext,
  namespace: string,
  name: string,
): Promise<Explanation> {
  const read = await getObject(ctx.client, objectPath(HelmReleases, namespace, name));
  if (read.state === 'missing') throw new Error(`HelmRelease ${namespace}/${name} not found`);
  if (read.state === 'forbidden')
    throw new Error(`no access to HelmRelease ${namespace}/${name}: ${read.message}`);
  if (read.state === 'failed')
    throw new Error(`could not read HelmRelease ${namespace}/${name}: ${read.message}`);
  return explainRelease(ctx, read.value);
}

export async function explainRelease(ctx: ExplainContext, raw: JsonObject): Promise<Explanation> {
  const parsed = parseHelmRelease(raw);
  if (!parsed.ok) throw new Error(`the HelmRelease does not parse: ${parsed.error}`);
  const hr = parsed.value;
  const { config } = ctx.settings;
  const notes: string[] = ctx.settings.note ? [ctx.settings.note] : [];
  const inScope = namespaceScope(config).inScope(hr.metadata.namespace);
  const gathered = inScope ? await gatherTrigger(ctx, hr) : undefined;
  const [sources, events] = await Promise.all([
    reportSources(ctx, hr, notes),
    ctx.events > 0 ? recentEvents(ctx, hr, notes) : [],
  ]);
  notes.push(...ctx.links.unknown.map((u) => `${u.why}: links from ${u.kind}s in ${u.from} are unknown`));
  return {
    release: {
      namespace: hr.metadata.namespace,
      name: hr.metadata.name,
      generation: hr.metadata.generation,
      suspended: hr.suspend,
      managed: hr.metadata.labels[Labels.managed] === 'true',
    },
    operator: {
      source: ctx.settings.source,
      ...(ctx.settings.note ? { note: ctx.settings.note } : {}),
      inScope,
      scope: namespaceScope(config).description,
      settings: settingsSummary(config),
    },
    sources,
    digest: digestReport(hr, gathered),
    trigger: triggerReport(ctx, inScope, gathered),
    ...linksReport(ctx, hr, gathered),
    retry: retryReport(ctx, hr, inScope),
    flux: fluxReport(hr, raw),
    events,
    notes,
  };
}

type Gathered = { early: string } | { input: TriggerInput; decision: TriggerDecision } | { cannot: string };

/** The reconciler's sequence: the skips that need no lookup, else gather and decide. */
async function gatherTrigger(ctx: ExplainContext, hr: HelmRelease): Promise<Gathered> {
  const early = skipBeforeLookup(hr);
  if (early) return { early };
  try {
    const reads = await snapshotReads(
      hr,
      ctx.sources,
      ctx.links,
      recordedLinks(hr),
      ctx.keys,
      fluxWatchMatcher(ctx.settings.config),
    );
    const input = await gatherTriggerInput(hr, reads, {
      noCrossNamespaceLinks: ctx.settings.config['no-cross-namespace-links'],
    });
    const token = new Date(ctx.now()).toISOString();
    const decision = decideTrigger(input, {
      force: ctx.settings.config.force,
      token,
      ignoreReleaseForce: ctx.settings.config['no-release-force'] === true,
      nowMs: ctx.now(),
    });
    return { input, decision };
  } catch (err) {
    return { cannot: errorMessage(err) };
  }
}

function digestReport(hr: HelmRelease, g: Gathered | undefined): Explanation['digest'] {
  const stamped = hr.metadata.annotations[Annotations.valuesDigest];
  const out: Explanation['digest'] = stamped ? { stamped } : {};
  if (hr.valuesFrom.length === 0) return out;
  if (g && 'input' in g && g.input.valuesDigest) return { ...out, now: g.input.valuesDigest };
  if (g && 'cannot' in g) return { ...out, cannotCompute: g.cannot };
  return out;
}

/** What explain assumes of a release without our stamp when the installation time is unknown (src/kube/created.ts). */
export const CREATED_UNSTAMPED_ASSUMPTION =
  "it predates the operator's installation (the digest key Secret, whose creation tells, could not be read; one created later without our stamp, the webhook bypassed, is triggered once instead: created-unstamped)";

function triggerReport(
  ctx: ExplainContext,
  inScope: boolean,
  g: Gathered | undefined,
): Explanation['trigger'] {
  const assumes = ctx.links.unknown.map(
    (u) =>
      `no ${u.kind}${u.from === 'other namespaces' ? ' in another namespace' : ''} links to it (${u.why})`,
  );
  const withAssumptions = assumes.length > 0 ? { assumes } : {};
  if (!inScope || !g)
    return {
      verdict: 'out-of-scope',
      reason: `the operator acts in ${namespaceScope(ctx.settings.config).description} only`,
    };
  if ('early' in g) return { verdict: 'held', action: 'skip', reason: g.early };
  if ('cannot' in g) return { verdict: 'unknown', reason: `cannot compute: ${g.cannot}` };
  const a = g.decision.action;
  if (a.action === 'trigger') {
    return {
      verdict: 'due',
      action: a.action,
      reason: a.reason,
      writes: Object.keys(a.patch.metadata.annotations).filter((k) => k.startsWith('reconcile.fluxcd.io/')),
      ...(a.changedLinks.length > 0 ? { changedLinks: a.changedLinks } : {}),
      ...withAssumptions,
    };
  }
  if (a.action === 'backfill') {
    // explain cannot know what the operator saw: a release it saw created unstamped is triggered once.
    const installKnown = ctx.keys.read.state === 'found' && ctx.keys.read.value.since !== undefined;
    const unstamped =
      !installKnown &&
      a.reason === 'stamp' &&
      g.input.valuesDigest !== undefined &&
      a.patch.metadata.labels?.[Labels.managed] === 'true';
    const all = unstamped ? [...assumes, CREATED_UNSTAMPED_ASSUMPTION] : assumes;
    return {
      verdict: 'not-needed',
      action: a.action,
      reason: a.reason,
      ...(all.length > 0 ? { assumes: all } : {}),
    };
  }
  return {
    verdict: a.reason === 'unchanged' ? 'not-needed' : 'held',
    action: a.action,
    reason: a.reason,
    ...withAssumptions,
  };
}

function linksReport(
  ctx: ExplainContext,
  hr: HelmRelease,
  g: Gathered | undefined,
): Pick<Explanation, 'links' | 'refusedLinks'> {
  const recorded = parseLinkDigests(hr.metadata.annotations[Annotations.linkDigests]);
  const withRecorded = (source: SourceId) => (recorded[source] ? { recordedDigest: recorded[source] } : {});
  if (g && 'input' in g) {
    return {
      links: Object.entries(g.input.links)
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([source, s]) => ({
          source,
          state: s.state,
          ...withRecorded(source),
          ...(s.state === 'linked' ? { digestNow: s.digest } : {}),
        })),
      refusedLinks: g.decision.refused,
    };
  }
  // Not evaluated (skipped before the lookup, out of scope, or unreadable): what links and what is recorded.
  const { namespace, name } = hr.metadata;
  const ids = new Set([...ctx.links.linkedSources(namespace, name), ...Object.keys(recorded)]);
  return {
    links: [...ids].sort().map((source) => ({ source, state: 'unknown', ...withRecorded(source) })),
    refusedLinks: [],
  };
}

function retryReport(ctx: ExplainContext, hr: HelmRelease, inScope: boolean): Explanation['retry'] {
  const { config } = ctx.settings;
  const maxAttempts = config.retry.limits.maxAttempts;
  if (!inScope)
    return {
      status: 'out-of-scope',
      reason: `the operator acts in ${namespaceScope(config).description} only`,
      maxAttempts,
    };
  const input = retryInput(hr, config.retry);
  const now = ctx.now();
  const action = decideRetry(input, config.retry.limits, now);
  const c = input.classification;
  const base = {
    verdict: c.verdict,
    reason: c.reason,
    action: action.kind,
    maxAttempts,
    ...(input.problems.length > 0 ? { problems: input.problems } : {}),
  };
  if (!config.retries)
    return { ...base, status: 'off', reason: `retries are off (--retries=false); ${c.reason}` };
  const state = input.state;
  switch (action.kind) {
    case 'wait':
      return {
        ...base,
        status: 'pending',
        episode: action.episode,
        attempts: action.attempt - 1,
        nextRetryAt: new Date(now + action.delayMs).toISOString(),
      };
    case 'retry':
      return { ...base, status: 'due', episode: action.episode, attempts: action.attempt - 1 };
    case 'exhaust':
      return { ...base, status: 'exhausted', episode: action.episode, attempts: action.attempts };
    case 'exhausted':
      return {
        ...base,
        status: 'exhausted',
        episode: action.episode,
        attempts: action.attempts,
        ...(state.exhaustedAt ? { exhaustedAt: state.exhaustedAt } : {}),
      };
    default:
      return {
        ...base,
        status: 'none',
        ...(state.episode ? { episode: state.episode } : {}),
        attempts: state.attempts,
      };
  }
}

function fluxReport(hr: HelmRelease, raw: JsonObject): Explanation['flux'] {
  const a = hr.metadata.annotations;
  const s = hr.status;
  const status = isObject(raw.status) ? raw.status : {};
  return {
    conditions: s.conditions,
    requests: { requestedAt: a[Flux.requestedAt], forceAt: a[Flux.forceAt], resetAt: a[Flux.resetAt] },
    handled: {
      lastHandledReconcileAt: s.lastHandledReconcileAt,
      lastHandledForceAt: s.lastHandledForceAt,
      lastHandledResetAt: s.lastHandledResetAt,
    },
    history: array(status.history)
      .filter(isObject)
      .map((h) => ({
        version: num(h.version) ?? 0,
        status: str(h.status) ?? '',
        chartVersion: str(h.chartVersion) ?? '',
      })),
    failures: {
      failures: s.failures,
      installFailures: s.installFailures,
      upgradeFailures: s.upgradeFailures,
    },
  };
}

/** Each valuesFrom entry as the digest reads it (keyBytesOf): present, key present, watched by Flux. */
async function reportSources(ctx: ExplainContext, hr: HelmRelease, notes: string[]): Promise<SourceReport[]> {
  const ns = hr.metadata.namespace;
  return Promise.all(
    hr.valuesFrom.map(async (ref) => {
      const base = { kind: ref.kind, name: ref.name, valuesKey: ref.valuesKey, optional: ref.optional };
      const read = await ctx.sources.read(ref.kind, ns, ref.name);
      if (read.state === 'found') {
        return {
          ...base,
          present: true,
          keyPresent: keyBytesOf(ref.kind, read.value, ref.valuesKey) !== null,
          watchedByFlux: read.value.labels[Flux.watchLabel] === 'Enabled',
        };
      }
      if (read.state === 'missing')
        return { ...base, present: false, keyPresent: false, watchedByFlux: false };
      const what = describeSource(sourceId(ref.kind, ns, ref.name));
      const note =
        read.state === 'forbidden' ? `no access to ${what}` : `could not read ${what}: ${read.message}`;
      if (!notes.includes(note)) notes.push(note);
      return { ...base, present: null, keyPresent: null, watchedByFlux: null, note };
    }),
  );
}

/** Our Events about the release (any reportingController under our prefix), oldest first. */
async function recentEvents(
  ctx: ExplainContext,
  hr: HelmRelease,
  notes: string[],
): Promise<Explanation['events']> {
  const { namespace, name } = hr.metadata;
  const read = await listObjects(ctx.client, collectionPath(Events, namespace), {
    fieldSelector: `regarding.name=${name}`,
  });
  if (read.state !== 'found') {
    notes.push(
      read.state === 'forbidden'
        ? `no access to Events in ${namespace}: the operator's recent Events are not shown`
        : `could not read Events in ${namespace}: ${read.state === 'failed' ? read.message : 'not found'}`,
    );
    return [];
  }
  return read.value
    .map((e) => {
      const regarding = isObject(e.regarding) ? e.regarding : {};
      const meta = isObject(e.metadata) ? e.metadata : {};
      const series = isObject(e.series) ? e.series : {};
      return {
        kind: str(regarding.kind) ?? '',
        time: str(series.lastObservedTime) ?? str(e.eventTime) ?? str(meta.creationTimestamp) ?? '',
        type: str(e.type) ?? '',
        reason: str(e.reason) ?? '',
        note: str(e.note) ?? '',
        controller: str(e.reportingController) ?? '',
      };
    })
    .filter((e) => e.kind === Flux.kind && e.controller.startsWith(`${PREFIX}/`))
    .sort((a, b) => a.time.localeCompare(b.time))
    .slice(-ctx.events)
    .map(({ kind: _, ...e }) => e);
}

/** The settings that change a verdict, as flags. */
function settingsSummary(c: Config): string[] {
  const l = c.retry.limits;
  const out = [
    `--retries=${c.retries}`,
    `--retry-max-attempts=${l.maxAttempts}`,
    `--force=${c.force}`,
    `--notify-only=${c['notify-only']}`,
  ];
  if (c['retry-patterns'].length > 0) out.push(`--retry-patterns=${c['retry-patterns'].join(',')}`);
  if (!c.reconciler) out.push('--reconciler=false (no replica triggers or retries)');
  return out;
}
