import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import type https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadKubeConfig, readInClusterNamespace, StaticCredentials } from './kubeconfig.ts';

const b64 = (s: string) => Buffer.from(s).toString('base64');

function dir(): string {
  return mkdtempSync(join(tmpdir(), 'kubeconfig-test-'));
}

function kubeconfig(d: string, name: string, body: string): string {
  const path = join(d, name);
  writeFileSync(path, body);
  return path;
}

const twoContexts = `
apiVersion: v1
kind: Config
current-context: one
clusters:
- name: c1
  cluster: {server: "https://one.example:6443", certificate-authority-data: ${b64('CA-ONE')}}
- name: c2
  cluster: {server: "https://two.example", certificate-authority: ca2.crt, tls-server-name: kubernetes}
users:
- name: u1
  user: {client-certificate-data: ${b64('CERT')}, client-key-data: ${b64('KEY')}}
- name: u2
  user: {tokenFile: token}
contexts:
- name: one
  context: {cluster: c1, user: u1}
- name: two
  context: {cluster: c2, user: u2}
`;

async function options(c: { applyToHTTPSOptions(o: https.RequestOptions): Promise<void> }) {
  const o: https.RequestOptions = {};
  await c.applyToHTTPSOptions(o);
  return o;
}

describe('loadKubeConfig', () => {
  it('reads inline certificates of the current context', async () => {
    const d = dir();
    const path = kubeconfig(d, 'config', twoContexts);
    const { kubeConfig, source } = await loadKubeConfig({ path, context: '', home: d }, {});
    expect(source).toBe(path);
    expect(kubeConfig.getCurrentCluster()?.server).toBe('https://one.example:6443');
    const o = await options(kubeConfig);
    expect([o.ca?.toString(), o.cert?.toString(), o.key?.toString()]).toEqual(['CA-ONE', 'CERT', 'KEY']);
    expect(o.headers).toBeUndefined();
  });

  it('honours --context, resolves files relative to the kubeconfig, and sends the token file as bearer', async () => {
    const d = dir();
    writeFileSync(join(d, 'ca2.crt'), 'CA-TWO');
    writeFileSync(join(d, 'token'), 'secret-token\n');
    const path = kubeconfig(d, 'config', twoContexts);
    const { kubeConfig } = await loadKubeConfig({ path, context: 'two', home: d }, {});
    expect(kubeConfig.getCurrentCluster()?.server).toBe('https://two.example');
    const o = await options(kubeConfig);
    expect(o.ca?.toString()).toBe('CA-TWO');
    expect(o.servername).toBe('kubernetes');
    expect(o.headers).toEqual({ authorization: 'Bearer secret-token' });
  });

  it('merges $KUBECONFIG files, the first to set a name or current-context winning', async () => {
    const d = dir();
    writeFileSync(join(d, 'ca2.crt'), 'CA-TWO');
    const first = kubeconfig(d, 'a', 'current-context: two\n');
    const second = kubeconfig(d, 'b', twoContexts.replace('tokenFile: token', 'token: inline'));
    const { kubeConfig, source } = await loadKubeConfig(
      { path: '', context: '', home: d },
      { KUBECONFIG: `${first}:${second}` },
    );
    expect(source).toContain('$KUBECONFIG');
    expect(kubeConfig.getCurrentCluster()?.server).toBe('https://two.example');
  });

  it('falls back to ~/.kube/config, then to the in-cluster service account', async () => {
    const home = dir();
    mkdirSync(join(home, '.kube'));
    kubeconfig(join(home, '.kube'), 'config', twoContexts);
    expect((await loadKubeConfig({ path: '', context: '', home }, {})).source).toBe(
      join(home, '.kube', 'config'),
    );

    const sa = dir();
    writeFileSync(join(sa, 'token'), 'sa-token');
    writeFileSync(join(sa, 'ca.crt'), 'CLUSTER-CA');
    const inCluster = await loadKubeConfig(
      { path: '', context: '', home: dir(), serviceAccountDir: sa },
      { KUBERNETES_SERVICE_HOST: '10.0.0.1', KUBERNETES_SERVICE_PORT: '443' },
    );
    expect(inCluster.source).toBe('in-cluster service account');
    expect(inCluster.kubeConfig.getCurrentCluster()?.server).toBe('https://10.0.0.1:443');
    const o = await options(inCluster.kubeConfig);
    expect(o.ca?.toString()).toBe('CLUSTER-CA');
    expect(o.headers).toEqual({ authorization: 'Bearer sa-token' });
  });

  it.each([
    ['a missing --kubeconfig file', '/nonexistent/config', '', /does not exist/],
    ['nothing at all', '', '', /no Kubernetes configuration/],
    ['an unknown --context', 'FILE', 'three', /no context "three"/],
  ])('fails clearly on %s', async (_what, path, context, message) => {
    const d = dir();
    const file = kubeconfig(d, 'config', twoContexts);
    const o = { path: path === 'FILE' ? file : path, context, home: dir(), serviceAccountDir: d };
    await expect(loadKubeConfig(o, {})).rejects.toThrow(message);
  });
});

describe('readInClusterNamespace', () => {
  it.each<[string, string | null, string | undefined]>([
    ['the mounted namespace, trimmed', 'team-a\n', 'team-a'],
    ['nothing for an empty file', ' \n', undefined],
    ['nothing outside a cluster', null, undefined],
  ])('reads %s', (_, content, expected) => {
    const sa = dir();
    if (content !== null) writeFileSync(join(sa, 'namespace'), content);
    expect(readInClusterNamespace(sa)).toBe(expected);
  });
});

describe('StaticCredentials', () => {
  it('re-reads a rotating token file at most once a minute', async () => {
    const d = dir();
    const tokenFile = join(d, 'token');
    writeFileSync(tokenFile, 'first');
    let now = 0;
    const creds = new StaticCredentials({ server: 'https://x' }, { tokenFile }, () => now);
    expect((await options(creds)).headers).toEqual({ authorization: 'Bearer first' });
    writeFileSync(tokenFile, 'second');
    now = 30_000;
    expect((await options(creds)).headers).toEqual({ authorization: 'Bearer first' });
    now = 61_000;
    expect((await options(creds)).headers).toEqual({ authorization: 'Bearer second' });
  });
});
