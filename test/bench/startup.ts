// Time from exec to the first MQTT CONNACK, the single executable against `node dist/cli.js`, and the
// resident memory once ready. Needs `npm run build` and `npm run build:binary` first.
// node --import tsx test/bench/startup.ts [--runs 15]
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { freePort } from '../helpers/ports.js';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '15' } } });
const runs = Number(values.runs);

const root = (rel: string) => fileURLToPath(new URL(`../../${rel}`, import.meta.url));
const BINARY = root('build/out/vigil-linux-x64');
const CLI = root('dist/cli.js');

interface Mode {
  readonly name: string;
  readonly command: readonly string[];
}

const MODES: readonly Mode[] = [
  { name: `node ${process.version} dist/cli.js`, command: [process.execPath, CLI] },
  { name: 'vigil-linux-x64', command: [BINARY] },
];

// MQTT 3.1.1 CONNECT, clean session, keepalive 60 s, client id "bench" [MQTT-3.1].
const CONNECT = Buffer.from([
  0x10, 17, 0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, 0x04, 0x02, 0x00, 0x3c, 0x00, 0x05, 0x62, 0x65, 0x6e, 0x63,
  0x68,
]);

/** Resolves once the port answers a CONNECT with a CONNACK; retries while nothing listens. */
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
    if (gone()) throw new Error('the gateway exited before it accepted a connection');
    if (performance.now() > deadline) throw new Error(`no CONNACK on port ${port}`);
    await new Promise((r) => setTimeout(r, 1));
  }
}

/** CPU time the process used so far, all threads, in ms (clock ticks of 10 ms): less sensitive than
 * wall time to other work on the machine. */
function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // utime and stime are fields 14 and 15 of proc(5), 12 and 13 after the command name.
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

function rssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? NaN);
  return kb / 1024;
}

interface Sample {
  readonly ms: number;
  readonly cpuMs: number;
  readonly rssMb: number;
}

/** One start: exec, first CONNACK, CPU time and RSS, then SIGTERM. */
async function startOnce(mode: Mode, dataDir: string): Promise<Sample> {
  const port = await freePort();
  const [cmd, ...args] = mode.command;
  let out = '';
  const t0 = performance.now();
  const child = spawn(
    cmd ?? '',
    [
      ...args,
      'run',
      '--data',
      dataDir,
      '--mqtt-host',
      '127.0.0.1',
      '--mqtt-port',
      String(port),
      '--http-port',
      '0',
    ],
    { env: { PATH: '/usr/bin:/bin' }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  // `run` installs its SIGTERM handler just after it prints its ports; a signal in between kills it
  // outright, so the bench waits for the line and a moment more before it stops the gateway.
  const started = new Promise<void>((resolve) => {
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('http listening on')) resolve();
    });
  });
  try {
    await firstConnack(port, t0 + 20_000, () => child.exitCode !== null || child.signalCode !== null);
    const ms = performance.now() - t0;
    const sample = { ms, cpuMs: cpuMs(child.pid ?? 0), rssMb: rssMb(child.pid ?? 0) };
    await started;
    await new Promise((r) => setTimeout(r, 50));
    return sample;
  } catch (err) {
    throw new Error(`${mode.name}: ${(err as Error).message}\n${out}`, { cause: err });
  } finally {
    child.kill('SIGTERM');
    const code = await exited;
    if (code !== 0) console.error(`${mode.name} exited with ${code}`);
  }
}

function quantile(xs: readonly number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? NaN;
}

function summary(xs: readonly number[]): string {
  const at = (q: number) => quantile(xs, q).toFixed(0).padStart(4);
  return `median ${at(0.5)}  min ${at(0)}  p90 ${at(0.9)}  max ${at(1)}`;
}

async function main(): Promise<void> {
  for (const need of [BINARY, CLI]) {
    if (!existsSync(need)) throw new Error(`${need} is missing: run npm run build and npm run build:binary`);
  }
  const scratch = await mkdtemp(join(tmpdir(), 'vigil-startup-'));
  try {
    // "first": an empty data directory every time (the executable also writes out its addons);
    // "again": the same data directory as the previous start, as after a reboot.
    const results = new Map<string, Sample[]>();
    const record = (key: string, sample: Sample) => results.set(key, [...(results.get(key) ?? []), sample]);
    // The warm-up start creates each mode's "again" data directory.
    for (const [m, mode] of MODES.entries()) await startOnce(mode, join(scratch, `again-${m}`));
    for (let i = 0; i < runs; i++) {
      // Interleaved, so that a slower moment of the machine hits both alike.
      for (const [m, mode] of MODES.entries()) {
        record(`${mode.name}, first start`, await startOnce(mode, join(scratch, `first-${m}-${i}`)));
        record(`${mode.name}, again`, await startOnce(mode, join(scratch, `again-${m}`)));
      }
    }
    console.log(`exec -> first MQTT CONNACK, ms, ${runs} runs each (after one warm-up start)`);
    for (const [key, samples] of results) {
      const med = (f: (x: Sample) => number) => quantile(samples.map(f), 0.5).toFixed(0);
      console.log(
        `  ${key.padEnd(40)} ${summary(samples.map((x) => x.ms))}   CPU median ${med((x) => x.cpuMs)} ms` +
          `   RSS median ${med((x) => x.rssMb)} MB`,
      );
    }
    const mb = (path: string) => (statSync(path).size / 1024 / 1024).toFixed(1);
    console.log(
      `size: vigil-linux-x64 ${mb(BINARY)} MB; node ${mb(process.execPath)} MB + dist/ + node_modules/`,
    );
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

await main();
