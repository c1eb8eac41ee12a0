// `npm run build:binary`: the gateway as one executable per target, build/out/vigil-linux-{x64,arm64}.
// Node's single executable applications (SEA) on the official Node binaries; see docs/binary.md.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { constants as zlibConstants, zstdCompressSync } from 'node:zlib';
import { bundle, bundleLoader } from './bundle.js';
import { fetchPackage } from './fetch-package.js';
import { GATEWAY_NODE_FLAGS } from './node-flags.js';
import { MODULE_FILES, type TreeEntry } from './module-files.js';
import {
  CBOR_EXTRACT_PACKAGES,
  CBOR_EXTRACT_VERSION,
  CLASSIC_LEVEL_PREBUILDS,
  NODE_ABI,
  NODE_PACKAGES,
  NODE_VERSION,
  TARGETS,
  type Target,
} from './pins.js';
import { APP_ASSET, APP_CODE_CACHE_ASSET, APP_LINE_OFFSET, wrapApp } from './sea/app-script.js';
import { sha256 } from './sea/embedded-files.js';
import {
  MANIFEST_ASSET,
  type AddonName,
  type EmbeddedAddon,
  type EmbeddedFile,
  type Manifest,
} from './sea/manifest.js';

/** The code cache embedded, compressed as the loader reads it (build/sea/app-script.ts). */
const APP_CODE_CACHE_FILE = 'app.code-cache.zst';
const ZSTD_MAX = {
  params: { [zlibConstants.ZSTD_c_compressionLevel]: 19, [zlibConstants.ZSTD_c_windowLog]: 17 },
};

/** A code cache as the loader reads it: its length, then the code cache compressed with zstd. */
function packCodeCache(data: Buffer): Buffer {
  const length = Buffer.alloc(4);
  length.writeUInt32LE(data.length);
  return Buffer.concat([length, zstdCompressSync(data, ZSTD_MAX)]);
}

/** Asset read by src/cli/version.ts in the executable. */
const BUILD_INFO_ASSET = 'vigil/build-info.json';
const SEA_FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const OUT = join(ROOT, 'build', 'out');
const CACHE = join(OUT, '.cache');
const WORK = join(OUT, '.work');

interface Asset {
  readonly key: string;
  readonly file: string;
}

const USAGE = `Usage: npm run build:binary -- [options]

Builds the gateway as one executable per target: build/out/vigil-linux-{x64,arm64} (docs/binary.md).

  --target x64|arm64   a target to build (repeatable; default both)
  --snapshot           carry a V8 startup snapshot instead of the code cache, for the target this machine
                       runs (not the default; docs/binary.md says why)
  --help               this text
`;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      target: { type: 'string', multiple: true },
      snapshot: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
    allowNegative: true,
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return;
  }
  const targets = (values.target ?? [...TARGETS]).map(parseTarget);
  const host = parseTarget(process.arch);
  const started = performance.now();

  mkdirSync(OUT, { recursive: true });
  const bundled = await step(
    'bundle src/cli/main.ts',
    () =>
      bundle({
        root: ROOT,
        entry: join(ROOT, 'src', 'cli', 'main.ts'),
        outFile: join(OUT, 'vigil.cjs'),
        seaDir: join(ROOT, 'build', 'sea'),
      }),
    (r) => `${r.inputs} modules, ${mb(r.bytes)}`,
  );
  // The executable's main script, which compiles the bundle above with V8's code cache (build/sea/loader.ts).
  await step(
    'bundle build/sea/loader.ts',
    () =>
      bundleLoader({
        root: ROOT,
        outFile: join(OUT, 'vigil-main.cjs'),
        appKey: sha256(readFileSync(join(OUT, 'vigil.cjs'))).slice(0, 16),
      }),
    (bytes) => `${(bytes / 1024).toFixed(1)} KB`,
  );
  // The edge thread's module (`threads: 2`), a file of its own in the executable's files for a worker to load.
  const edgeBundle = await step(
    'bundle src/app/edge-thread.ts',
    () =>
      bundle({
        root: ROOT,
        entry: join(ROOT, 'src', 'app', 'edge-thread.ts'),
        outFile: join(OUT, 'edge-thread.cjs'),
        seaDir: join(ROOT, 'build', 'sea'),
        kind: 'edge-thread',
      }),
    (r) => `${r.inputs} modules, ${mb(r.bytes)}`,
  );
  const withFiles = edgeBundle.importMetaUsers.filter((m) => (MODULE_FILES[m] ?? []).length > 0);
  if (withFiles.length > 0)
    throw new Error(`the edge thread has no files, but ${withFiles.join(', ')} reads some`);
  const tree = treeEntries([...bundled.importMetaUsers, ...edgeBundle.importMetaUsers]);
  // The blob must come from exactly the Node version it runs on: the host's copy of the pinned one.
  const generator = await step(`fetch node ${NODE_VERSION} for ${host}`, () => nodeBinary(host));
  for (const target of targets) {
    await makeExecutable(target, target === host, generator, tree, values.snapshot);
  }
  // Every executable in build/out, also one built earlier for a target not asked for this time.
  const sums = readdirSync(OUT)
    .filter((f) => f.startsWith('vigil-linux-'))
    .map((f) => `${sha256(readFileSync(join(OUT, f)))}  ${f}`);
  writeFileSync(join(OUT, 'SHA256SUMS'), `${sums.join('\n')}\n`);
  console.log(`done in ${seconds(performance.now() - started)}`);
}

