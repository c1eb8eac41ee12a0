import { readFile } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';
import { build, type Plugin } from 'esbuild';

/** A dependency's module replaced in the bundle, and what replaces it. */
interface Substitute {
  readonly what: string;
  readonly filter: RegExp;
  /** The replacement, given the original's source; undefined when the original is no longer as expected. */
  readonly contents: (seaDir: string, root: string, source: string) => string | undefined;
}

// mqtt-packet's writer makes a Buffer for each of the 65,536 16-bit numbers on its first packet (10 to 14 MB
// kept for good): off from the start, as src/broker/packet-number-cache.ts turns it off under node_modules.
const NO_PACKET_NUMBER_CACHE: Substitute = {
  what: 'mqtt-packet/writeToStream.js',
  filter: /[\\/]node_modules[\\/]mqtt-packet[\\/]writeToStream\.js$/,
  contents: (_seaDir, _root, source) => {
    const cached = 'let writeNumber = writeNumberCached\nlet toGenerate = true\n';
    if (!source.includes(cached)) return undefined;
    return source.replace(cached, 'let writeNumber = writeNumberGenerated\nlet toGenerate = false\n');
  },
};

// Each of these must be found, or the executable would look for files that are not there: the build
// fails when a dependency update moves one.
const APP_SUBSTITUTES: readonly Substitute[] = [
  NO_PACKET_NUMBER_CACHE,
  {
    // node-gyp-build looks for the addon next to the package; it is an asset instead. No JS fallback.
    what: 'classic-level/binding.js',
    filter: /[\\/]node_modules[\\/]classic-level[\\/]binding\.js$/,
    contents: (seaDir) =>
      `module.exports = require(${JSON.stringify(`${seaDir}/native-addon.ts`)}).levelDbBinding();\n`,
  },
  {
    // cbor-x catches a failure here and falls back to pure JavaScript, which `--version` reports. Its
    // `setExtractor` (decode.js, not exported by the package) takes the addon after a startup snapshot.
    what: 'cbor-extract/index.js',
    filter: /[\\/]node_modules[\\/]cbor-extract[\\/]index\.js$/,
    contents: (seaDir, root) =>
      `module.exports = require(${JSON.stringify(`${seaDir}/native-addon.ts`)}).cborExtract(\n` +
      `  (extractStrings) => require(${JSON.stringify(`${root}/node_modules/cbor-x/decode.js`)}).setExtractor(extractStrings),\n);\n`,
  },
  {
    // prom-client's index loads its Pushgateway, which requires `http` and `https` at load: a startup
    // snapshot cannot hold them, and the gateway never pushes. Required on first use instead.
    what: 'prom-client/lib/pushgateway.js',
    filter: /[\\/]node_modules[\\/]prom-client[\\/]lib[\\/]pushgateway\.js$/,
    contents: (_seaDir, _root, source) => {
      const lazy = source
        .replace("const http = require('http');", "const http = lazyBuiltin('http');")
        .replace("const https = require('https');", "const https = lazyBuiltin('https');");
      if (/require\('https?'\)/.test(lazy)) return undefined;
      return `const lazyBuiltin = (id) => new Proxy({}, { get: (_t, key) => require(id)[key] });\n${lazy}`;
    },
  },
  {
    // prom-client's index evaluates its Pushgateway (with `url` and `zlib`) at load; the gateway never pushes.
    what: 'prom-client/index.js',
    filter: /[\\/]node_modules[\\/]prom-client[\\/]index\.js$/,
    contents: (_seaDir, _root, source) => {
      const eager = "exports.Pushgateway = require('./lib/pushgateway');";
      if (!source.includes(eager)) return undefined;
      return source.replace(
        eager,
        "Object.defineProperty(exports, 'Pushgateway', { enumerable: true, get: () => require('./lib/pushgateway') });",
      );
    },
  },
  {
    // prom-client's CPU counters use OpenTelemetry only for exemplars, which the gateway never enables:
    // its 50 modules are evaluated on first use instead of at every start.
    what: 'prom-client/lib/metrics/processCpuTotal.js',
    filter: /[\\/]node_modules[\\/]prom-client[\\/]lib[\\/]metrics[\\/]processCpuTotal\.js$/,
    contents: (_seaDir, _root, source) => {
      const eager = "const OtelApi = require('@opentelemetry/api');";
      if (!source.includes(eager)) return undefined;
      return source.replace(
        eager,
        "let otelApi;\nconst OtelApi = new Proxy({}, { get: (_t, key) => (otelApi ??= require('@opentelemetry/api'))[key] });",
      );
    },
  },
  {
    // zod's namespace re-exports all of its 40-odd locales (400 KB), evaluated at load; the gateway's
    // messages are English, the locale zod sets itself (schemas.js imports en.js directly).
    what: 'zod/v4/locales/index.js',
    filter: /[\\/]node_modules[\\/]zod[\\/]v4[\\/]locales[\\/]index\.js$/,
    contents: (_seaDir, _root, source) =>
      source.includes('export { default as en } from "./en.js";')
        ? 'export { default as en } from "./en.js";\n'
        : undefined,
  },
  // `assert` (with its diff and call tracker), loaded at start only to check arguments that are always given.
  lazyAssert('mqemitter/mqemitter.js', /[\\/]node_modules[\\/]mqemitter[\\/]mqemitter\.js$/),
  lazyAssert('sonic-boom/index.js', /[\\/]node_modules[\\/]sonic-boom[\\/]index\.js$/),
  {
    // pino's transports run in a worker thread (thread-stream, which loads `worker_threads` and `assert`); the
    // gateway writes its log itself, so thread-stream is loaded only if a transport is ever made.
    what: 'pino/lib/transport.js',
    filter: /[\\/]node_modules[\\/]pino[\\/]lib[\\/]transport\.js$/,
    contents: (_seaDir, _root, source) => {
      const eager = "const ThreadStream = require('thread-stream')";
      if (source.split(eager).length !== 2) return undefined;
      return source.replace(
        eager,
        "let threadStream\nconst ThreadStream = function (opts) { return new (threadStream ??= require('thread-stream'))(opts) }",
      );
    },
  },
  {
    // aedes' client imports `util` whole for `util.inherits`. Bundled, a default import of a built-in copies
    // each of its properties' descriptors, and Node's `util` loads its lazy parts then (`parseArgs`, `diff`,
    // `worker_threads` for the SIGINT tracing): some 15 modules of Node at every start. A named import is not
    // copied.
    what: 'aedes/lib/client.js',
    filter: /[\\/]node_modules[\\/]aedes[\\/]lib[\\/]client\.js$/,
    contents: (_seaDir, _root, source) => {
      const whole = "import util from 'util'";
      const uses = new Set([...source.matchAll(/\butil\.(\w+)/g)].map((m) => m[1]));
      if (source.split(whole).length !== 2 || uses.size !== 1 || !uses.has('inherits')) return undefined;
      return source.replace(whole, "import { inherits } from 'util'\nconst util = { inherits }");
    },
  },
  {
    // pino asks whether it runs on the main thread only for an asynchronous destination; `worker_threads` then.
    what: 'pino/lib/tools.js',
    filter: /[\\/]node_modules[\\/]pino[\\/]lib[\\/]tools\.js$/,
    contents: (_seaDir, _root, source) => {
      const eager = "const { isMainThread } = require('worker_threads')";
      const use = 'if (!opts.sync && isMainThread) {';
      if (source.split(eager).length !== 2 || source.split(use).length !== 2) return undefined;
      return source
        .replace(eager, '')
        .replace(use, "if (!opts.sync && require('worker_threads').isMainThread) {");
    },
  },
  {
    // `debug` reads DEBUG at load; after a startup snapshot, that would be the build's. Read again then.
    what: 'debug/src/node.js',
    filter: /[\\/]node_modules[\\/]debug[\\/]src[\\/]node\.js$/,
    contents: (_seaDir, _root, source) =>
      afterSnapshot(source, 'module.exports.enable(module.exports.load());'),
  },
  {
    // pino takes the pid and host name for every line at load: the build's, after a startup snapshot.
    what: 'pino/pino.js',
    filter: /[\\/]node_modules[\\/]pino[\\/]pino\.js$/,
    contents: (_seaDir, _root, source) =>
      /^ {2}base: \{ pid, hostname \},$/m.test(source)
        ? afterSnapshot(source, 'defaultOptions.base = { pid: process.pid, hostname: os.hostname() };')
        : undefined,
  },
  {
    // prom-client's process_start_time_seconds, computed at load: the build's, after a startup snapshot.
    what: 'prom-client/lib/metrics/processStartTime.js',
    filter: /[\\/]node_modules[\\/]prom-client[\\/]lib[\\/]metrics[\\/]processStartTime\.js$/,
    contents: (_seaDir, _root, source) => {
      const start = 'startInSeconds = Math.round(Date.now() / 1000 - process.uptime());';
      if (!source.includes(`const ${start}`)) return undefined;
      return afterSnapshot(source.replace(`const ${start}`, `let ${start}`), start);
    },
  },
];

