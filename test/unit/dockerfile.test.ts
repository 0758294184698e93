// Dockerfile: the build stage runs the README's install command on sources that exist and are in
// the build context; the runtime stage gets everything the server reads at run time from what
// that build produces (checked against this checkout after `npm ci`), and starts it the way
// `npm start` does. No Docker engine needed: the file is parsed line by line.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { loadConfig } from '../../src/config.js';

const ROOT = path.resolve(import.meta.dirname, '../..');

// ---------------------------------------------------------------------------------------------
// A Dockerfile reader: instructions with their line, continuation lines joined, comments dropped.

interface Instruction { keyword: string; args: string; line: number }
interface Stage { from: string; name: string | undefined; instructions: Instruction[] }

function parseDockerfile(text: string): Stage[] {
  const instructions: Instruction[] = [];
  let pending: Instruction | undefined;
  text.split('\n').forEach((raw, i) => {
    const trimmed = raw.trim();
    // Comment lines (parser directives too) are dropped, also inside a continued instruction.
    if (trimmed.startsWith('#')) return;
    if (trimmed === '' && !pending) return;
    const continued = trimmed.endsWith('\\');
    const body = continued ? trimmed.slice(0, -1).trim() : trimmed;
    if (pending) {
      pending.args = `${pending.args} ${body}`.trim();
    } else {
      const m = /^(\S+)\s*(.*)$/.exec(body);
      assert.ok(m, `Dockerfile line ${i + 1}: an instruction`);
      pending = { keyword: m[1]!.toUpperCase(), args: m[2]!, line: i + 1 };
    }
    if (!continued) {
      instructions.push(pending);
      pending = undefined;
    }
  });
  assert.equal(pending, undefined, 'the Dockerfile does not end inside a continued line');
  const stages: Stage[] = [];
  for (const ins of instructions) {
    if (ins.keyword === 'FROM') {
      const m = /^(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?$/i.exec(ins.args);
      assert.ok(m, `line ${ins.line}: FROM image [AS name]`);
      stages.push({ from: m[1]!, name: m[2], instructions: [] });
    } else {
      assert.ok(stages.length > 0, `line ${ins.line}: ${ins.keyword} before any FROM`);
      stages.at(-1)!.instructions.push(ins);
    }
  }
  return stages;
}

/** `--flag=value` options leading an instruction's arguments, and the rest. */
function options(args: string): { flags: Map<string, string>; rest: string } {
  const flags = new Map<string, string>();
  let rest = args;
  for (let m = /^--([\w-]+)(?:=(\S*))?\s+/.exec(rest); m; m = /^--([\w-]+)(?:=(\S*))?\s+/.exec(rest)) {
    flags.set(m[1]!, m[2] ?? '');
    rest = rest.slice(m[0].length);
  }
  return { flags, rest };
}

interface Copy { from: string | undefined; sources: string[]; dest: string; line: number }

function copies(stage: Stage): Copy[] {
  return stage.instructions.filter((i) => i.keyword === 'COPY').map((i) => {
    const { flags, rest } = options(i.args);
    assert.ok(!rest.startsWith('['), `line ${i.line}: COPY in its plain form`);
    const parts = rest.split(/\s+/);
    assert.ok(parts.length >= 2, `line ${i.line}: COPY source... dest`);
    return { from: flags.get('from'), sources: parts.slice(0, -1), dest: parts.at(-1)!, line: i.line };
  });
}

function one(stage: Stage, keyword: string): Instruction {
  const found = stage.instructions.filter((i) => i.keyword === keyword);
  assert.equal(found.length, 1, `one ${keyword} in the stage FROM ${stage.from}`);
  return found[0]!;
}

/** The shell commands of a stage's RUN instructions, split at `&&`, mount options dropped. */
function commands(stage: Stage): string[] {
  return stage.instructions.filter((i) => i.keyword === 'RUN')
    .flatMap((i) => options(i.args).rest.split('&&').map((c) => c.trim().replace(/\s+/g, ' ')));
}

// ---------------------------------------------------------------------------------------------
// .dockerignore, matched as Docker does: Go filepath.Match patterns (plus `**`), `!` exceptions,
// the last matching line wins, and a path is excluded when it or a parent folder matches.

function dockerignore(): { pattern: RegExp; exclude: boolean }[] {
  return readFileSync(path.join(ROOT, '.dockerignore'), 'utf8').split('\n')
    .map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => {
      const exclude = !l.startsWith('!');
      const glob = path.posix.normalize((exclude ? l : l.slice(1)).trim()).replace(/^\/+|\/+$/g, '');
      const re = glob.split(/(\*\*\/?|\*|\?)/).map((part) => {
        if (part === '**' || part === '**/') return '(?:.*/)?' + (part === '**' ? '.*' : '');
        if (part === '*') return '[^/]*';
        if (part === '?') return '[^/]';
        return part.replace(/[.+^${}()|[\]\\]/g, '\\$&');
      }).join('');
      return { pattern: new RegExp(`^${re}$`), exclude };
    });
}

