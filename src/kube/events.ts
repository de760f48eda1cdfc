// Kubernetes Events (events.k8s.io/v1) about the objects we act on, so `kubectl describe` and
// `kubectl events` tell users what the operator did and why. Recording is best effort: a failed
// Event never fails the action it describes (it is logged instead). Identical events about the same
// object within dedupeWindowMs are dropped, so a release re-examined often does not flood the API.
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { HelmRelease } from '../flux/helmrelease.ts';
import { Flux } from '../names.ts';
import { type Clock, systemClock } from '../util/clock.ts';
import { errorMessage } from '../util/errors.ts';
import type { KubeClient } from './client.ts';
import { collectionPath, Events } from './resources.ts';

export interface EventTarget {
  apiVersion: string;
  kind: string;
  namespace: string;
  name: string;
  uid: string;
  resourceVersion?: string;
}

/** A HelmRelease as the object an event is about. */
export function releaseTarget(hr: HelmRelease): EventTarget {
  return {
    apiVersion: `${Flux.group}/${Flux.version}`,
    kind: Flux.kind,
    namespace: hr.metadata.namespace,
    name: hr.metadata.name,
    uid: hr.metadata.uid,
    resourceVersion: hr.metadata.resourceVersion,
  };
}

export interface EventSpec {
  type: 'Normal' | 'Warning';
  /** UpperCamelCase, machine-readable (e.g. RetryTriggered). */
  reason: string;
  /** What the operator did or failed to do (e.g. Retry, Trigger). */
  action: string;
  /** Human-readable; never Secret data. Truncated to the API's 1 kB limit. */
  note: string;
}

export interface EventRecorder {
  /** Records an event; resolves when written (or dropped), never rejects. */
  emit(target: EventTarget, event: EventSpec): Promise<void>;
}

export interface EventRecorderOptions {
  client: KubeClient;
  logger: Logger;
  /** reportingController: a domain-qualified name. */
  controller?: string;
  /** reportingInstance: this replica (its pod name, passed in by cmd/); default "helmrelease-autopilot". */
  instance?: string;
  clock?: Clock;
  dedupeWindowMs?: number;
}

const NOTE_LIMIT = 1024;
const MAX_REMEMBERED = 10_000;

export function createEventRecorder(o: EventRecorderOptions): EventRecorder {
  const clock = o.clock ?? systemClock;
  const controller = o.controller ?? 'helmrelease-autopilot.dev/controller';
  const instance = (o.instance ?? 'helmrelease-autopilot').slice(0, 128);
  const window = o.dedupeWindowMs ?? 5 * 60_000;
  const lastSent = new Map<string, number>();

  return {
    async emit(target, event) {
      const now = clock.now();
      const key = `${target.uid}\u0000${event.type}\u0000${event.reason}\u0000${event.note}`;
      const last = lastSent.get(key);
      if (window > 0 && last !== undefined && now - last < window) return;
      lastSent.delete(key);
      lastSent.set(key, now);
      if (lastSent.size > MAX_REMEMBERED) lastSent.delete(lastSent.keys().next().value as string);
      const body = {
        apiVersion: 'events.k8s.io/v1',
        kind: 'Event',
        metadata: {
          name: eventName(target.name, `${now.toString(16)}${randomBytes(4).toString('hex')}`),
          namespace: target.namespace,
        },
        eventTime: new Date(now).toISOString().replace(/Z$/, '000Z'),
        reportingController: controller,
        reportingInstance: instance,
        action: event.action,
        reason: event.reason,
        note: event.note.length > NOTE_LIMIT ? `${event.note.slice(0, NOTE_LIMIT - 3)}...` : event.note,
        type: event.type,
        regarding: target,
      };
      try {
        await o.client.create(collectionPath(Events, target.namespace), body);
      } catch (err) {
        o.logger.warn(
          { err: errorMessage(err), namespace: target.namespace, name: target.name, reason: event.reason },
          'could not record event',
        );
      }
    },
  };
}

/** <object name>.<unique suffix>, shortened to a valid DNS subdomain when the object's name is very long. */
function eventName(objectName: string, suffix: string): string {
  const head = objectName.slice(0, 253 - 1 - suffix.length).replace(/[-.]+$/, '');
  return `${head}.${suffix}`;
}