/**
 * A module that requires `assert` at load to check its arguments, with `assert` loaded when a check fails: the
 * same error then, from Node's `assert`.
 */
function lazyAssert(what: string, filter: RegExp): Substitute {
  const eager = ["const assert = require('assert')", "const assert = require('node:assert')"];
  return {
    what,
    filter,
    contents: (_seaDir, _root, source) => {
      const found = eager.find((e) => source.split(e).length === 2);
      return found === undefined
        ? undefined
        : source.replace(
            found,
            "const assert = (value, ...more) => { if (!value) require('assert')(value, ...more) }",
          );
    },
  };
}

/**
 * A CommonJS module's source with `code` run again when the executable starts from its startup
 * snapshot, for what the module computed at load from the process (its pid, environment, start time).
 */
function afterSnapshot(source: string, code: string): string {
  return (
    `${source}\n{\n  const { startupSnapshot } = require('node:v8');\n` +
    `  if (startupSnapshot.isBuildingSnapshot()) startupSnapshot.addDeserializeCallback(() => { ${code} });\n}\n`
  );
}

// The edge thread's bundle (`threads: 2`) is a file of its own that a worker thread loads: it reads no assets
// and opens no store. cbor-x runs there without its addon (as it does when the addon cannot load), and LevelDB
// must not be in it at all.
const EDGE_SUBSTITUTES: readonly Substitute[] = [
  NO_PACKET_NUMBER_CACHE,
  {
    what: 'cbor-extract/index.js',
    filter: /[\\/]node_modules[\\/]cbor-extract[\\/]index\.js$/,
    contents: () => `throw new Error('cbor-extract is not loaded on the edge thread');\n`,
  },
];

