// Recovery alone, without a load generator: a data directory with the crash benchmark's rules (the shipped scenarios
// and windowed averages, 10 groups per device), its fleet's profiles, a checkpoint of the state after a first stretch
// of load, and a journal tail of `--records` telemetry records after it, written directly as the fleet would have sent
// them at `--rate` events/s; the outboxes hold what that tail decided, as they would after a crash. The gateway then starts in this process on a fresh copy of that directory `--runs` times;
// each start is timed to `recovered`, beside the replay alone as its `state recovered` line says. The same journal
// every time, so a change to the replay can be compared before and after on the same machine load.
//
//   npm run build && node --import tsx test/bench/recovery.ts [--records 300000] [--runs 3] [--cpu-prof DIR]
import { cp, mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { Session } from 'node:inspector/promises';
import { loadavg, tmpdir } from 'node:os';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Writable } from 'node:stream';
import { parseArgs } from 'node:util';
import { pino, type Logger } from 'pino';
import { EventSchedule, planFleet } from '../../firmware-sim/index.js';
import { startGateway } from '../../src/app/index.js';
import { parseConfig } from '../../src/config/index.js';
import { decodePayload } from '../../src/ingest/decode-payload.js';
import { encodeRecord, Journal } from '../../src/runtime/index.js';
import type { Event } from '../../src/shared/index.js';
import { startCloudBroker } from './cloud-broker.js';
import { recoveryBreakdown as breakdown, type CpuProfileData as Profile } from './cpu-profile.js';
import { FLEET, windowScenarios } from './startup-crash.js';
import { benchSecret, prepareVigil } from './vigil-setup.js';

const USAGE = `Usage: npm run build && node --import tsx test/bench/recovery.ts [options]

Times a gateway's recovery from a checkpoint and a journal tail written directly (no load generator, no storm).

  --records N   journal records after the checkpoint (default 300000)
  --warm N      records before it, replayed and checkpointed once while preparing (default 100000)
  --devices N   devices sending, each with a profile (default 10000)
  --groups N    live groups wanted: windowed averages added until each device holds its share (default 100000)
  --rate N      events a second the records are spaced at (default 20000)
  --runs N      restarts timed, each on a fresh copy of the same data (default 3)
  --keep D      keep the prepared data and rules in directory D, and start from them when D has them (the
                same journal for a build before and after a change; the other options must match)
  --cpu-prof D  write a CPU profile of the last restart (start → recovered) to directory D, with a breakdown
  --help        this text`;

interface Options {
  readonly records: number;
  readonly warm: number;
  readonly devices: number;
  readonly groups: number;
  readonly rate: number;
  readonly runs: number;
  readonly cpuProfDir: string | undefined;
  readonly keep: string | undefined;
}

/** The `state recovered` line's figures (src/runtime/durable-inputs.ts). */
interface Recovered {
  readonly replayed: number;
  readonly replayMs: number;
  readonly ms: number;
  readonly pendingTimers: number;
}

interface Run {
  /** `startGateway` called → `recovered` settled. */
  readonly startToRecoveredMs: number;
  /** CPU time of this process over the same span (user + system): steadier than wall time on a shared machine. */
  readonly cpuMs: number;
  readonly line: Recovered;
}

