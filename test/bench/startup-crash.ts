// The crash part of the startup section: the gateway SIGKILLed in the middle of sustained load, restarted on the
// same data directory, timed from exec until it decides again (its `state recovered` log line, which also says
// how long recovery took and what it replayed); right after, the devices that were under load reconnect all at
// once, and a plain aedes takes the same storm in the same run. The storm comes from many source addresses (every
// address of 127.0.0.0/8 is loopback on Linux), as a fleet does; a second storm is one site behind NAT: hundreds
// of devices from one address, within the gateway's limit of connections without CONNECT per address.
import { cp, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startCloudBroker } from './cloud-broker.js';
import { LoadGenClient } from './load-gen-client.js';
import { cpuSeconds } from './proc-stats.js';
import type { TargetRecord } from './results.js';
import { startAedes, startVigil, type SystemUnderTest } from './systems.js';
import { benchSecret, prepareVigil, type VigilSetup } from './vigil-setup.js';

export interface CrashOptions {
  /** Restarts after a SIGKILL (0 skips the crash part); the figures are medians over them. */
  readonly runs: number;
  /** Telemetry events per second across the fleet while the gateway is killed. */
  readonly rate: number;
  /** Devices under load, each a live group with its silence timer; all of them reconnect in the storm. */
  readonly devices: number;
  /** How long the load runs before the SIGKILL. */
  readonly loadMs: number;
  /** Devices of the storm that share one source address (1: each its own). */
  readonly perAddress: number;
  /** Devices of the NAT storm, all from one address (0 skips it). */
  readonly natDevices: number;
  /** Live groups wanted at the kill: windowed scenarios are added until each device holds its share. */
  readonly groups: number;
  /** A CPU profile of each restarted gateway is written here (`--cpu-prof`), when set. */
  readonly cpuProfDir?: string | undefined;
  /**
   * When set, the gateways of the crash part log at `debug` (each checkpoint's `checkpoint written` line: how long it
   * took to encode and then to wait for its writes), and each one's output is written here.
   */
  readonly logDir?: string | undefined;
  /**
   * Storms against a freshly started gateway (nothing to replay) and a plain aedes, in turn (0: none): the connect
   * path alone, without the crash.
   */
  readonly stormRuns: number;
  /** The single executable to crash and restart, when it was built; else `node dist/cli.js`. */
  readonly binary?: string | undefined;
  /** `vigil run --threads`: 2 puts the device edge on a thread of its own, beside the replay. */
  readonly threads: 1 | 2;
  readonly log: (message: string) => void;
}

/** The `state recovered` line's figures (src/runtime/durable-inputs.ts). */
interface Recovered {
  readonly checkpoint: number | null;
  readonly replayed: number;
  /** The replay alone (older gateways do not log it). */
  readonly replayMs?: number;
  readonly ms: number;
  readonly pendingTimers: number;
  readonly recordedMeanwhile: number;
}

export interface CrashRun {
  /** Silence timers pending just before the SIGKILL (vigil_pending_timers). */
  readonly timersBefore: number;
  /** Groups the scenarios hold just before the SIGKILL (vigil_engine_groups). */
  readonly groupsBefore: number;
  /** Device events a second the gateway took in during the load (vigil_events_in_total over the load). */
  readonly takenPerS: number;
  /** Checkpoints written during the load, and the size of the last (vigil_checkpoints_total, vigil_checkpoint_bytes). */
  readonly checkpoints: number;
  readonly checkpointBytes: number;
  /** The checkpoint the restarted gateway wrote after its recovery (the whole state at the kill): size and time. */
  readonly recoveredCheckpoint: { bytes: number; seconds: number };
  /** Exec of the restart → its `state recovered` line, ms. */
  readonly decidingMs: number;
  readonly recovered: Recovered;
  /** The storm: all devices at once against the restarted gateway, then against a plain aedes. */
  readonly storm: { vigil: Storm; aedes: Storm };
  /** Then `natDevices` from one address, against the same gateway and the same aedes. */
  readonly nat?: { vigil: Storm; aedes: Storm };
  /** vigil_pending_timers once the storm is in. */
  readonly timersAfterStorm: number;
}

