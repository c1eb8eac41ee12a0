import { existsSync } from 'node:fs';
import { cp, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GATEWAY_NODE_FLAGS } from '../../build/node-flags.js';
import { waitForPort } from '../helpers/mosquitto.js';
import { freePort } from '../helpers/ports.js';
import { startServer, type ServerProcess } from './child-process.js';
import type { ReplyMode } from './load-protocol.js';
import { CLI, type VigilSetup } from './vigil-setup.js';

/** `vigil-2t`: Vigil with `--threads 2` (the device edge on a thread of its own). */
export type SystemName = 'vigil' | 'vigil-2t' | 'aedes' | 'mosquitto';

/** A broker or gateway the load generator drives, in its own process. */
export interface SystemUnderTest {
  readonly name: SystemName;
  readonly url: string;
  readonly pid: number;
  readonly mode: ReplyMode;
  readonly cloudUrl?: string;
  /** Device events it took in so far (Vigil's ingest count); undefined for a plain broker. */
  eventsIn(): Promise<number | undefined>;
  /** Its Prometheus metrics as text (Vigil); empty for a plain broker. */
  metrics(): Promise<string>;
  /** False once the process has exited. */
  alive(): boolean;
  /** What it printed (the end of it, for an error message). */
  output(): string;
  stop(): Promise<void>;
}

export const MOSQUITTO = '/usr/sbin/mosquitto';
const AEDES_RELAY = fileURLToPath(new URL('./aedes-relay.ts', import.meta.url));

export function hasMosquitto(): boolean {
  return existsSync(MOSQUITTO);
}

export async function startAedes(opts: { batchWrites: boolean }): Promise<SystemUnderTest> {
  const args = ['--import', 'tsx', AEDES_RELAY, ...(opts.batchWrites ? [] : ['--no-batch'])];
  const proc = await startServer(process.execPath, args, /listening on (\d+)/);
  return plainBroker('aedes', proc, Number(proc.ready[1]));
}

