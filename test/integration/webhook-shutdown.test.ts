// The webhook's shutdown (issue #15): close() (what SIGTERM runs) stops accepting, lets admissions in flight
// finish and closes idle keep-alive connections at once, so it returns promptly instead of waiting for the
// clients' idle timeouts (the API server's is 90 s, kubelet's grace period cuts it shorter).
import https from 'node:https';
import type { Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { collectionPath, HelmReleases } from '../../src/kube/resources.ts';
import { Annotations, Labels } from '../../src/names.ts';
import { isObject } from '../../src/util/narrow.ts';
import { sleep } from '../../src/util/sleep.ts';
import type { ValuesLookup } from '../../src/values/lookup.ts';
import { admissionReview, helmRelease, memoryLookup } from '../support/webhook.ts';
import { annotationsOf, labelsOf, startWebhookFixture, type WebhookFixture } from './webhook-fixture.ts';

/** How long close() may take with an admission in flight (the admission itself takes LOOKUP_MS). */
const PROMPT_MS = 2000;
/** The lookup's duration: long enough to call close() while an admission waits for it. */
const LOOKUP_MS = 500;

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A values lookup that takes LOOKUP_MS; `nextEntry()` resolves when the next admission enters it. */
function slowLookup(): ValuesLookup & { nextEntry(): Promise<void> } {
  const waiters: (() => void)[] = [];
  return {
    // The fixture's own probes go through the lookup too: only entries after the call count.
    nextEntry: () => new Promise<void>((resolve) => waiters.push(resolve)),
    hasSynced: () => true,
    async valuesDigest(namespace, refs) {
      for (const w of waiters.splice(0)) w();
      await sleep(LOOKUP_MS);
      const data = { data: { 'values.yaml': 'a: 1\n' } };
      return memoryLookup({ [`ConfigMap/${namespace}/values`]: data }).valuesDigest(namespace, refs);
    },
  };
}

async function fixture(lookup: ValuesLookup): Promise<WebhookFixture> {
  const f = await startWebhookFixture({ lookup, config: { 'webhook-lookup-timeout': 10_000 } });
  cleanups.push(() => f.stop());
  return f;
}

type Answer = { status: number; connection: string | undefined; body: unknown; socket: Socket };

/** One admission request over `agent` (keep-alive: the connection stays open for the next). */
function post(f: WebhookFixture, agent: https.Agent, review: unknown): Promise<Answer> {
  return new Promise((resolve, reject) => {
    let socket: Socket | undefined;
    const req = https.request(
      {
        host: '127.0.0.1',
        port: f.server.port,
        path: '/mutate',
        method: 'POST',
        agent,
        headers: { 'content-type': 'application/json' },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          text += c;
        });
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            connection: res.headers.connection,
            body: JSON.parse(text),
            socket: socket as Socket,
          }),
        );
      },
    );
    req.on('socket', (s) => {
      socket = s;
    });
    req.on('error', reject);
    req.end(JSON.stringify(review));
  });
}

function keepAliveAgent(f: WebhookFixture): https.Agent {
  const agent = new https.Agent({ keepAlive: true, ca: f.ca.cert });
  cleanups.push(() => agent.destroy());
  return agent;
}

/** Resolves 'closed' when p does, or 'still open' after ms. */
function within(p: Promise<unknown>, ms: number): Promise<'closed' | 'still open'> {
  return Promise.race([p.then(() => 'closed' as const), sleep(ms).then(() => 'still open' as const)]);
}

const closedAt = (socket: Socket) =>
  new Promise<number>((resolve) => {
    if (socket.destroyed) resolve(Date.now());
    else socket.once('close', () => resolve(Date.now()));
  });

const VALUES_FROM = [{ kind: 'ConfigMap', name: 'values' }];

describe('webhook shutdown', () => {
  it('close(): an idle keep-alive connection is closed at once, an admission in flight gets its answer, and close returns promptly', async () => {
    const lookup = slowLookup();
    const f = await fixture(lookup);
    // One admission on a keep-alive connection, then left idle.
    const first = await post(f, keepAliveAgent(f), admissionReview('idle-1', helmRelease('a', [])));
    expect(first.status).toBe(200);
    expect(first.connection).toBe('keep-alive');
    const idleClosed = closedAt(first.socket);
    // Another admission, in flight (waiting for its lookup) when close() is called.
    const entered = lookup.nextEntry();
    const inflight = post(f, keepAliveAgent(f), admissionReview('busy-1', helmRelease('b', VALUES_FROM)));
    await entered;

    const t0 = Date.now();
    const closing = f.stopServer();
    const answer = await inflight;
    expect(answer.status).toBe(200);
    expect(answer.body).toMatchObject({ response: { uid: 'busy-1', allowed: true, patchType: 'JSONPatch' } });
    expect(await within(closing, PROMPT_MS)).toBe('closed');
    expect(Date.now() - t0).toBeLessThan(PROMPT_MS);
    expect(answer.connection).toBe('close'); // the client must not send another request on it
    expect((await idleClosed) - t0).toBeLessThan(LOOKUP_MS); // closed at once, not after the admission
    // No new connections are accepted.
    await expect(post(f, keepAliveAgent(f), admissionReview('late', helmRelease('c', [])))).rejects.toThrow(
      /ECONNREFUSED/,
    );
  });

  it('close() while the API server waits for an admission: the release is created stamped, and close returns promptly', async () => {
    const lookup = slowLookup();
    const f = await fixture(lookup);
    const ns = await f.namespace(); // the API server now holds keep-alive connections to the webhook
    const entered = lookup.nextEntry();
    const created = f.client.create(collectionPath(HelmReleases, ns), helmRelease('app', VALUES_FROM));
    await entered;

    const t0 = Date.now();
    const closing = f.stopServer();
    const obj = await created;
    expect(isObject(obj)).toBe(true);
    expect(labelsOf(obj)[Labels.managed]).toBe('true');
    expect(annotationsOf(obj)[Annotations.valuesDigest]).toBeDefined();
    expect(await within(closing, PROMPT_MS)).toBe('closed');
    expect(Date.now() - t0).toBeLessThan(PROMPT_MS);
  });
});