interface Storm {
  readonly ms: number;
  readonly connected: number;
  readonly failed: number;
  /** Up to three reasons the load generator saw for connections that failed. */
  readonly why: readonly string[];
  /** CPU the system took (all its threads) while the storm ran, ms. */
  readonly cpuMs: number;
}

export interface CrashRecord {
  readonly rate: number;
  readonly devices: number;
  readonly loadMs: number;
  readonly perAddress: number;
  readonly natDevices: number;
  /** What was killed and restarted. */
  readonly gateway: string;
  readonly runs: CrashRun[];
  /** The storms against a freshly started gateway, without a crash. */
  readonly storms: StormRun[];
}

/** One storm against a freshly started gateway and against a plain aedes, and which took it first. */
export interface StormRun {
  readonly vigil: Storm;
  readonly aedes: Storm;
  readonly vigilFirst: boolean;
  /** The load average (1 minute) before and after. */
  readonly load: readonly [number, number];
}

/** The fleet's shape under load: its profiles, and the devices' rotation and readings (firmware-sim). */
export const FLEET = { sites: 5_000, customers: 25_000, seed: 1 };

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[mid] ?? NaN) : ((s[mid - 1] ?? NaN) + (s[mid] ?? NaN)) / 2;
}

function checkpointsWritten(metrics: string): number {
  const line = metrics.split('\n').find((l) => l.startsWith('vigil_checkpoints_total{result="written"}'));
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(' ') + 1));
}

function gauge(metrics: string, name: string): number {
  const line = metrics.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? NaN : Number(line.slice(name.length + 1));
}

/** Waits for the `state recovered` JSON log line and resolves to when it appeared and what it says. */
async function recoveredLine(sut: SystemUnderTest, t0: number): Promise<{ atMs: number; line: Recovered }> {
  for (;;) {
    const out = sut.output();
    const at = out.indexOf('"msg":"state recovered"');
    if (at >= 0) {
      const atMs = performance.now() - t0;
      const start = out.lastIndexOf('\n', at) + 1;
      const end = out.indexOf('\n', at);
      return { atMs, line: JSON.parse(out.slice(start, end < 0 ? undefined : end)) as Recovered };
    }
    if (!sut.alive()) throw new Error(`the restarted gateway exited:\n${out.slice(-4_000)}`);
    if (performance.now() - t0 > 120_000) throw new Error('no "state recovered" line within 2 minutes');
    await sleep(2);
  }
}

/**
 * A storm of `devices` connections at once, `perAddress` of them from each source address, from a load generator
 * of its own; all closed again before it resolves.
 */
async function storm(
  sut: SystemUnderTest,
  devices: number,
  secret: string,
  perAddress: number,
): Promise<Storm> {
  const gen = LoadGenClient.start();
  try {
    const cpuBefore = cpuSeconds(sut.pid);
    const r = await gen.request(
      { kind: 'idle', url: sut.url, connections: devices, idPrefix: 'dev-', secret, storm: true, perAddress },
      'idle',
    );
    const cpuMs = (cpuSeconds(sut.pid) - cpuBefore) * 1_000;
    return { ms: r.ms, connected: r.connected, failed: r.failed ?? 0, why: r.why ?? [], cpuMs };
  } finally {
    await gen.stop();
  }
}

