// Lays out an image's filesystem from the Dockerfile without a container engine: each stage gets a directory
// standing for its "/", the build context is filtered by .dockerignore as Docker filters it, COPY copies
// (from the context or from an earlier stage), RUN runs on the host in the stage's WORKDIR. Only the
// instructions this project's Dockerfile uses are understood; anything else fails loudly.
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, join, posix, relative } from 'node:path';

export interface Instruction {
  op: string;
  args: string;
}

export interface Stage {
  name: string | undefined;
  instructions: Instruction[];
}

/** Instructions by stage; comments dropped, continuation lines joined. */
export function parseDockerfile(text: string): Stage[] {
  const lines = text.replace(/\\\n/g, ' ').split('\n');
  const stages: Stage[] = [];
  for (const raw of lines) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const m = /^(\w+)\s+(.*)$/.exec(line);
    if (!m) throw new Error(`Dockerfile: cannot parse "${line}"`);
    const op = (m[1] as string).toUpperCase();
    const args = (m[2] as string).trim();
    if (op === 'FROM') {
      const as = /\s+AS\s+(\S+)$/i.exec(args);
      stages.push({ name: as?.[1], instructions: [] });
      continue;
    }
    if (op === 'ARG' && stages.length === 0) continue; // global build arguments (the base image)
    const stage = stages.at(-1);
    if (!stage) throw new Error(`Dockerfile: ${op} before FROM`);
    stage.instructions.push({ op, args });
  }
  return stages;
}

/** KEY=value pairs of an ENV instruction (values may be double-quoted). */
export function parseEnv(args: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of args.matchAll(/(\w+)=("((?:[^"\\]|\\.)*)"|\S*)/g)) {
    out[m[1] as string] = m[3] !== undefined ? m[3].replace(/\\(.)/g, '$1') : (m[2] as string);
  }
  return out;
}

/** The flags (--from=..., --chown=...) and the paths of a COPY. */
export function parseCopy(args: string): { flags: Record<string, string>; sources: string[]; dest: string } {
  const words = args.split(/\s+/);
  const flags: Record<string, string> = {};
  while (words[0]?.startsWith('--')) {
    const [k, v = ''] = (words.shift() as string).slice(2).split('=');
    flags[k as string] = v;
  }
  const dest = words.pop();
  if (!dest || words.length === 0) throw new Error(`COPY ${args}: needs sources and a destination`);
  return { flags, sources: words, dest };
}

/** .dockerignore as Docker applies it: patterns in order, the last match wins, a match on a parent counts. */
export function dockerIgnore(text: string): (path: string) => boolean {
  const rules = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => {
      const negate = l.startsWith('!');
      const pattern = posix.normalize((negate ? l.slice(1) : l).replace(/^\/+/, '')).replace(/\/+$/, '');
      return { negate, re: globToRegExp(pattern) };
    });
  return (path) => {
    const parts = path.split('/');
    const prefixes = parts.map((_, i) => parts.slice(0, i + 1).join('/'));
    let ignored = false;
    for (const r of rules) if (prefixes.some((p) => r.re.test(p))) ignored = !r.negate;
    return ignored;
  };
}

function globToRegExp(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i] as string;
    if (c === '*' && glob[i + 1] === '*') {
      const slash = glob[i + 2] === '/';
      re += slash ? '(?:.*/)?' : '.*';
      i += slash ? 2 : 1;
    } else if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

export interface LaidOut {
  /** The final stage's "/" on the host. */
  root: string;
  /** Its WORKDIR on the host (ENTRYPOINT's working directory). */
  workdir: string;
  env: Record<string, string>;
  entrypoint: string[];
  /** What each COPY of the final stage brought in, for failure messages. */
  copies: string[];
}

export interface LayoutOptions {
  context: string;
  /** Where the stages' directories are made. */
  dir: string;
  /** Rewrites a RUN command before it runs on the host (undefined: skip it). */
  run: (command: string) => string | undefined;
}

/** Builds every stage in order; returns the final one. */
export function layOut(dockerfile: string, o: LayoutOptions): LaidOut {
  const stages = parseDockerfile(readFileSync(dockerfile, 'utf8'));
  const ignored = dockerIgnore(
    existsSync(join(o.context, '.dockerignore'))
      ? readFileSync(join(o.context, '.dockerignore'), 'utf8')
      : '',
  );
  const roots = new Map<string, { root: string; workdir: string }>();
  let last: LaidOut | undefined;
  for (const [i, stage] of stages.entries()) {
    const root = join(o.dir, `stage-${i}${stage.name ? `-${stage.name}` : ''}`);
    mkdirSync(root, { recursive: true });
    let workdir = '/';
    const env: Record<string, string> = {};
    const copies: string[] = [];
    let entrypoint: string[] = [];
    const onHost = (p: string) => join(root, posix.resolve(workdir, p));
    for (const ins of stage.instructions) {
      switch (ins.op) {
        case 'WORKDIR':
          workdir = posix.resolve(workdir, ins.args);
          mkdirSync(onHost('.'), { recursive: true });
          break;
        case 'ENV':
          Object.assign(env, parseEnv(ins.args));
          break;
        case 'COPY': {
          const c = parseCopy(ins.args);
          for (const src of c.sources) {
            const from = c.flags.from;
            const source = from ? stageSource(roots, from, src) : join(o.context, src);
            const intoDir = c.dest.endsWith('/') || c.sources.length > 1;
            const dest =
              statSync(source).isDirectory() || !intoDir
                ? onHost(c.dest)
                : join(onHost(c.dest), basename(src));
            mkdirSync(dirname(dest), { recursive: true });
            cpSync(source, dest, {
              recursive: true,
              filter: (p) => from !== undefined || !ignored(relative(o.context, p)),
            });
            copies.push(`${from ? `${from}:` : ''}${src} -> ${posix.resolve(workdir, c.dest)}`);
          }
          break;
        }
        case 'RUN':
          for (const part of ins.args.split('&&').map((s) => s.trim())) {
            const command = o.run(part);
            if (command)
              execFileSync('sh', ['-c', command], { cwd: onHost('.'), stdio: 'pipe', timeout: 600_000 });
          }
          break;
        case 'ENTRYPOINT':
          entrypoint = JSON.parse(ins.args) as string[];
          break;
        case 'USER':
        case 'EXPOSE':
        case 'ARG':
          break; // no effect on the files or the process here (the user: see the test)
        default:
          throw new Error(`Dockerfile: ${ins.op} is not understood by this layout`);
      }
    }
    if (stage.name) roots.set(stage.name, { root, workdir });
    last = { root, workdir: onHost('.'), env, entrypoint, copies };
  }
  if (!last) throw new Error('Dockerfile has no stage');
  return last;
}

function stageSource(roots: Map<string, { root: string }>, from: string, src: string): string {
  const stage = roots.get(from);
  if (!stage) throw new Error(`COPY --from=${from}: no such stage`);
  return join(stage.root, src);
}
