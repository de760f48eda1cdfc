// Scenario "bare process": the operator at its default flags against the control plane before any release,
// ConfigMap or Secret exists: RSS and heap of the code alone, the floor under every other memory figure.
// A second start lists the modules it loads (a module hook given with --import; that start's memory is not
// used), by package.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sleep } from '../../src/util/sleep.ts';
import { type BenchContext, SETTLE_MS, span, startOperator } from './context.ts';

/** Records the URL of every module loaded, written to $MODULE_LIST at exit. Plain JavaScript: no type stripping. */
const MODULE_HOOK = `data:text/javascript,${encodeURIComponent(
  'import{registerHooks}from"node:module";import{writeFileSync}from"node:fs";const l=[];' +
    'registerHooks({load(u,c,n){l.push(u);return n(u,c)}});' +
    'process.on("exit",()=>writeFileSync(process.env.MODULE_LIST,l.join("\\n")))',
)}`;

async function idle(ctx: BenchContext, name: string, extra: Parameters<typeof startOperator>[3] = {}) {
  const op = await startOperator(ctx, name, [], extra);
  const ready = await op.waitReady(60_000);
  await op.waitFirstPass(60_000);
  await sleep(SETTLE_MS);
  return { op, readyMs: span(op.startedAt, ready) };
}

/** Module URLs by package ("ours" for the project's files, "node:" for built-ins). */
function byPackage(urls: string[]): Record<string, number> {
  const counts = new Map<string, number>();
  for (const u of urls) {
    const pkg =
      /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(u)?.[1] ?? (u.startsWith('node:') ? 'node:' : 'ours');
    counts.set(pkg, (counts.get(pkg) ?? 0) + 1);
  }
  return Object.fromEntries([...counts].sort((a, b) => b[1] - a[1]));
}

export async function bareProcess(ctx: BenchContext) {
  const { op, readyMs } = await idle(ctx, 'bare');
  const memory = { readyMs, ...op.memory(), ...(await op.heap()) };
  await op.stop();
  const dir = mkdtempSync(join(tmpdir(), 'bench-modules-'));
  const list = join(dir, 'modules');
  const listed = await idle(ctx, 'bare-modules', {
    nodeArgs: [`--import=${MODULE_HOOK}`],
    env: { MODULE_LIST: list },
  });
  await listed.op.stop();
  const urls = readFileSync(list, 'utf8').split('\n').filter(Boolean);
  rmSync(dir, { recursive: true, force: true });
  return { ...memory, modules: urls.length, modulesByPackage: byPackage(urls) };
}