function ignored(file: string): boolean {
  const rules = dockerignore();
  const parts = path.posix.normalize(file).replace(/\/+$/, '').split('/');
  let out = false;
  for (const rule of rules) {
    for (let n = 1; n <= parts.length; n++) {
      if (rule.pattern.test(parts.slice(0, n).join('/'))) {
        out = rule.exclude;
        break;
      }
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------

const stages = parseDockerfile(readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8'));
const build = stages.find((s) => s.name === 'build');
const runtime = stages.at(-1)!;
const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as {
  scripts: Record<string, string>;
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
  type?: string;
};

function workdir(stage: Stage): string {
  const dir = one(stage, 'WORKDIR').args;
  assert.ok(path.posix.isAbsolute(dir), `WORKDIR ${dir} is absolute`);
  return dir;
}

/** What the runtime stage holds, as paths relative to the project root (its WORKDIR). */
function runtimePaths(): string[] {
  assert.ok(build, 'a stage named build');
  const fromDir = workdir(build);
  const toDir = workdir(runtime);
  return copies(runtime).flatMap((c) => {
    assert.equal(c.from, 'build', `line ${c.line}: the runtime stage copies from the build stage only`);
    return c.sources.map((src) => {
      const rel = path.posix.relative(fromDir, path.posix.resolve(fromDir, src));
      assert.ok(!rel.startsWith('..'), `line ${c.line}: ${src} is inside the build's ${fromDir}`);
      const dest = path.posix.resolve(toDir, c.dest);
      // `COPY a/b/ a/b/`, `COPY a/b/c.node a/b/`: the same place relative to the WORKDIR.
      const placed = c.dest.endsWith('/') && !src.endsWith('/') ? path.posix.join(dest, path.posix.basename(src)) : dest;
      assert.equal(path.posix.relative(toDir, placed), rel, `line ${c.line}: ${src} keeps its place in the project`);
      return rel;
    });
  });
}

function inRuntime(file: string): boolean {
  return runtimePaths().some((p) => p === '' || file === p || file.startsWith(p.replace(/\/$/, '') + '/'));
}

function sourceFiles(dir: string): string[] {
  return readdirSync(path.join(ROOT, dir), { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts'))
    .map((e) => path.join(e.parentPath, e.name));
}

describe('Dockerfile', () => {
  it('builds on node:20-bookworm and runs on node:20-bookworm-slim, the same Node major (the addon\'s ABI)', () => {
    assert.equal(stages.length, 2, 'two stages');
    assert.ok(build, 'a stage named build');
    assert.equal(build.from, 'node:20-bookworm');
    assert.equal(runtime.from, 'node:20-bookworm-slim');
    assert.equal(runtime.from.split(/[:-]/)[1], build.from.split(/[:-]/)[1]);
  });

  it('the build stage installs the toolchain and runs the README\'s install command, then drops devDependencies', () => {
    assert.ok(build);
    const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
    const block = /```sh\n([^\n]*)\n/.exec(readme);
    assert.ok(block, 'the README opens with a sh block');
    const first = block[1]!.replace(/\s+#.*$/, '').split('&&').map((c) => c.trim());
    const start = first.indexOf('npm start');
    assert.ok(start > 0, `the README's first command is install && npm start: ${block[1]}`);
    const install = first.slice(0, start);
    assert.deepEqual(install, ['npm ci']);
    const run = commands(build);
    const apt = run.find((c) => c.startsWith('apt-get install'));
    assert.ok(apt, 'apt-get install');
    for (const tool of ['cmake', 'g++', 'make']) assert.ok(apt.split(' ').includes(tool), `installs ${tool}`);
    const at = run.indexOf(install.join(' && '));
    assert.ok(at >= 0, `a RUN of ${install.join(' && ')}: ${JSON.stringify(run)}`);
    const prune = run.indexOf('npm prune --omit=dev');
    assert.ok(prune > at, 'npm prune --omit=dev after the install');
    // .npmrc's install-script policy is only read by npm >= 11.16 (Node 20 ships npm 10).
    const npm = run.find((c) => c.startsWith('npm install -g npm@'));
    const [major, minor] = (/npm@(\d+)\.(\d+)\.\d+$/.exec(npm ?? '') ?? []).slice(1).map(Number) as [number, number];
    assert.ok(major > 11 || (major === 11 && minor >= 16), `pins npm >= 11.16 before npm ci: ${npm}`);
    assert.ok(run.indexOf(npm!) < at);
  });

  it('every build-stage COPY source exists in the repository and is in the build context', () => {
    assert.ok(build);
    const sources = copies(build).flatMap((c) => {
      assert.equal(c.from, undefined, `line ${c.line}: the build stage copies from the context`);
      return c.sources;
    });
    assert.ok(sources.length > 0);
    const dir = workdir(build);
    for (const c of copies(build)) {
      for (const src of c.sources) {
        // Into the WORKDIR at the same relative path, so the build sees the repository's layout.
        const dest = path.posix.resolve(dir, c.dest);
        const placed = c.dest.endsWith('/') && !src.endsWith('/') ? path.posix.join(dest, path.posix.basename(src)) : dest;
        assert.equal(path.posix.relative(dir, placed), path.posix.normalize(src).replace(/\/$/, ''), `line ${c.line}: ${src} keeps its place`);
      }
    }
    for (const src of sources) {
      assert.ok(existsSync(path.join(ROOT, src)), `${src} exists`);
      assert.ok(!ignored(src), `${src} is not excluded by .dockerignore`);
    }
    // What `npm ci` reads: the lockfile and the install policy, the addon's and TypeScript's
    // build inputs, and what `prepare` runs.
    const tsBuild = JSON.parse(readFileSync(path.join(ROOT, 'tsconfig.build.json'), 'utf8')) as { include: string[] };
    const prepareFiles = pkg.scripts['prepare']!.split(/\s+/).filter((w) => /\.m?js$/.test(w));
    const needed = ['package.json', 'package-lock.json', '.npmrc', 'CMakeLists.txt', 'tsconfig.json', 'tsconfig.build.json', 'native/',
      ...tsBuild.include.map((g) => g.split('/')[0] + '/'), ...prepareFiles];
    const has = (f: string): boolean => sources.some((s) => s === f || (s.endsWith('/') && f.startsWith(s)));
    for (const f of needed) assert.ok(has(f), `the build stage copies ${f}`);
  });

  it('.dockerignore keeps local builds and model files out of the context, and not what the build needs', () => {
    for (const out of ['node_modules', 'build', 'dist', '.git', 'test/out', 'bench/out', 'node_modules/x/y.js']) {
      assert.ok(ignored(out), `${out} is excluded`);
    }
    // The image's models are the ones `npm ci` fetches and verifies, never a local copy.
    const manifest = JSON.parse(readFileSync(path.join(ROOT, 'models/manifest.json'), 'utf8')) as { models: { files: { path: string }[] }[] };
    for (const f of manifest.models.flatMap((m) => m.files)) assert.ok(ignored(`models/${f.path}`), `models/${f.path} is excluded`);
    for (const keep of ['models/manifest.json', 'models/model-files.mjs', 'models/fetch.mjs', 'models/model-files.d.mts', 'src/main.ts', 'native/pcm.cc']) {
      assert.ok(!ignored(keep), `${keep} is in the context`);
    }
  });

  it('every runtime COPY --from=build path is produced by the build (present here after npm ci)', () => {
    const paths = runtimePaths();
    assert.ok(paths.length >= 5);
    for (const p of paths) assert.ok(existsSync(path.join(ROOT, p)), `${p} exists after npm ci`);
  });

  it('the runtime stage holds everything the server reads at run time', () => {
    const entry = pkg.scripts['start']!.split(/\s+/).at(-1)!;
    // The addon finds libonnxruntime through its RUNPATH, relative to build/Release/.
    const rpath = /INSTALL_RPATH "\$ORIGIN\/([^"]+)"/.exec(readFileSync(path.join(ROOT, 'CMakeLists.txt'), 'utf8'));
    assert.ok(rpath, 'CMakeLists.txt sets the addon\'s INSTALL_RPATH');
    const ort = path.posix.join('build/Release', rpath[1]!, 'libonnxruntime.so.1');
    // Paths the sources resolve against the project root at run time.
    const fromRoot = sourceFiles('src').flatMap((f) => [...readFileSync(f, 'utf8').matchAll(/path\.join\(PROJECT_ROOT, '([^']+)'\)/g)].map((m) => m[1]!));
    assert.ok(fromRoot.includes('build/Release/speech_native.node') && fromRoot.includes('src/web'), `found ${fromRoot.join(', ')}`);
    const manifest = JSON.parse(readFileSync(path.join(ROOT, 'models/manifest.json'), 'utf8')) as { models: { files: { path: string }[] }[] };
    const models = ['models/manifest.json', ...manifest.models.flatMap((m) => m.files.map((f) => `models/${f.path}`))];
    assert.equal(pkg.type, 'module', 'package.json makes dist/*.js ES modules: it must ship');
    for (const f of ['package.json', entry, ort, ...fromRoot, ...models]) {
      assert.ok(existsSync(path.join(ROOT, f)), `${f} exists here`);
      assert.ok(inRuntime(f), `the runtime stage has ${f}`);
    }
  });

  it('the server needs no devDependency at run time (npm prune --omit=dev keeps what it imports)', () => {
    const files = [...sourceFiles('src'), path.join(ROOT, 'models/model-files.mjs')];
    const used = new Set<string>();
    for (const f of files) {
      const text = readFileSync(f, 'utf8');
      for (const m of text.matchAll(/^\s*import\s+(?!type\s)(?:[^'"]*?\sfrom\s+)?'([^'.][^']*)'|import\('([^'.][^']*)'\)|require\('([^'.][^']*)'\)|`([a-zA-Z@][\w.@/-]*)\/binaries\//gm)) {
        const spec = m[1] ?? m[2] ?? m[3] ?? m[4]!;
        if (spec.startsWith('node:')) continue;
        used.add(spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!);
      }
    }
    for (const name of ['uWebSockets.js', 'prom-client', '@opentelemetry/api']) assert.ok(used.has(name), `found the import of ${name}`);
    for (const name of used) assert.ok(name in pkg.dependencies, `${name} (imported at run time) is a dependency, not a devDependency`);
  });

  it('listens on 0.0.0.0 at the server\'s default port, as a non-root user, stopped by SIGTERM', () => {
    const env = runtime.instructions.filter((i) => i.keyword === 'ENV').flatMap((i) => i.args.split(/\s+/));
    assert.ok(env.includes('HOST=0.0.0.0'), `ENV HOST=0.0.0.0: ${env.join(' ')}`);
    assert.equal(Number(one(runtime, 'EXPOSE').args), loadConfig({}, []).port);
    const user = one(runtime, 'USER').args;
    assert.match(user, /^[1-9]\d*(:\d+)?$/, 'a numeric non-root uid (runAsNonRoot can verify it)');
    const deployment = parseAllDocuments(readFileSync(path.join(ROOT, 'deploy/k8s/deployment.yaml'), 'utf8'))[0]!.toJS() as
      { spec: { template: { spec: { securityContext?: { runAsUser?: number } } } } };
    assert.equal(deployment.spec.template.spec.securityContext?.runAsUser, Number(user.split(':')[0]), 'the Deployment runs as the image\'s user');
    assert.equal(one(runtime, 'STOPSIGNAL').args, 'SIGTERM');
  });

  it('CMD is what `npm start` runs, in exec form so node itself gets the signal', () => {
    const cmd = one(runtime, 'CMD').args;
    assert.ok(cmd.startsWith('['), 'exec form');
    assert.deepEqual(JSON.parse(cmd), pkg.scripts['start']!.trim().split(/\s+/));
    assert.equal(runtime.instructions.filter((i) => i.keyword === 'ENTRYPOINT').length, 0, 'no ENTRYPOINT in front of it');
  });

  it('deploy/docker-compose.yml builds this Dockerfile, and maps the port the image exposes', () => {
    const compose = parseAllDocuments(readFileSync(path.join(ROOT, 'deploy/docker-compose.yml'), 'utf8'))[0]!.toJS() as
      { services: Record<string, { build?: { context?: string; dockerfile?: string }; ports?: string[] }> };
    const built = Object.values(compose.services).filter((s) => s.build);
    assert.equal(built.length, 1, 'one service is built');
    const { context, dockerfile } = built[0]!.build!;
    assert.ok(context !== undefined, 'a build context');
    const contextDir = path.resolve(ROOT, 'deploy', context);
    assert.equal(contextDir, ROOT, 'the context is the repository root');
    assert.equal(path.resolve(contextDir, dockerfile ?? 'Dockerfile'), path.join(ROOT, 'Dockerfile'));
    const exposed = one(runtime, 'EXPOSE').args;
    assert.ok((built[0]!.ports ?? []).some((p) => String(p).split(':').at(-1) === exposed), `compose maps container port ${exposed}`);
  });

  it('the .dockerignore matcher follows Docker\'s rules', () => {
    // Whatever the file says, these follow from the rules for the patterns in it.
    assert.equal(ignored('node_modules/a/b'), true, 'a child of an excluded folder');
    assert.equal(ignored('models/silero-vad/silero_vad.onnx'), true);
    assert.equal(ignored('models/model-files.mjs'), false, 'an exception after the pattern wins');
    assert.equal(ignored('src/web/app.js'), false);
  });
});
