// The MutatingWebhookConfiguration that manifests/ ships, pointed at a webhook on loopback: tests and
// benchmarks register exactly the settings users get (rules, failurePolicy, timeout, matchConditions...).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import type { JsonObject } from '../../src/util/narrow.ts';

const SHIPPED = join(
  import.meta.dirname,
  '..',
  '..',
  'manifests',
  'base',
  'mutatingwebhookconfiguration.yaml',
);

export interface LoopbackRegistration {
  /** Name of the MutatingWebhookConfiguration. */
  name: string;
  /** https://127.0.0.1:PORT/mutate */
  url: string;
  /** CA of the serving certificate; absent when the operator's self-signed mode fills it. */
  caPem?: string;
  /** The identity whose writes are skipped (the shipped expression names the ServiceAccount). */
  operatorUser: string;
  /** Webhook name, unique per configuration when several are registered at once. */
  webhookName?: string;
  /** Replaces the shipped namespaceSelector (e.g. to confine a test to its own namespaces). */
  namespaceSelector?: JsonObject;
}

export function loopbackRegistration(o: LoopbackRegistration): JsonObject {
  const shipped = parse(readFileSync(SHIPPED, 'utf8')) as JsonObject & { webhooks: JsonObject[] };
  const [hook] = shipped.webhooks;
  if (!hook || shipped.webhooks.length !== 1) throw new Error(`${SHIPPED}: expected one webhook`);
  const conditions = (hook.matchConditions as { name: string; expression: string }[]).map((c) => ({
    ...c,
    expression: c.expression.replace(/'system:serviceaccount:[^']*'/, `'${o.operatorUser}'`),
  }));
  return {
    ...shipped,
    metadata: { name: o.name },
    webhooks: [
      {
        ...hook,
        ...(o.webhookName ? { name: o.webhookName } : {}),
        clientConfig: {
          url: o.url,
          ...(o.caPem ? { caBundle: Buffer.from(o.caPem).toString('base64') } : {}),
        },
        ...(o.namespaceSelector ? { namespaceSelector: o.namespaceSelector } : {}),
        matchConditions: conditions,
      },
    ],
  };
}
