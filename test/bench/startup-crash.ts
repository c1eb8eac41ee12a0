// The crash part of the startup section: the gateway SIGKILLed in the middle of sustained load, restarted on the
// same data directory, timed from exec until it decides again (its `state recovered` log line, which also says
// how long recovery took and what it replayed); right after, the devices that were under load reconnect all at
// once, and a plain aedes takes the same storm in the same run.
import { cp, mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startCloudBroker } from './cloud-broker.js';
import { LoadGenClient } from './load-gen-client.js';
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
  readonly log: (message: string) => void;
}

/** The `state recovered` line's figures (src/runtime/durable-inputs.ts). */
interface Recovered {
  readonly checkpoint: number | null;
  readonly replayed: number;
  readonly ms: number;
  readonly pendingTimers: number;
  readonly recordedMeanwhile: number;
}

export interface CrashRun {
  /** Silence timers pending just before the SIGKILL (vigil_pending_timers). */
  readonly timersBefore: number;
  /** Exec of the restart → its `state recovered` line, ms. */
  readonly decidingMs: number;
  readonly recovered: Recovered;
  /** The storm: all devices at once against the restarted gateway, then against a plain aedes. */
  readonly storm: { vigil: Storm; aedes: Storm };
  /** vigil_pending_timers once the storm is in. */
  readonly timersAfterStorm: number;
}

interface Storm {
  readonly ms: number;
  readonly connected: number;
  readonly failed: number;
}

export interface CrashRecord {
  readonly rate: number;
  readonly devices: number;
  readonly runs: CrashRun[];
}

const FLEET = { sites: 5_000, customers: 25_000, seed: 1 };

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[mid] ?? NaN) : ((s[mid - 1] ?? NaN) + (s[mid] ?? NaN)) / 2;
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

/** A storm of `devices` connections at once, from a load generator of its own. */
async function storm(url: string, devices: number, secret: string): Promise<Storm> {
  const gen = LoadGenClient.start();
  try {
    const r = await gen.request(
      { kind: 'idle', url, connections: devices, idPrefix: 'dev-', secret, storm: true },
      'idle',
    );
    return { ms: r.ms, connected: r.connected, failed: r.failed ?? 0 };
  } finally {
    await gen.stop();
  }
}

/** One crash: load, SIGKILL, restart on the same data, the storm against it and against a plain aedes. */
async function crashOnce(
  o: CrashOptions,
  setup: VigilSetup,
  cloudUrl: string,
  secret: string,
): Promise<CrashRun> {
  const data = await mkdtemp(join(setup.workDir, 'data-'));
  await cp(setup.dataTemplate, data, { recursive: true });
  const start = (): Promise<SystemUnderTest> =>
    startVigil(setup, { cloudUrl, rulesDir: setup.shippedRulesDir, logLevel: 'info', data });
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
    await sleep(o.loadMs);
    const timersBefore = gauge(await first.metrics(), 'vigil_pending_timers');
    process.kill(first.pid, 'SIGKILL');
    await first.stop();
    const t0 = performance.now();
    restarted = await start();
    const [vigilStorm, recovered] = await Promise.all([
      storm(restarted.url, o.devices, secret),
      recoveredLine(restarted, t0),
    ]);
    await load.catch(() => undefined);
    const timersAfterStorm = gauge(await restarted.metrics(), 'vigil_pending_timers');
    const aedes = await startAedes({ batchWrites: true });
    let aedesStorm: Storm;
    try {
      aedesStorm = await storm(aedes.url, o.devices, secret);
    } finally {
      await aedes.stop();
    }
    return {
      timersBefore,
      decidingMs: recovered.atMs,
      recovered: recovered.line,
      storm: { vigil: vigilStorm, aedes: aedesStorm },
      timersAfterStorm,
    };
  } finally {
    await gen.stop();
    await restarted?.stop();
    await first.stop();
    await rm(data, { recursive: true, force: true });
  }
}