async function makeExecutable(
  target: Target,
  isHost: boolean,
  generator: string,
  tree: Readonly<Record<string, readonly TreeEntry[]>>,
  snapshot: boolean,
): Promise<string> {
  const work = join(WORK, target);
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  const exe = join(OUT, `vigil-linux-${target}`);

  const assets = await step(
    `${target}: collect files, native addons, build info`,
    () => collectAssets(target, work, tree),
    (list) => `${list.length} assets`,
  );
  const blob = join(work, 'sea.blob');
  let kind = await seaBlob(target, isHost && snapshot, isHost, generator, { work, blob, assets });
  await inject(target, exe, blob);
  if (isHost) await checkVersion(target, exe, work, kind);
  if (kind === 'code cache') {
    // The code cache of a start, in place of the top level's: a first run then compiles almost nothing.
    const started = await step(`${target}: code cache of a start`, () => codeCacheOfStart(exe, work));
    if (started !== undefined) {
      writeFileSync(join(work, APP_CODE_CACHE_FILE), packCodeCache(started));
      await step(
        `${target}: SEA blob with that code cache`,
        () => rewriteBlob(generator, work),
        () => mb(statSync(blob).size),
      );
      await inject(target, exe, blob);
      kind = 'code cache of a start';
      await checkVersion(target, exe, work, kind);
    }
  }
  return exe;
}

/** Copies the target's Node, strips it and injects the blob: `exe`. */
async function inject(target: Target, exe: string, blob: string): Promise<void> {
  const base = nodeBinary(target);
  await step(
    `${target}: copy and strip node ${NODE_VERSION}`,
    () => {
      rmSync(exe, { force: true });
      copyFileSync(base, exe);
      chmodSync(exe, 0o755);
      return strip(exe, target);
    },
    (stripped) =>
      `${mb(statSync(base).size)} -> ${mb(statSync(exe).size)}${stripped ? '' : ' (no strip tool for this target)'}`,
  );
  const postject = join(ROOT, 'node_modules', 'postject', 'dist', 'cli.js');
  await step(
    `${target}: inject`,
    () => run(process.execPath, [postject, exe, 'NODE_SEA_BLOB', blob, '--sentinel-fuse', SEA_FUSE]),
    () => `${relative(ROOT, exe)} ${mb(statSync(exe).size)}`,
  );
}

/** The host's executable must say that it uses its native addons. */
async function checkVersion(target: Target, exe: string, work: string, kind: string): Promise<void> {
  const out = await step(
    `${target}: check --version (${kind})`,
    () => run(exe, ['--version'], work, { VIGIL_CACHE_DIR: join(work, 'cache') }),
    (o) => o.trim().split('\n').join('; '),
  );
  if (!/leveldb native/.test(out) || !/cbor native/.test(out)) {
    throw new Error(`the executable does not use its native addons:\n${out}`);
  }
}

/** How long the build waits for a start of the executable to leave its code cache. */
const START_WITHIN_MS = 60_000;

/**
 * V8's code cache of the bundle as a start of `vigil run` leaves it (build/sea/loader.ts): the executable
 * started in an empty folder with the shipped rules, on loopback ports picked by the system, with no
 * environment but `PATH`, stopped once it has written its code cache. Undefined (the build keeps the
 * top level's) when it cannot start here: the build says why.
 */