function options(): Options | undefined {
  const { values } = parseArgs({
    options: {
      records: { type: 'string', default: '300000' },
      warm: { type: 'string', default: '100000' },
      devices: { type: 'string', default: '10000' },
      groups: { type: 'string', default: '100000' },
      rate: { type: 'string', default: '20000' },
      runs: { type: 'string', default: '3' },
      'cpu-prof': { type: 'string' },
      keep: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) return undefined;
  const num = (name: string, v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) throw new Error(`--${name}: expected a whole number, got '${v}'`);
    return n;
  };
  return {
    records: num('records', values.records),
    warm: num('warm', values.warm),
    devices: Math.max(1, num('devices', values.devices)),
    groups: num('groups', values.groups),
    rate: Math.max(1, num('rate', values.rate)),
    runs: Math.max(1, num('runs', values.runs)),
    cpuProfDir: values['cpu-prof'],
    keep: values.keep,
  };
}

/**
 * The fleet's telemetry in the order the load generator sends it (the same plan and rotation), decoded as ingest
 * decodes it, stamped `rate` a second from `startAt`.
 */
function* fleetEvents(o: Options, startAt: number): Generator<Event, void, undefined> {
  const plan = planFleet({ devices: o.devices, ...FLEET, rate: 1, durationMs: Infinity });
  const schedule = new EventSchedule(plan);
  for (let k = 0; ; k++) {
    const planned = schedule.next();
    if (planned === undefined || planned.type !== 'telemetry') return;
    const at = startAt + Math.floor((k * 1_000) / o.rate);
    const { temp, hum, bat } = planned.data;
    const payload = Buffer.from(`{"temp":${temp},"hum":${hum},"bat":${bat},"ts":${at + 0.25}}`);
    const decoded = decodePayload(payload, 65_536);
    if (!decoded.ok) throw new Error(`the fleet's payload does not decode: ${decoded.reason}`);
    const { data, deviceAt } = decoded;
    const actor = planned.device.id;
    yield deviceAt === undefined
      ? { actor, type: 'telemetry', at, data, source: 'device' }
      : { actor, type: 'telemetry', at, data, source: 'device', deviceAt };
  }
}

/** Appends `count` events of `events` to the journal of `data` (QoS 0: kept at `write`, as the load sends them). */
async function appendEvents(data: string, events: Iterator<Event>, count: number): Promise<void> {
  const journal = await Journal.open({ dir: join(data, 'journal'), logger: pino({ level: 'silent' }) });
  try {
    for (let i = 0; i < count; i++) {
      const next = events.next();
      if (next.done === true) throw new Error(`the fleet ran out of events after ${i}`);
      journal.append(encodeRecord({ kind: 'event', event: next.value }), 'write');
      if (i % 10_000 === 9_999) await journal.recorded();
    }
    await journal.recorded();
  } finally {
    await journal.close();
  }
}

/**
 * The store as the gateway left it when it was killed: the tail's actions decided once, written to the outboxes and
 * handed to the cloud, so that the replay finds them there as it does after a crash (the journal and checkpoints
 * stay as they were: the tail is still to replay).
 */
async function decideBeforeTheCrash(
  template: string,
  workDir: string,
  rulesDir: string,
  cloudUrl: string,
): Promise<void> {
  const decided = await mkdtemp(join(workDir, 'decided-'));
  try {
    await cp(template, decided, { recursive: true });
    await runGateway(decided, rulesDir, cloudUrl);
    for (const name of await readdir(template)) {
      if (name !== 'journal') await rm(join(template, name), { recursive: true, force: true });
    }
    for (const name of await readdir(decided)) {
      if (name !== 'journal') await cp(join(decided, name), join(template, name), { recursive: true });
    }
  } finally {
    await rm(decided, { recursive: true, force: true });
  }
}

/** A logger that keeps the `state recovered` line (and drops the rest). */
function recoveryLogger(): { logger: Logger; recovered: () => Recovered | undefined } {
  let line: Recovered | undefined;
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      const text = chunk.toString('utf8');
      if (text.includes('"msg":"state recovered"')) line = JSON.parse(text) as Recovered;
      done();
    },
  });
  return { logger: pino({ level: 'info' }, sink), recovered: () => line };
}

/** Starts the gateway on `data`, waits for `recovered` (then calls `onRecovered`) and stops it. */
async function runGateway(
  data: string,
  rulesDir: string,
  cloudUrl: string,
  onRecovered?: () => Promise<void>,
): Promise<Run> {
  const { logger, recovered } = recoveryLogger();
  const config = parseConfig({
    gatewayId: 'bench-gw',
    data,
    rules: rulesDir,
    mqtt: { host: '127.0.0.1', port: 0, maxConnections: 50_000 },
    http: { host: '127.0.0.1', port: 0 },
    upstream: { url: cloudUrl },
  });
  const started = performance.now();
  const cpu = process.cpuUsage();
  const gateway = await startGateway(config, { logger });
  try {
    await gateway.recovered;
    const startToRecoveredMs = performance.now() - started;
    const { user, system } = process.cpuUsage(cpu);
    await onRecovered?.();
    const line = recovered();
    if (line === undefined) throw new Error('no "state recovered" line');
    return { startToRecoveredMs, cpuMs: (user + system) / 1_000, line };
  } finally {
    await gateway.stop();
  }
}

/** V8's sampling profiler on this process, from now until `stop`. */
async function startProfiler(): Promise<{ stop(): Promise<Profile> }> {
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.start');
  return {
    async stop() {
      const { profile } = await session.post('Profiler.stop');
      session.disconnect();
      return profile;
    },
  };
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[mid] ?? NaN) : ((s[mid - 1] ?? NaN) + (s[mid] ?? NaN)) / 2;
}

const load = (): string =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');

/**
 * The rules directory and the data directory to restart on, prepared in `workDir`, or taken from `keep` when it holds
 * them (and left there for the next time when it does not).
 */