/** What a bundle is of: the command line (the executable's main), or the edge thread's module. */
export type BundleKind = 'app' | 'edge-thread';

/** mqtt-packet's `debug`, replaced by the quiet one (see the plugin). */
const QUIET_DEBUG = 'mqtt-packet → quiet debug';

export interface BundleResult {
  readonly bytes: number;
  readonly inputs: number;
  /** The app's modules in the bundle that use `import.meta.url`, by repository path. */
  readonly importMetaUsers: readonly string[];
}

/**
 * Bundles the command line into one CommonJS file, the only module format Node 24's single
 * executables run, with the native addons and the files modules read beside them redirected to the
 * executable's assets.
 */
export async function bundle(opts: {
  root: string;
  entry: string;
  outFile: string;
  seaDir: string;
  kind?: BundleKind;
}): Promise<BundleResult> {
  const edge = opts.kind === 'edge-thread';
  const substitutes = edge ? EDGE_SUBSTITUTES : APP_SUBSTITUTES;
  // The edge thread has no embedded files: a module there that looks for its own (quiet-debug.ts, which
  // expects to find nothing when bundled) gets no URL.
  const moduleUrlHelper = `${opts.seaDir}/${edge ? 'no-module-files.ts' : 'embedded-tree.ts'}`;
  const found = new Set<string>();
  const metaUsers = new Set<string>();
  const plugin: Plugin = {
    name: 'vigil-sea',
    setup(b) {
      for (const s of substitutes) {
        b.onLoad({ filter: s.filter }, async (args) => {
          const contents = s.contents(opts.seaDir, opts.root, await readFile(args.path, 'utf8'));
          if (contents === undefined) return undefined;
          found.add(s.what);
          return { contents, loader: 'js', resolveDir: dirname(args.path) };
        });
      }
      // mqtt-packet gets `debug` instances that check whether they are enabled before collecting their arguments
      // (src/broker/quiet-debug.ts); from node_modules that is done at run time, in the bundle here.
      b.onResolve({ filter: /^debug$/ }, (args) => {
        if (!/[\\/]node_modules[\\/]mqtt-packet[\\/]/.test(args.importer)) return undefined;
        found.add(QUIET_DEBUG);
        return { path: QUIET_DEBUG, namespace: 'vigil-quiet-debug', pluginData: args.resolveDir };
      });
      b.onLoad({ filter: /.*/, namespace: 'vigil-quiet-debug' }, (args) => ({
        contents:
          `const { quietDebugFactory } = require(${JSON.stringify(`${opts.root}/src/broker/quiet-debug.ts`)});\n` +
          `module.exports = quietDebugFactory(require('debug'));\n`,
        loader: 'js',
        resolveDir: args.pluginData as string,
      }));
      // CommonJS has no import.meta: each module gets its own URL inside the embedded files instead.
      b.onLoad({ filter: /\.ts$/ }, async (args) => {
        const rel = relative(opts.root, args.path).split(sep).join('/');
        if (!/^(src|firmware-sim)\//.test(rel)) return undefined;
        const source = await readFile(args.path, 'utf8');
        if (!source.includes('import.meta')) return undefined;
        metaUsers.add(rel);
        const helper = JSON.stringify(moduleUrlHelper);
        const body = source.replaceAll('import.meta.url', `__vigilModuleUrl(${JSON.stringify(rel)})`);
        if (body.includes('import.meta')) {
          return { errors: [{ text: `${rel}: only import.meta.url is supported in the executable` }] };
        }
        return {
          contents: `import { moduleUrl as __vigilModuleUrl } from ${helper};\n${body}`,
          loader: 'ts',
        };
      });
    },
  };
  const result = await build({
    absWorkingDir: opts.root,
    entryPoints: [opts.entry],
    outfile: opts.outFile,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node24',
    // Comments and white space are a third of the bundle, carried in the executable and held in memory as
    // the script's source: left out. Names are kept (stack traces and errors name their functions and
    // classes); positions in a stack trace are read with the source map written beside the bundle.
    minifyWhitespace: true,
    sourcemap: 'external',
    legalComments: 'eof',
    metafile: true,
    logLevel: 'silent',
    plugins: [plugin],
  });
  const missing = [...substitutes.map((s) => s.what), QUIET_DEBUG].filter((what) => !found.has(what));
  if (missing.length > 0) {
    throw new Error(`the bundle no longer loads ${missing.join(', ')}: update build/bundle.ts`);
  }
  for (const w of result.warnings) {
    process.stderr.write(
      `esbuild: ${w.location ? `${w.location.file}:${w.location.line}: ` : ''}${w.text}\n`,
    );
  }
  const stray = Object.keys(result.metafile.inputs).filter(
    (p) => /node-gyp-build|\.node$/.test(p) || (edge && /[\\/]classic-level[\\/]/.test(p)),
  );
  if (stray.length > 0) {
    throw new Error(`the bundle still loads addons from node_modules: ${stray.join(', ')}`);
  }
  const output = result.metafile.outputs[relative(opts.root, opts.outFile)];
  return {
    bytes: output?.bytes ?? 0,
    inputs: Object.keys(result.metafile.inputs).length,
    importMetaUsers: [...metaUsers].sort(),
  };
}

/**
 * Bundles the executable's main script (`build/sea/loader.ts`), which compiles the app's bundle with V8's
 * code cache; `appKey` names the code cache a start keeps for the starts that follow.
 */
export async function bundleLoader(opts: { root: string; outFile: string; appKey: string }): Promise<number> {
  const result = await build({
    absWorkingDir: opts.root,
    entryPoints: [join(opts.root, 'build', 'sea', 'loader.ts')],
    outfile: opts.outFile,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node24',
    minifyWhitespace: true,
    define: { VIGIL_APP_KEY: JSON.stringify(opts.appKey) },
    metafile: true,
    logLevel: 'silent',
  });
  const inputs = Object.keys(result.metafile.inputs).filter((p) => p.includes('node_modules'));
  if (inputs.length > 0) throw new Error(`the loader must not bundle dependencies: ${inputs.join(', ')}`);
  return result.metafile.outputs[relative(opts.root, opts.outFile)]?.bytes ?? 0;
}