/** The crash part: the profiles imported once (every device under load has a credential), then `runs` crashes. */
export async function crashBench(o: CrashOptions): Promise<CrashRecord> {
  const secret = benchSecret();
  o.log(`crash: importing ${o.devices.toLocaleString('en-US')} profiles`);
  const setup = await prepareVigil(
    { ...FLEET, profiles: o.devices, credentialed: o.devices, secret },
    0,
    undefined,
  );
  const cloud = await startCloudBroker();
  const runs: CrashRun[] = [];
  try {
    for (let i = 0; i < o.runs; i++) {
      const run = await crashOnce(o, setup, cloud.url, secret);
      runs.push(run);
      o.log(
        `crash ${i + 1} of ${o.runs}: deciding again ${run.decidingMs.toFixed(0)} ms after exec ` +
          `(recovery ${run.recovered.ms} ms, ${run.recovered.replayed} replayed); storm: vigil ` +
          `${run.storm.vigil.connected} in ${run.storm.vigil.ms.toFixed(0)} ms, aedes ` +
          `${run.storm.aedes.connected} in ${run.storm.aedes.ms.toFixed(0)} ms`,
      );
    }
  } finally {
    await cloud.stop();
    await setup.remove();
  }
  return { rate: o.rate, devices: o.devices, runs };
}

const med = (r: CrashRecord, f: (x: CrashRun) => number): number => median(r.runs.map(f));

/** The crash part as markdown, each figure beside its floor. */
export function crashTable(r: CrashRecord): string {
  const line = (cells: string[]): string => `| ${cells.join(' | ')} |`;
  const n = r.devices.toLocaleString('en-US');
  const storm = (s: 'vigil' | 'aedes'): string =>
    `${med(r, (x) => x.storm[s].ms).toFixed(0)} ms, ${med(r, (x) => x.storm[s].connected)} of ${n} in`;
  return [
    line([
      `SIGKILL at ${r.rate.toLocaleString('en-US')} events/s, ${n} devices; median of ${r.runs.length}`,
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
      'recovery, as the log says',
      `${med(r, (x) => x.recovered.ms).toFixed(0)} ms, ${med(r, (x) => x.recovered.replayed)} records replayed`,
      '–',
    ]),
    line([
      `reconnect storm, ${n} devices at once`,
      `Vigil: ${storm('vigil')}`,
      `plain aedes: ${storm('aedes')}`,
    ]),
    line([
      'silence timers: before the kill → recovered → after the storm',
      `${med(r, (x) => x.timersBefore)} → ${med(r, (x) => x.recovered.pendingTimers)} → ${med(r, (x) => x.timersAfterStorm)}`,
      `≥ ${n} (one per device)`,
    ]),
  ].join('\n');
}

/** The crash goals. */
export function crashTargets(r: CrashRecord): TargetRecord[] {
  const deciding = med(r, (x) => x.decidingMs);
  const vigil = med(r, (x) => x.storm.vigil.ms);
  const aedes = med(r, (x) => x.storm.aedes.ms);
  const allIn = r.runs.every(
    (x) => x.storm.vigil.connected === r.devices && x.storm.aedes.connected === r.devices,
  );
  const timers = r.runs.every(
    (x) => x.recovered.pendingTimers >= r.devices && x.timersAfterStorm >= r.devices,
  );
  return [
    {
      target: `exec → deciding again after a SIGKILL at ${r.rate}/s with ${r.devices} devices ≤ 2 s`,
      value: `${deciding.toFixed(0)} ms`,
      met: deciding <= 2_000,
    },
    {
      target: `reconnect storm of ${r.devices} devices all in no later than plain aedes, silence timers intact`,
      value: `${vigil.toFixed(0)} ms vs aedes ${aedes.toFixed(0)} ms; all in: ${allIn}; timers intact: ${timers}`,
      met: allIn && timers && vigil <= aedes,
    },
  ];
}

/** The crash part's command-line options, shared by `npm run bench` and startup.ts alone. */
export const CRASH_ARGS = {
  'crash-runs': { type: 'string' },
  'crash-rate': { type: 'string' },
  'crash-devices': { type: 'string' },
} as const;

export const CRASH_USAGE = `  --crash-runs N          SIGKILLs under load in the startup section (default 5; 0 skips them)
  --crash-rate N          events/s at the SIGKILL (default 20000)
  --crash-devices N       devices under load, then reconnecting at once (default 10000)`;

export function crashOptions(values: {
  'crash-runs'?: string | undefined;
  'crash-rate'?: string | undefined;
  'crash-devices'?: string | undefined;
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
    loadMs: 10_000,
  };
}
