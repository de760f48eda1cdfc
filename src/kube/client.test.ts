import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FIELD_MANAGER, KubeClient, USER_AGENT } from './client.ts';

interface Seen {
  method: string;
  url: URL;
  userAgent: string | undefined;
}

const seen: Seen[] = [];
const server = http.createServer((req, res) => {
  seen.push({
    method: req.method ?? '',
    url: new URL(req.url ?? '/', 'http://x'),
    userAgent: req.headers['user-agent'],
  });
  req.resume();
  req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end('{}'));
});
let client: KubeClient;
beforeAll(async () => {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  client = await KubeClient.create({
    getCurrentCluster: () => ({ server: `http://127.0.0.1:${port}` }),
    applyToHTTPSOptions: async () => {},
  });
});
afterAll(() => {
  client.close();
  server.close();
});

const last = () => seen[seen.length - 1] as Seen;
const version = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')).version;

describe('identity of requests', () => {
  it('names the operator, its version and Node in the User-Agent', () => {
    expect(USER_AGENT).toBe(`helmrelease-autopilot/${version} (node ${process.version})`);
  });

  it.each<[string, (c: KubeClient) => Promise<unknown>, string | null]>([
    ['GET', (c) => c.get('/api/v1/namespaces/a/configmaps/b'), null],
    ['DELETE', (c) => c.delete('/api/v1/namespaces/a/configmaps/b'), null],
    ['POST', (c) => c.create('/api/v1/namespaces/a/configmaps', {}), FIELD_MANAGER],
    [
      'POST dry-run',
      (c) => c.create('/api/v1/namespaces/a/configmaps', {}, { dryRun: 'All' }),
      FIELD_MANAGER,
    ],
    ['PATCH', (c) => c.mergePatch('/api/v1/namespaces/a/configmaps/b', {}), FIELD_MANAGER],
    [
      'PUT',
      (c) => c.request({ method: 'PUT', path: '/api/v1/namespaces/a/configmaps/b', body: {} }),
      FIELD_MANAGER,
    ],
    [
      'an apply that names its own manager',
      (c) =>
        c.request({
          method: 'PATCH',
          path: '/api/v1/namespaces/a/configmaps/b',
          body: {},
          contentType: 'application/apply-patch+yaml',
          query: { fieldManager: 'flux', force: true },
        }),
      'flux',
    ],
  ])('%s: User-Agent set, fieldManager %s', async (_what, call, manager) => {
    await call(client);
    expect(last().userAgent).toBe(USER_AGENT);
    expect(last().url.searchParams.get('fieldManager')).toBe(manager);
  });

  it('keeps the other query parameters of a write', async () => {
    await client.create('/api/v1/namespaces/a/configmaps', {}, { dryRun: 'All' });
    expect(last().url.searchParams.get('dryRun')).toBe('All');
  });
});