/** The gateway of the crash part on `data`, logging at `info`; with a CPU profile written to `cpuProfDir` when set. */
function startOn(
  o: CrashOptions,
  setup: VigilSetup,
  at: { rulesDir: string; cloudUrl: string; data: string; cpuProfDir?: string | undefined },
): Promise<SystemUnderTest> {
  const { cpuProfDir } = at;
  return startVigil(setup, {
    cloudUrl: at.cloudUrl,
    rulesDir: at.rulesDir,
    logLevel: o.logDir === undefined ? 'info' : 'debug',
    data: at.data,
    binary: o.binary,
    threads: o.threads,
    // The executable takes V8's flags from NODE_OPTIONS, as Node does.
    ...(cpuProfDir === undefined
      ? {}
      : o.binary === undefined
        ? { cpuProfDir }
        : { env: { ...process.env, NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${cpuProfDir}` } }),
  });
}

/** One crash: load, SIGKILL, restart on the same data, the storm against it and against a plain aedes. */
async function crashOnce(
  o: CrashOptions,
  setup: VigilSetup,
  rulesDir: string,
  cloudUrl: string,
  secret: string,
  run: number,
): Promise<CrashRun> {
  const data = await mkdtemp(join(setup.workDir, 'data-'));
  await cp(setup.dataTemplate, data, { recursive: true });
  const start = (cpuProfDir?: string): Promise<SystemUnderTest> =>
    startOn(o, setup, { rulesDir, cloudUrl, data, cpuProfDir });
  const first = await start();
  const gen = LoadGenClient.start();
  let restarted: SystemUnderTest | undefined;
  try {
    await gen.request(
      { kind: 'connect', url: first.url, devices: o.devices, ...FLEET, mode: 'vigil', secret, cloudUrl },
      'connected',
    );
    const load = gen.request(
      { kind: 'load', rate: o.rate, qos: 0, warmupMs: 0, measureMs: o.loadMs + 5_000, drainMs: 0 },
      'loaded',
    );
    const atLoad = await first.metrics();
    const inAtStart = (await first.eventsIn()) ?? NaN;
    const loadStarted = performance.now();
    await sleep(o.loadMs);
    const before = await first.metrics();
    const checkpoints = checkpointsWritten(before) - checkpointsWritten(atLoad);
    const takenPerS =
      (((await first.eventsIn()) ?? NaN) - inAtStart) / ((performance.now() - loadStarted) / 1_000);
    process.kill(first.pid, 'SIGKILL');
    await first.stop();
    if (o.logDir !== undefined) await writeFile(join(o.logDir, `crash-${run}-killed.log`), first.output());
    const t0 = performance.now();
    restarted = await start(o.cpuProfDir);
    const [vigilStorm, recovered] = await Promise.all([
      storm(restarted, o.devices, secret, o.perAddress),
      recoveredLine(restarted, t0),
    ]);
    await load.catch(() => undefined);
    if (o.logDir !== undefined)
      await writeFile(join(o.logDir, `crash-${run}-restarted.log`), restarted.output());
    const afterStorm = await restarted.metrics();
    const timersAfterStorm = gauge(afterStorm, 'vigil_pending_timers');
    const vigilNat =
      o.natDevices > 0 ? await storm(restarted, o.natDevices, secret, o.natDevices) : undefined;
    const aedes = await aedesStorms(o, secret);
    return {
      timersBefore: gauge(before, 'vigil_pending_timers'),
      groupsBefore: gauge(before, 'vigil_engine_groups'),
      takenPerS,
      checkpoints,
      checkpointBytes: gauge(before, 'vigil_checkpoint_bytes'),
      recoveredCheckpoint: {
        bytes: gauge(afterStorm, 'vigil_checkpoint_bytes'),
        seconds: gauge(afterStorm, 'vigil_checkpoint_seconds'),
      },
      decidingMs: recovered.atMs,
      recovered: recovered.line,
      storm: { vigil: vigilStorm, aedes: aedes.storm },
      ...(vigilNat && aedes.nat ? { nat: { vigil: vigilNat, aedes: aedes.nat } } : {}),
      timersAfterStorm,
    };
  } finally {
    await gen.stop();
    await restarted?.stop();
    await first.stop();
    await rm(data, { recursive: true, force: true });
  }
}

/**
 * A storm against a gateway started on a fresh copy of the data (profiles and credentials, no journal: nothing to
 * replay), and the same storm against a plain aedes; `vigilFirst` says which takes it first.
 */
async function stormOnce(
  o: CrashOptions,
  setup: VigilSetup,
  rulesDir: string,
  cloudUrl: string,
  secret: string,
  vigilFirst: boolean,
): Promise<StormRun> {
  const data = await mkdtemp(join(setup.workDir, 'data-'));
  await cp(setup.dataTemplate, data, { recursive: true });
  const load1 = loadavg()[0] ?? NaN;
  const sut = await startOn(o, setup, { rulesDir, cloudUrl, data, cpuProfDir: o.cpuProfDir });
  try {
    await recoveredLine(sut, performance.now());
    const onVigil = (): Promise<Storm> => storm(sut, o.devices, secret, o.perAddress);
    const onAedes = async (): Promise<Storm> => (await aedesStorms({ ...o, natDevices: 0 }, secret)).storm;
    const first = await (vigilFirst ? onVigil() : onAedes());
    const second = await (vigilFirst ? onAedes() : onVigil());
    const [vigil, aedes] = vigilFirst ? [first, second] : [second, first];
    return { vigil, aedes, vigilFirst, load: [load1, loadavg()[0] ?? NaN] };
  } finally {
    await sut.stop();
    await rm(data, { recursive: true, force: true });
  }
}

/** The same storms against a plain aedes. */
async function aedesStorms(o: CrashOptions, secret: string): Promise<{ storm: Storm; nat?: Storm }> {
  const aedes = await startAedes({ batchWrites: true });
  try {
    const all = await storm(aedes, o.devices, secret, o.perAddress);
    if (o.natDevices === 0) return { storm: all };
    return { storm: all, nat: await storm(aedes, o.natDevices, secret, o.natDevices) };
  } finally {
    await aedes.stop();
  }
}

/**
 * `n` windowed averages of the temperature per device (1 to `n` minutes), which never fire: each holds a group
 * for every device under load, so the state at the kill has the size the goal names.
 */
export function windowScenarios(n: number): string {
  const lines = ['# Generated by test/bench for the crash benchmark.'];
  for (let i = 1; i <= n; i++) {
    lines.push(
      `- id: bench-window-${i}`,
      `  description: Average temperature over ${i} minutes above 1000 (never).`,
      '  priority: 10',
      '  category: maintenance',
      '  when:',
      '    event: telemetry',
      `    window: ${i}m`,
      '    aggregate:',
      '      avgTemp: avg(data.temp)',
      '    having: avgTemp > 1000',
      '  then:',
      `    action: bench-window-${i}`,
      '    to: [upstream]',
    );
  }
  return lines.join('\n') + '\n';
}

/** The crash part: the profiles imported once (every device under load has a credential), then `runs` crashes. */
export async function crashBench(o: CrashOptions): Promise<CrashRecord> {
  const secret = benchSecret();
  if (o.logDir !== undefined) await mkdir(o.logDir, { recursive: true });
  o.log(`crash: importing ${o.devices.toLocaleString('en-US')} profiles`);
  const setup = await prepareVigil(
    { ...FLEET, profiles: o.devices, credentialed: o.devices, secret },
    0,
    o.binary,
  );
  const rulesDir = join(setup.workDir, 'rules-crash');
  await cp(setup.shippedRulesDir, rulesDir, { recursive: true });
  // The shipped scenarios hold two groups per device under telemetry (device-offline, hot-average).
  const windows = Math.max(0, Math.ceil(o.groups / o.devices) - 2);
  await writeFile(join(rulesDir, 'bench-windows.yaml'), windowScenarios(windows));
  const cloud = await startCloudBroker();
  const runs: CrashRun[] = [];
  const storms: StormRun[] = [];
  try {
    for (let i = 0; i < o.runs; i++) {
      const run = await crashOnce(o, setup, rulesDir, cloud.url, secret, i + 1);
      runs.push(run);
      o.log(
        `crash ${i + 1} of ${o.runs}: deciding again ${run.decidingMs.toFixed(0)} ms after exec ` +
          `(recovery ${run.recovered.ms} ms, ${run.recovered.replayed} replayed in ${run.recovered.replayMs ?? '?'} ms); ` +
          `${run.checkpoints} checkpoints in the load, the last ${run.checkpointBytes} bytes; after the recovery ` +
          `${run.recoveredCheckpoint.bytes} bytes in ${run.recoveredCheckpoint.seconds} s; storm: vigil ` +
          `${run.storm.vigil.connected} in ${run.storm.vigil.ms.toFixed(0)} ms (CPU ${run.storm.vigil.cpuMs.toFixed(0)} ms), ` +
          `aedes ${run.storm.aedes.connected} in ${run.storm.aedes.ms.toFixed(0)} ms (CPU ${run.storm.aedes.cpuMs.toFixed(0)} ms)` +
          (run.nat
            ? `; one address: vigil ${run.nat.vigil.connected} in ${run.nat.vigil.ms.toFixed(0)} ms, aedes ` +
              `${run.nat.aedes.connected} in ${run.nat.aedes.ms.toFixed(0)} ms`
            : '') +
          `; ${run.groupsBefore} groups and ${run.takenPerS.toFixed(0)} events/s taken in before the kill` +
          (run.storm.vigil.failed > 0 ? `; vigil's storm failed: ${run.storm.vigil.why.join(', ')}` : '') +
          (run.storm.aedes.failed > 0 ? `; aedes's storm failed: ${run.storm.aedes.why.join(', ')}` : ''),
      );
    }
    for (let i = 0; i < o.stormRuns; i++) {
      const run = await stormOnce(o, setup, rulesDir, cloud.url, secret, i % 2 === 0);
      storms.push(run);
      o.log(
        `storm ${i + 1} of ${o.stormRuns}, a fresh gateway (${run.vigilFirst ? 'Vigil' : 'aedes'} first, load ` +
          `average ${run.load[0].toFixed(1)} → ${run.load[1].toFixed(1)}): vigil ${run.vigil.connected} in ` +
          `${run.vigil.ms.toFixed(0)} ms (CPU ${run.vigil.cpuMs.toFixed(0)} ms), aedes ${run.aedes.connected} in ` +
          `${run.aedes.ms.toFixed(0)} ms (CPU ${run.aedes.cpuMs.toFixed(0)} ms)` +
          (run.vigil.failed > 0 ? `; vigil's storm failed: ${run.vigil.why.join(', ')}` : '') +
          (run.aedes.failed > 0 ? `; aedes's storm failed: ${run.aedes.why.join(', ')}` : ''),
      );
    }
  } finally {
    await cloud.stop();
    await setup.remove();
  }
  return {
    rate: o.rate,
    devices: o.devices,
    loadMs: o.loadMs,
    perAddress: o.perAddress,
    natDevices: o.natDevices,
    gateway:
      (o.binary === undefined ? '`node dist/cli.js run`' : 'the executable') +
      (o.threads === 2 ? ' with `--threads 2`' : ''),
    runs,
    storms,
  };
}

const med = (r: CrashRecord, f: (x: CrashRun) => number): number => median(r.runs.map(f));

/** The crash part as markdown, each figure beside its floor; then the storms against a fresh gateway, if any. */
export function crashTable(r: CrashRecord): string {
  const parts = r.runs.length > 0 ? [crashRunsTable(r)] : [];
  if (r.storms.length > 0) parts.push(stormTable(r));
  return parts.join('\n\n');
}

/** The storms against a freshly started gateway, Vigil beside the plain aedes of the same run. */
function stormTable(r: CrashRecord): string {
  const line = (cells: string[]): string => `| ${cells.join(' | ')} |`;
  const n = r.devices.toLocaleString('en-US');
  const figure = (s: StormRun['vigil']): string =>
    `${s.ms.toFixed(0)} ms, ${s.connected} of ${n} in, CPU ${s.cpuMs.toFixed(0)} ms`;
  return [
    line([
      `reconnect storm against a fresh ${r.gateway} (no replay)`,
      'Vigil',
      'plain aedes',
      'load average',
    ]),
    line(['---', '---', '---', '---']),
    ...r.storms.map((s, i) =>
      line([
        `${i + 1}: ${s.vigilFirst ? 'Vigil' : 'aedes'} first`,
        figure(s.vigil),
        figure(s.aedes),
        `${s.load[0].toFixed(1)} → ${s.load[1].toFixed(1)}`,
      ]),
    ),
    line([
      `median of ${r.storms.length}`,
      `${median(r.storms.map((s) => s.vigil.ms)).toFixed(0)} ms, CPU ${median(r.storms.map((s) => s.vigil.cpuMs)).toFixed(0)} ms`,
      `${median(r.storms.map((s) => s.aedes.ms)).toFixed(0)} ms, CPU ${median(r.storms.map((s) => s.aedes.cpuMs)).toFixed(0)} ms`,
      '',
    ]),
  ].join('\n');
}

function crashRunsTable(r: CrashRecord): string {
  const line = (cells: string[]): string => `| ${cells.join(' | ')} |`;
  const n = r.devices.toLocaleString('en-US');
  const storm = (s: 'vigil' | 'aedes'): string =>
    `${med(r, (x) => x.storm[s].ms).toFixed(0)} ms, ${med(r, (x) => x.storm[s].connected)} of ${n} in`;
  const nat = (s: 'vigil' | 'aedes'): string =>
    `${med(r, (x) => x.nat?.[s].ms ?? NaN).toFixed(0)} ms, ${med(r, (x) => x.nat?.[s].connected ?? NaN)} of ${r.natDevices} in`;
  const spread = r.perAddress === 1 ? 'each from its own address' : `${r.perAddress} per address`;
  return [
    line([
      `${r.gateway} SIGKILLed at ${r.rate.toLocaleString('en-US')} events/s, ${n} devices; median of ${r.runs.length}`,
      'figure',
      'floor',
    ]),
    line(['---', '---', '---']),
    line([
      'exec → deciding again (`state recovered`)',
      `${med(r, (x) => x.decidingMs).toFixed(0)} ms`,
      '2,000 ms',
    ]),
    line([
      'device events a second taken in during the load',
      `${med(r, (x) => x.takenPerS).toFixed(0)}`,
      r.rate.toLocaleString('en-US'),
    ]),
    line(['groups the scenarios held at the kill', `${med(r, (x) => x.groupsBefore)}`, '100,000']),
    line([
      `checkpoints in the ${r.loadMs / 1_000} s of load, and the size of the last`,
      `${med(r, (x) => x.checkpoints)}, ${(med(r, (x) => x.checkpointBytes) / 1e6).toFixed(1)} MB`,
      '–',
    ]),
    line([
      'recovery, as the log says',
      `${med(r, (x) => x.recovered.ms).toFixed(0)} ms, ${med(r, (x) => x.recovered.replayed)} records replayed`,
      '–',
    ]),
    line([
      'replay speed (records replayed / the replay alone)',
      `${med(r, (x) => (x.recovered.replayMs ? (x.recovered.replayed / x.recovered.replayMs) * 1_000 : NaN)).toFixed(0)} records/s`,
      '–',
    ]),
    line([
      `reconnect storm, ${n} devices at once, ${spread}`,
      `Vigil: ${storm('vigil')}`,
      `plain aedes: ${storm('aedes')}`,
    ]),
    ...(r.natDevices > 0
      ? [
          line([
            `then one site behind NAT: ${r.natDevices} devices at once from one address`,
            `Vigil: ${nat('vigil')}`,
            `plain aedes: ${nat('aedes')}`,
          ]),
        ]
      : []),
    line([
      'silence timers: before the kill → recovered → after the storm',
      `${med(r, (x) => x.timersBefore)} → ${med(r, (x) => x.recovered.pendingTimers)} → ${med(r, (x) => x.timersAfterStorm)}`,
      `≥ ${n} (one per device)`,
    ]),
  ].join('\n');
}

/** The crash goals. */
export function crashTargets(r: CrashRecord): TargetRecord[] {
  if (r.runs.length === 0) return [];
  const deciding = med(r, (x) => x.decidingMs);
  const vigil = med(r, (x) => x.storm.vigil.ms);
  const aedes = med(r, (x) => x.storm.aedes.ms);
  const allIn = r.runs.every(
    (x) => x.storm.vigil.connected === r.devices && x.storm.aedes.connected === r.devices,
  );
  const timers = r.runs.every(
    (x) => x.recovered.pendingTimers >= r.devices && x.timersAfterStorm >= r.devices,
  );
  const natIn = r.runs.every((x) => x.nat?.vigil.connected === r.natDevices);
  const groups = med(r, (x) => x.groupsBefore);
  return [
    {
      target: `exec → deciding again after a SIGKILL at ${r.rate}/s with ${r.devices} devices ≤ 2 s`,
      value: `${deciding.toFixed(0)} ms (${groups} groups at the kill)`,
      met: deciding <= 2_000,
    },
    {
      target: `reconnect storm of ${r.devices} devices all in no later than plain aedes, silence timers intact`,
      value: `${vigil.toFixed(0)} ms vs aedes ${aedes.toFixed(0)} ms; all in: ${allIn}; timers intact: ${timers}`,
      met: allIn && timers && vigil <= aedes,
    },
    ...(r.natDevices > 0
      ? [
          {
            target: `one site behind NAT: ${r.natDevices} devices at once from one address all in`,
            value: `${med(r, (x) => x.nat?.vigil.connected ?? NaN)} of ${r.natDevices} in ${med(r, (x) => x.nat?.vigil.ms ?? NaN).toFixed(0)} ms (aedes ${med(r, (x) => x.nat?.aedes.ms ?? NaN).toFixed(0)} ms)`,
            met: natIn,
          },
        ]
      : []),
  ];
}

/** The crash part's command-line options, shared by `npm run bench` and startup.ts alone. */
export const CRASH_ARGS = {
  'crash-runs': { type: 'string' },
  'crash-rate': { type: 'string' },
  'crash-devices': { type: 'string' },
  'crash-load': { type: 'string' },
  'crash-per-address': { type: 'string' },
  'crash-nat': { type: 'string' },
  'crash-groups': { type: 'string' },
  'crash-cpu-prof': { type: 'string' },
  'crash-log': { type: 'string' },
  'crash-threads': { type: 'string' },
  'storm-runs': { type: 'string' },
} as const;

export const CRASH_USAGE = `  --crash-runs N          SIGKILLs under load in the startup section (default 5; 0 skips them)
  --crash-rate N          events/s at the SIGKILL (default 20000)
  --crash-devices N       devices under load, then reconnecting at once (default 10000)
  --crash-load S          seconds of load before the SIGKILL (default 30: past the first checkpoints)
  --crash-per-address N   devices of the storm sharing one source address (default 1: each its own)
  --crash-nat N           then N devices at once from one address, a site behind NAT (default 500; 0 skips)
  --crash-groups N        live groups at the kill (default 100000: windowed scenarios added to reach it)
  --crash-cpu-prof DIR    write a CPU profile of each restarted gateway to DIR (and of each fresh one below)
  --crash-log DIR         log at debug and write each crash's two gateways' output to DIR (crash-N-killed.log,
                          crash-N-restarted.log: their checkpoints, recovery and storm)
  --crash-threads N       the gateway's threads (1 or 2, default 1; 2: the device edge on a thread of its own)
  --storm-runs N          storms against a freshly started gateway (no crash, no replay) and a plain aedes, which
                          goes first alternating; the crash part's devices, one per address (default 0)`;

export function crashOptions(values: {
  'crash-runs'?: string | undefined;
  'crash-rate'?: string | undefined;
  'crash-devices'?: string | undefined;
  'crash-load'?: string | undefined;
  'crash-per-address'?: string | undefined;
  'crash-nat'?: string | undefined;
  'crash-groups'?: string | undefined;
  'crash-cpu-prof'?: string | undefined;
  'crash-log'?: string | undefined;
  'crash-threads'?: string | undefined;
  'storm-runs'?: string | undefined;
}): Omit<CrashOptions, 'log'> {
  const num = (name: keyof typeof CRASH_ARGS, fallback: number): number => {
    const v = values[name];
    const n = v === undefined ? fallback : Number(v);
    if (!Number.isInteger(n) || n < 0) throw new Error(`--${name}: expected a whole number, got '${v}'`);
    return n;
  };
  return {
    runs: num('crash-runs', 5),
    rate: num('crash-rate', 20_000),
    devices: num('crash-devices', 10_000),
    loadMs: num('crash-load', 30) * 1_000,
    perAddress: Math.max(1, num('crash-per-address', 1)),
    natDevices: num('crash-nat', 500),
    groups: num('crash-groups', 100_000),
    cpuProfDir: values['crash-cpu-prof'],
    logDir: values['crash-log'],
    threads: threadsOf(values['crash-threads']),
    stormRuns: num('storm-runs', 0),
  };
}

function threadsOf(v: string | undefined): 1 | 2 {
  if (v === undefined || v === '1') return 1;
  if (v === '2') return 2;
  throw new Error(`--crash-threads: expected 1 or 2, got '${v}'`);
}