async function codeCacheOfStart(exe: string, work: string): Promise<Buffer | undefined> {
  const dir = join(work, 'start');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const cache = join(dir, 'cache');
  const args = ['run', '--data', join(dir, 'data'), '--mqtt-host', '127.0.0.1', '--mqtt-port', '0'];
  const child = spawn(exe, [...args, '--http-port', '0', '--log-level', 'warn'], {
    cwd: dir,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', VIGIL_CACHE_DIR: cache },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let said = '';
  child.stderr.on('data', (chunk: Buffer) => (said += chunk.toString()));
  const exited = new Promise<number | null>((done) => child.on('close', (code) => done(code)));
  let file: string | undefined;
  for (let waited = 0; waited < START_WITHIN_MS && child.exitCode === null; waited += 50) {
    file = existsSync(cache) ? readdirSync(cache).find((f) => /^code-[0-9a-f]+\.bin$/.test(f)) : undefined;
    if (file !== undefined) break;
    await new Promise((done) => setTimeout(done, 50));
  }
  child.kill('SIGTERM');
  const code = await exited;
  if (file === undefined || code !== 0) {
    console.log(`no code cache of a start (exit ${code}): keeping the top level's. ${said.trim()}`);
    return undefined;
  }
  // The loader's file: a CRC-32, then the code cache.
  return readFileSync(join(cache, file)).subarray(4);
}

/** The blob again from the config `seaBlob` wrote, after one of its assets changed. */
function rewriteBlob(generator: string, work: string): string {
  return run(generator, ['--experimental-sea-config', join(work, 'sea-config.json')], work);
}

/**
 * The bundle as the script the loader compiles (build/sea/app-script.ts), and for the host V8's code cache of
 * it, made by the Node the executable is built from (`generator`): like Node's own for a main script, it holds
 * the bundle's top level (compressed, as the loader reads it). `makeExecutable` then puts the code cache of a
 * start in its place.
 */
function appAssets(generator: string | undefined, work: string): Asset[] {
  const script = join(work, 'app-script.js');
  const source = wrapApp(readFileSync(join(OUT, 'vigil.cjs'), 'utf8'));
  // Written and read as Latin-1 (build/sea/loader.ts), one byte a character: esbuild escapes what is not ASCII
  // except in regular expressions, where it leaves a few Latin-1 letters (cel-js's `µs`).
  const latin1 = Buffer.from(source, 'latin1');
  if (latin1.toString('latin1') !== source) {
    throw new Error('the bundle is not Latin-1: the loader would misread it');
  }
  writeFileSync(script, latin1);
  const assets: Asset[] = [{ key: APP_ASSET, file: script }];
  if (generator === undefined) return assets;
  const out = join(work, APP_CODE_CACHE_FILE);
  const make =
    'const { readFileSync, writeFileSync } = require("node:fs");' +
    'const { Script } = require("node:vm");' +
    `const s = new Script(readFileSync(process.argv[1], "latin1"), { lineOffset: ${APP_LINE_OFFSET} });` +
    'writeFileSync(process.argv[2], s.createCachedData());';
  run(generator, ['-e', make, script, out], work);
  writeFileSync(out, packCodeCache(readFileSync(out)));
  return [...assets, { key: APP_CODE_CACHE_ASSET, file: out }];
}

/**
 * Writes the SEA blob. For the host, with V8's code cache, or with `--snapshot` a V8 startup snapshot of
 * the bundle's modules when it builds (`useSnapshot`), else the code cache: either is made by running the
 * host's Node, which cannot run another target's, and the two cannot be combined. Says which it made.
 * Not the default: on Node 24.21 a worker thread started by a process restored from a user snapshot
 * aborts when it loads `net` (`shutdown_wrap_template_.IsEmpty()`), so `threads: 2` fails with it.
 */
async function seaBlob(
  target: Target,
  trySnapshot: boolean,
  isHost: boolean,
  generator: string,
  { work, blob, assets }: { work: string; blob: string; assets: readonly Asset[] },
): Promise<string> {
  const write = (useSnapshot: boolean): string => {
    const config = join(work, 'sea-config.json');
    // A snapshot is built by running the bundle as the main script. Otherwise the main script is the loader,
    // which compiles the bundle (an asset) with the code cache the build makes here, or with the one a start
    // of the executable kept.
    const app: Asset[] = useSnapshot ? [] : appAssets(isHost ? generator : undefined, work);
    const sea = {
      main: join(OUT, useSnapshot ? 'vigil.cjs' : 'vigil-main.cjs'),
      output: blob,
      disableExperimentalSEAWarning: true,
      // V8's code cache is specific to the CPU it was made on.
      useCodeCache: isHost && !useSnapshot,
      useSnapshot,
      execArgv: GATEWAY_NODE_FLAGS,
      assets: Object.fromEntries([...assets, ...app].map((a) => [a.key, a.file])),
    };
    writeFileSync(config, JSON.stringify(sea, null, 2));
    return run(generator, ['--experimental-sea-config', config], work);
  };
  if (trySnapshot) {
    try {
      await step(
        `${target}: SEA blob with startup snapshot`,
        () => write(true),
        () => mb(statSync(blob).size),
      );
      return 'startup snapshot';
    } catch (err) {
      const why =
        err instanceof Error ? err.message.trim().split('\n').slice(0, 12).join('\n  ') : String(err);
      console.log(`failed; falling back to the code cache. The snapshot builder said:\n  ${why}`);
    }
  }
  const kind = isHost ? 'code cache' : 'no code cache';
  await step(
    `${target}: SEA blob with ${kind}`,
    () => write(false),
    () => mb(statSync(blob).size),
  );
  return kind;
}

/** What the bundle's modules read beside themselves (module-files.ts), by module; fails for a module not listed. */
function treeEntries(importMetaUsers: readonly string[]): Record<string, readonly TreeEntry[]> {
  const unknown = importMetaUsers.filter((m) => !(m in MODULE_FILES));
  if (unknown.length > 0) {
    throw new Error(
      `${unknown.join(', ')} find files through import.meta.url: list what they read in build/module-files.ts`,
    );
  }
  return Object.fromEntries(importMetaUsers.map((m) => [m, MODULE_FILES[m] ?? []]));
}

function collectAssets(
  target: Target,
  work: string,
  tree: Readonly<Record<string, readonly TreeEntry[]>>,
): Asset[] {
  const assets: Asset[] = [];
  const embed = (key: string, file: string, path: string): EmbeddedFile => {
    const bytes = readFileSync(file);
    assets.push({ key, file });
    return { asset: key, path, sha256: sha256(bytes), bytes: bytes.length };
  };

  // By destination, so that a file listed twice (uPlot, once `npm run build` copied it) goes in once.
  const treeFiles = new Map<string, string>();
  // Each module's files, written out when that module first asks for its URL.
  const modules: Record<string, string[]> = {};
  for (const [module, entries] of Object.entries(tree)) {
    const paths = new Set<string>();
    for (const entry of entries) {
      const from = join(ROOT, entry.from);
      const to = entry.to ?? entry.from;
      if (!existsSync(from)) throw new Error(`${entry.from} is missing: it ships in the executable`);
      const found: Array<[string, string]> = statSync(from).isDirectory()
        ? listFiles(from).map((rel) => [`${to}/${rel}`, join(from, rel)])
        : [[to, from]];
      for (const [path, file] of found) {
        treeFiles.set(path, file);
        paths.add(path);
      }
    }
    modules[module] = [...paths].sort();
  }
  const files = [...treeFiles]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([to, from]) => embed(`files/${to}`, from, to));
  const treeHash = sha256(Buffer.from(files.map((f) => `${f.path}\0${f.sha256}\n`).join('')));

  const classicLevelDir = join(ROOT, 'node_modules', 'classic-level');
  const classicLevelVersion = packageVersionAt(classicLevelDir);
  const cborDir = fetchPackage(CBOR_EXTRACT_PACKAGES[target], CACHE);
  const cborFile = pickCborExtract(cborDir);
  const addonFile = (name: AddonName, file: string, source: string): EmbeddedAddon => {
    // Named by content, so that a newer executable never loads an older addon left in the cache.
    const hash = sha256(readFileSync(file));
    return { ...embed(`addons/${name}.node`, file, `${name}-${hash.slice(0, 16)}.node`), source };
  };
  const manifest: Manifest = {
    target: `linux-${target}`,
    addons: {
      'classic-level': addonFile(
        'classic-level',
        join(classicLevelDir, CLASSIC_LEVEL_PREBUILDS[target]),
        `classic-level@${classicLevelVersion} ${CLASSIC_LEVEL_PREBUILDS[target]}`,
      ),
      'cbor-extract': addonFile(
        'cbor-extract',
        join(cborDir, cborFile),
        `${CBOR_EXTRACT_PACKAGES[target].spec.replace(`@${CBOR_EXTRACT_VERSION}`, '')}@${CBOR_EXTRACT_VERSION} ${cborFile}`,
      ),
    },
    tree: { sha256: treeHash, files, modules },
  };
  const manifestFile = join(work, 'embedded.json');
  writeFileSync(manifestFile, JSON.stringify(manifest));
  assets.push({ key: MANIFEST_ASSET, file: manifestFile });

  const infoFile = join(work, 'build-info.json');
  const bundle = sha256(readFileSync(join(OUT, 'vigil.cjs')));
  writeFileSync(infoFile, JSON.stringify({ version: packageVersionAt(ROOT), commit: gitCommit(), bundle }));
  assets.push({ key: BUILD_INFO_ASSET, file: infoFile });
  return assets;
}

// The addon built against this Node's ABI when there is one, else the Node-API build; glibc only
// (musl is out of scope, docs/binary.md).
function pickCborExtract(dir: string): string {
  for (const name of [`node.abi${NODE_ABI}.glibc.node`, 'node.napi.glibc.node']) {
    if (readdirSync(dir).includes(name)) return name;
  }
  throw new Error(`no glibc build of cbor-extract in ${dir}`);
}

function nodeBinary(target: Target): string {
  return join(fetchPackage(NODE_PACKAGES[target], CACHE, ['bin/node']), 'bin', 'node');
}

/**
 * Strips symbols (not the dynamic ones addons link against) with the first tool that handles the
 * target: llvm-strip (Debian's llvm), binutils for that architecture, or the host's strip. False
 * when there is none: the executable then keeps its symbols, about 18 MB more.
 */
function strip(file: string, target: Target): boolean {
  const tools = ['llvm-strip', `${GNU_TRIPLES[target]}-strip`];
  if (target === parseTarget(process.arch)) tools.push('strip');
  const tool = tools.find((t) => spawnSync(t, ['--version']).status === 0);
  if (tool === undefined) return false;
  run(tool, [file]);
  return true;
}

const GNU_TRIPLES: Readonly<Record<Target, string>> = { x64: 'x86_64-linux-gnu', arm64: 'aarch64-linux-gnu' };

function listFiles(dir: string, prefix = ''): string[] {
  return readdirSync(join(dir, prefix), { withFileTypes: true })
    .sort((a, b) => a.name.localeCompare(b.name))
    .flatMap((e) => {
      const rel = prefix === '' ? e.name : `${prefix}/${e.name}`;
      if (e.isDirectory()) return listFiles(dir, rel);
      return e.isFile() ? [rel] : [];
    });
}

function packageVersionAt(dir: string): string {
  return (JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { version: string }).version;
}

/** The commit built, with `-dirty` when tracked files differ from it; `unknown` outside a git checkout. */
function gitCommit(): string {
  const git = (args: string[]) => execFileSync('git', args, { cwd: ROOT, encoding: 'utf8' }).trim();
  try {
    const commit = git(['rev-parse', '--short=12', 'HEAD']);
    return git(['status', '--porcelain', '--untracked-files=no']) === '' ? commit : `${commit}-dirty`;
  } catch {
    return 'unknown';
  }
}

function run(cmd: string, args: string[], cwd = ROOT, env: NodeJS.ProcessEnv = {}): string {
  const r = spawnSync(cmd, args, { cwd, env: { ...process.env, ...env }, encoding: 'utf8' });
  if (r.status !== 0) {
    const why = r.error?.message ?? `exit ${r.status ?? r.signal}`;
    throw new Error(`${cmd} ${args.join(' ')}: ${why}\n${r.stdout}${r.stderr}`);
  }
  return r.stdout;
}

/** Runs one step of the build and prints what it took, with a note about its result. */
async function step<T>(what: string, fn: () => T | Promise<T>, note?: (result: T) => string): Promise<T> {
  const t0 = performance.now();
  process.stdout.write(`${what} ... `);
  const result = await fn();
  const said = note?.(result);
  process.stdout.write(`${said ? `${said}, ` : ''}${seconds(performance.now() - t0)}\n`);
  return result;
}

function parseTarget(name: string): Target {
  const target = TARGETS.find((t) => t === name);
  if (target === undefined) throw new Error(`unknown target ${name}: expected one of ${TARGETS.join(', ')}`);
  return target;
}

const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MB`;
const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

main().catch((err: unknown) => {
  console.error(`\nbuild:binary failed: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