async function prepared(
  o: Options,
  workDir: string,
  cloudUrl: string,
  log: (m: string) => void,
): Promise<{ template: string; rulesDir: string }> {
  if (o.keep !== undefined && existsSync(join(o.keep, 'data')) && existsSync(join(o.keep, 'rules'))) {
    log(`the data and rules prepared in ${o.keep}`);
    return { template: join(o.keep, 'data'), rulesDir: join(o.keep, 'rules') };
  }
  log(`importing ${o.devices.toLocaleString('en-US')} profiles`);
  const setup = await prepareVigil(
    { ...FLEET, profiles: o.devices, credentialed: 0, secret: benchSecret() },
    0,
    undefined,
  );
  try {
    // Where they are kept from the start: the rules record in the journal names the files by their path.
    const rulesDir = join(o.keep ?? workDir, 'rules');
    await mkdir(rulesDir, { recursive: true });
    await cp(setup.shippedRulesDir, rulesDir, { recursive: true });
    // As the crash benchmark: the shipped scenarios hold two groups per device under telemetry.
    const windows = Math.max(0, Math.ceil(o.groups / o.devices) - 2);
    await writeFile(join(rulesDir, 'bench-windows.yaml'), windowScenarios(windows));
    const template = join(workDir, 'data');
    await cp(setup.dataTemplate, template, { recursive: true });
    const events = fleetEvents(o, Date.now() - Math.ceil(((o.warm + o.records) * 1_000) / o.rate) - 1_000);
    log(`preparing: ${o.warm} records replayed and checkpointed, then ${o.records} after the checkpoint`);
    await appendEvents(template, events, o.warm);
    await runGateway(template, rulesDir, cloudUrl);
    await appendEvents(template, events, o.records);
    await decideBeforeTheCrash(template, workDir, rulesDir, cloudUrl);
    if (o.keep !== undefined) await cp(template, join(o.keep, 'data'), { recursive: true });
    return { template, rulesDir };
  } finally {
    await setup.remove();
  }
}

async function main(): Promise<void> {
  const o = options();
  if (o === undefined) {
    console.log(USAGE);
    return;
  }
  const log = (m: string): void => console.error(`[recovery] ${m}`);
  log(`load average ${load()}`);
  const workDir = await mkdtemp(join(tmpdir(), 'vigil-recovery-'));
  const cloud = await startCloudBroker();
  try {
    const { template, rulesDir } = await prepared(o, workDir, cloud.url, log);
    const runs: Run[] = [];
    for (let i = 0; i < o.runs; i++) {
      const data = await mkdtemp(join(workDir, 'run-'));
      await cp(template, data, { recursive: true });
      const profiling = o.cpuProfDir !== undefined && i === o.runs - 1;
      const profiler = profiling ? await startProfiler() : undefined;
      try {
        const loadBefore = load();
        let profile: Profile | undefined;
        const run = await runGateway(data, rulesDir, cloud.url, async () => {
          profile = await profiler?.stop();
        });
        runs.push(run);
        const { replayed, replayMs, ms } = run.line;
        log(
          `run ${i + 1} of ${o.runs}: ${replayed} records replayed in ${replayMs} ms ` +
            `(${Math.round((replayed / replayMs) * 1_000)} records/s); recovery ${ms} ms; ` +
            `start → recovered ${run.startToRecoveredMs.toFixed(0)} ms, ${run.cpuMs.toFixed(0)} ms of CPU ` +
            `(${Math.round((replayed / run.cpuMs) * 1_000)} records a CPU-second); load average ${loadBefore} → ${load()}`,
        );
        if (profile !== undefined && o.cpuProfDir !== undefined) {
          await mkdir(o.cpuProfDir, { recursive: true });
          const file = join(o.cpuProfDir, `recovery-${Date.now()}.cpuprofile`);
          await writeFile(file, JSON.stringify(profile));
          console.log(`CPU profile of the last start, exec → recovered: ${file}\n\n${breakdown(profile)}\n`);
        }
      } finally {
        await rm(data, { recursive: true, force: true });
      }
    }
    const perS = median(runs.map((r) => (r.line.replayed / r.line.replayMs) * 1_000));
    console.log(
      [
        `| recovery of ${o.records.toLocaleString('en-US')} records, ${o.devices.toLocaleString('en-US')} devices; median of ${runs.length} | figure |`,
        '| --- | --- |',
        `| replay speed (records / the replay alone) | ${Math.round(perS).toLocaleString('en-US')} records/s |`,
        `| the replay alone (\`replayMs\`) | ${median(runs.map((r) => r.line.replayMs)).toFixed(0)} ms |`,
        `| recovery, as the log says (\`ms\`) | ${median(runs.map((r) => r.line.ms)).toFixed(0)} ms |`,
        `| start → recovered | ${median(runs.map((r) => r.startToRecoveredMs)).toFixed(0)} ms |`,
        `| CPU time, start → recovered | ${median(runs.map((r) => r.cpuMs)).toFixed(0)} ms |`,
        `| records replayed a CPU-second (start → recovered) | ${Math.round(median(runs.map((r) => (r.line.replayed / r.cpuMs) * 1_000))).toLocaleString('en-US')} |`,
        `| load average at the end | ${load()} |`,
      ].join('\n'),
    );
  } finally {
    await cloud.stop();
    await rm(workDir, { recursive: true, force: true });
  }
}

await main();
