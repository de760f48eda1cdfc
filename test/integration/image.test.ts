// The image's contents, proven without a container engine: the Dockerfile is laid out on disk exactly as it
// builds (its stages, .dockerignore, each COPY of the final stage; the deps stage's `npm ci --omit=dev` run
// from the npm cache), and its ENTRYPOINT is started with the image's ENV (NODE_OPTIONS, NODE_ENV, HOME)
// against the real API server, as the operator's ServiceAccount, until /readyz answers 200. A module the
// process needs that the image lacks (a devDependency used at run time, a directory not copied) fails it.
import { type ChildProcess, spawn } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, parse as parsePath } from 'node:path';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { freePort } from '../../hack/controlplane.ts';
import { createCA, issueCertificate } from '../../src/tls/certs.ts';
import { sleep } from '../../src/util/sleep.ts';
import { adminClient, createNamespace, userKubeconfig } from '../support/cluster.ts';
import { type LaidOut, layOut } from '../support/dockerfile.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const dir = mkdtempSync(join(tmpdir(), 'autopilot-image-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Every node_modules directory Node's resolution would reach from `from` upwards. */
function ancestorNodeModules(from: string): string[] {
  const found: string[] = [];
  for (let d = dirname(from); ; d = dirname(d)) {
    if (existsSync(join(d, 'node_modules'))) found.push(join(d, 'node_modules'));
    if (d === parsePath(d).root) return found;
  }
}

/** Paths of the installed packages as the lockfile names them ("node_modules/a/node_modules/@s/b"). */
function installedPackages(nodeModules: string, prefix = 'node_modules'): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(nodeModules)) {
    if (entry.startsWith('.')) continue;
    const names = entry.startsWith('@')
      ? readdirSync(join(nodeModules, entry)).map((n) => `${entry}/${n}`)
      : [entry];
    for (const name of names) {
      out.push(`${prefix}/${name}`);
      const nested = join(nodeModules, name, 'node_modules');
      if (existsSync(nested)) out.push(...installedPackages(nested, `${prefix}/${name}/node_modules`));
    }
  }
  return out;
}

function files(root: string): string[] {
  return readdirSync(root, { recursive: true, encoding: 'utf8' });
}

describe('the image', () => {
  let image: LaidOut;

  it('is laid out from the Dockerfile: the final stage holds what its COPY lines name, production dependencies only', () => {
    const started = Date.now();
    image = layOut(join(ROOT, 'Dockerfile'), {
      context: ROOT,
      dir,
      run: (command) => {
        // The machine's npm cache is shared (and warm): keep it, and install from it without the registry.
        if (/^npm cache clean\b/.test(command)) return undefined;
        if (/^npm ci\b/.test(command)) return `${command} --offline`;
        // Ownership and modes are the image's business, not what this test proves.
        if (/^(chown|chmod)\b/.test(command)) return undefined;
        // The compile-cache steps run as written: the entry point and every module must load with production
        // dependencies only (a module that needs a devDependency fails here, as it would in the image build).
        if (/^mkdir -p\b/.test(command) || /^node cmd\//.test(command) || /^find /.test(command))
          return command;
        throw new Error(`RUN ${command}: not understood by this test`);
      },
    });
    process.stderr.write(`image laid out in ${Date.now() - started} ms: ${image.copies.join(', ')}\n`);
    // Nothing outside the image can satisfy an import: no node_modules above the image's root.
    expect(ancestorNodeModules(image.root)).toEqual([]);
    const top = readdirSync(image.workdir).sort();
    // .cache: the compile cache the Dockerfile fills at build time.
    expect(top).toEqual(['.cache', 'cmd', 'controller', 'node_modules', 'package.json', 'src', 'webhook']);
    expect(
      files(image.workdir).filter((f) => f.endsWith('.test.ts') && !f.startsWith('node_modules')),
    ).toEqual([]);
    // Exactly the production part of the lockfile: every package it does not mark "dev", nothing else.
    const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as {
      packages: Record<string, { dev?: boolean }>;
    };
    const production = Object.keys(lock.packages).filter((k) => k !== '' && !lock.packages[k]?.dev);
    expect(installedPackages(join(image.workdir, 'node_modules')).sort()).toEqual(production.sort());
    expect(image.entrypoint[0]).toBe('node');
    expect(image.env.NODE_OPTIONS).toMatch(/--max-old-space-size=\d+/);
    expect(image.env.MALLOC_ARENA_MAX).toBe('2'); // glibc arenas: RSS after LIST bursts (Dockerfile)
  }, 600_000);

  it('starts its ENTRYPOINT with the image ENV as the operator ServiceAccount, until /readyz answers 200, and stops cleanly', async () => {
    expect(image, 'the layout test ran first').toBeDefined();
    const admin = await adminClient();
    const ns = await createNamespace(admin, 'image');
    admin.close();
    // What a cert-manager install mounts: a serving certificate in --cert-dir.
    const certDir = join(dir, 'serving-certs');
    mkdirSync(certDir);
    const ca = createCA('image-test');
    const serving = issueCertificate(ca, { commonName: '127.0.0.1', hosts: ['127.0.0.1'], usage: 'server' });
    writeFileSync(join(certDir, 'tls.crt'), serving.cert);
    writeFileSync(join(certDir, 'tls.key'), serving.key);
    const health = await freePort();
    const args = [
      `--kubeconfig=${userKubeconfig(inject('operatorUser'))}`,
      `--cert-dir=${certDir}`,
      '--bind-address=127.0.0.1',
      `--health-port=${health}`,
      `--metrics-port=${await freePort()}`,
      `--webhook-port=${await freePort()}`,
      '--leader-elect=false',
      `--watch-namespace=${ns}`,
    ];
    // The image's node is Node 24 (its base image); so is the one running this test.
    const proc: ChildProcess = spawn(process.execPath, [...image.entrypoint.slice(1), ...args], {
      cwd: image.workdir,
      env: image.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const out: string[] = [];
    proc.stdout?.on('data', (b: Buffer) => out.push(b.toString()));
    proc.stderr?.on('data', (b: Buffer) => out.push(b.toString()));
    const exit = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
    try {
      const deadline = Date.now() + 60_000;
      let status = 0;
      while (status !== 200) {
        if (proc.exitCode !== null)
          throw new Error(`the image's process exited (${proc.exitCode}):\n${out.join('')}`);
        if (Date.now() > deadline)
          throw new Error(`/readyz never answered 200 (last ${status}):\n${out.join('')}`);
        status = await fetch(`http://127.0.0.1:${health}/readyz`).then(
          (r) => r.status,
          () => 0,
        );
        if (status !== 200) await sleep(200);
      }
      expect(out.join('')).toContain('"msg":"started"');
    } finally {
      proc.kill('SIGTERM');
    }
    expect(await exit).toBe(0);
  }, 120_000);
});