/** Debian's mosquitto on 127.0.0.1, anonymous, in memory, with TCP_NODELAY. */
export async function startMosquitto(): Promise<SystemUnderTest> {
  const port = await freePort();
  const dir = await mkdtemp(join(tmpdir(), 'vigil-bench-mosquitto-'));
  const conf = join(dir, 'mosquitto.conf');
  await writeFile(
    conf,
    [
      `listener ${port} 127.0.0.1`,
      'allow_anonymous true',
      'set_tcp_nodelay true',
      'persistence false',
      'log_dest stderr',
      'log_type error',
      '',
    ].join('\n'),
  );
  let proc: ServerProcess;
  try {
    proc = await startServer(MOSQUITTO, ['-c', conf], undefined);
    await waitForPort(port);
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  const system = plainBroker('mosquitto', proc, port);
  return {
    ...system,
    stop: async () => {
      await system.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

function plainBroker(name: SystemName, proc: ServerProcess, port: number): SystemUnderTest {
  return {
    name,
    url: `mqtt://127.0.0.1:${port}`,
    pid: proc.pid,
    mode: 'relay',
    eventsIn: () => Promise.resolve(undefined),
    metrics: () => Promise.resolve(''),
    alive: () => proc.child.exitCode === null && proc.child.signalCode === null,
    output: () => proc.output(),
    stop: () => proc.stop(),
  };
}

export interface VigilStartOptions {
  cloudUrl: string;
  /** The single binary to run rather than `node dist/cli.js`. */
  binary?: string | undefined;
  /** The rules directory: the shipped scenarios with or without the extra threshold scenarios. */
  rulesDir: string;
  /** Write a V8 CPU profile here when it stops (`node --cpu-prof`; not with the binary). */
  cpuProfDir?: string | undefined;
  /** More flags for node, after the executable's own (`GATEWAY_NODE_FLAGS`); not with the binary. */
  nodeFlags?: string[] | undefined;
  /** Its environment; default the benchmark's own. */
  env?: NodeJS.ProcessEnv | undefined;
  /** Run on this data directory as it is, and keep it (a restart); default a fresh copy of the template. */
  data?: string | undefined;
  /** Default `warn`. */
  logLevel?: string | undefined;
  /** `vigil run --threads`; default 1 (and the flag left out, for builds that do not know it). */
  threads?: 1 | 2 | undefined;
  /** A command the gateway runs under (`strace …`), its arguments first; not with the binary. */
  wrapper?: readonly string[] | undefined;
}

/** The gateway as users run it, on a fresh copy of the data directory with the profiles imported. */
export async function startVigil(setup: VigilSetup, opts: VigilStartOptions): Promise<SystemUnderTest> {
  const data = opts.data ?? (await mkdtemp(join(setup.workDir, 'data-')));
  if (opts.data === undefined) await cp(setup.dataTemplate, data, { recursive: true });
  const runArgs = [
    'run',
    '--config',
    setup.configFile,
    '--data',
    data,
    '--rules',
    opts.rulesDir,
    '--mqtt-host',
    '127.0.0.1',
    '--mqtt-port',
    '0',
    '--http-port',
    '0',
    '--upstream',
    opts.cloudUrl,
    '--gateway-id',
    // Each its own: two gateways with one id would take each other's connection to the cloud broker.
    opts.threads === 2 ? 'bench-2t' : 'bench',
    '--log-level',
    opts.logLevel ?? 'warn',
    ...(opts.threads === 2 ? ['--threads', '2'] : []),
  ];
  // The flags the executable is built with come first, so that `node dist/cli.js` runs as it does.
  const nodeFlags = [
    ...GATEWAY_NODE_FLAGS,
    ...(opts.cpuProfDir !== undefined ? ['--cpu-prof', '--cpu-prof-dir', opts.cpuProfDir] : []),
    ...(opts.nodeFlags ?? []),
  ];
  const [plain, plainArgs] =
    opts.binary !== undefined ? [opts.binary, runArgs] : [process.execPath, [...nodeFlags, CLI, ...runArgs]];
  const [command, args] =
    opts.wrapper === undefined || opts.wrapper.length === 0
      ? [plain, plainArgs]
      : [opts.wrapper[0] as string, [...opts.wrapper.slice(1), plain, ...plainArgs]];
  let proc: ServerProcess;
  try {
    proc = await startServer(
      command,
      args,
      /mqtt listening on \S+:(\d+)\n(?:.*\n)*?http listening on \S+:(\d+)/,
      {
        ...(opts.env !== undefined ? { env: opts.env } : {}),
      },
    );
  } catch (err) {
    await rm(data, { recursive: true, force: true });
    throw err;
  }
  const httpPort = Number(proc.ready[2]);
  return {
    name: opts.threads === 2 ? 'vigil-2t' : 'vigil',
    url: `mqtt://127.0.0.1:${Number(proc.ready[1])}`,
    pid: proc.pid,
    mode: 'vigil',
    cloudUrl: opts.cloudUrl,
    // Without the metrics (an HTTP API that wants a token) events are not counted: replies still are.
    eventsIn: () => metricsText(httpPort).then(deviceTelemetryIn, () => undefined),
    metrics: () => metricsText(httpPort),
    alive: () => proc.child.exitCode === null && proc.child.signalCode === null,
    output: () => proc.output(),
    stop: async () => {
      await proc.stop();
      if (opts.data === undefined) await rm(data, { recursive: true, force: true });
    },
  };
}

async function metricsText(httpPort: number): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${httpPort}/metrics`);
  if (!res.ok) throw new Error(`GET /metrics: ${res.status}`);
  return res.text();
}

/** Telemetry events from devices that ingest accepted, from the gateway's Prometheus metrics. */
function deviceTelemetryIn(metrics: string): number {
  let total = 0;
  for (const line of metrics.split('\n')) {
    if (!line.startsWith('vigil_events_in_total{')) continue;
    if (!line.includes('type="telemetry"') || !line.includes('source="device"')) continue;
    total += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return total;
}
