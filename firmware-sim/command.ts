import { InvalidArgumentError, Option, type Command } from 'commander';
import { VigilError, parseDurationMs } from '../src/shared/index.js';
import { SIM_DEFAULTS as D, type PayloadFormat, type SilentMode, type SimOptions } from './options.js';
import { planFleet, type FleetPlan } from './plan.js';
import { credentialOf, deviceSecret } from './fleet-secret.js';
import { writeProfilesNdjson } from './profiles.js';
import { runSim } from './run-sim.js';
import { formatSummary, type SimSummary } from './summary.js';

/** The flags as commander hands them over, already parsed by the option parsers below. */
export interface SimFlags {
  fleetSecret?: string;
  url: string;
  devices: number;
  rate: number;
  duration: number;
  format: PayloadFormat;
  qos: '0' | '1';
  seed: number;
  idPrefix?: string;
  sites?: number;
  customers?: number;
  hotShare?: number;
  lowBatteryShare?: number;
  humidShare?: number;
  heartbeat?: number;
  connectConcurrency?: number;
  linger?: number;
  progress: number;
  profilesOut?: string;
  profilesOnly?: boolean;
  silentShare?: number;
  silentAfter?: number;
  silentSpread?: number;
  silentMode?: SilentMode;
  outageSites?: number;
  outageAfter?: number;
  heatBursts?: number;
  heatBurstReadings?: number;
  heatBurstAfter?: number;
  humidBursts?: number;
  humidBurstReadings?: number;
  humidBurstAfter?: number;
  neverRegistered?: number;
}

/** Where the command writes and how it reports its exit code; tests pass their own. */
export interface SimCommandIo {
  out: NodeJS.WritableStream;
  err: NodeJS.WritableStream;
  setExitCode: (code: number) => void;
}

const processIo: SimCommandIo = {
  out: process.stdout,
  err: process.stderr,
  setExitCode: (code) => {
    process.exitCode = code;
  },
};

/** Adds `sim` to a commander program (the `vigil` CLI and firmware-sim/cli.ts share it). */
export function registerSimCommand(program: Command, io: SimCommandIo = processIo): Command {
  return program
    .command('sim')
    .description(
      'Run a simulated device fleet: each device has its own MQTT connection (client id = device id), ' +
        'publishes devices/{id}/events/telemetry with {temp, hum, bat, ts} and listens on devices/{id}/commands/#. ' +
        'Seeded: the same flags give the same devices, profiles and readings. Ctrl-C stops and prints the summary.',
    )
    .option('--url <url>', 'broker the devices connect to', 'mqtt://127.0.0.1:1883')
    .option('--devices <n>', 'number of devices', wholeNumber, 100)
    .option(
      '--rate <n>',
      'telemetry events per second across all devices (each device reports every devices/rate seconds)',
      positiveNumber,
      100,
    )
    .option(
      '--duration <time>',
      "how long devices publish, e.g. 20s, 5m, or 'forever'",
      durationOrForever,
      20_000,
    )
    .addOption(
      new Option('--format <format>', 'payload encoding').choices(['json', 'cbor']).default(D.format),
    )
    .addOption(
      new Option('--qos <qos>', 'QoS of publishes and command subscriptions')
        .choices(['0', '1'])
        .default('0'),
    )
    .option('--seed <n>', 'seed of the fleet and its readings', integer, D.seed)
    .option('--id-prefix <prefix>', `device ids are {prefix}1 … {prefix}N (default: "${D.idPrefix}")`)
    .option(
      '--sites <n>',
      `sites the devices are spread over (default: one per ${D.devicesPerSite} devices)`,
      wholeNumber,
    )
    .option('--customers <n>', `customers (default: one per ${D.devicesPerCustomer} devices)`, wholeNumber)
    .option(
      '--hot-share <share>',
      `share of readings above the device's maxTemp, 0..1 (default: ${D.hotShare})`,
      share,
    )
    .option(
      '--low-battery-share <share>',
      `share of readings below 3.3 V (default: ${D.lowBatteryShare})`,
      share,
    )
    .option(
      '--humid-share <share>',
      `share of readings with humidity above 85 (default: ${D.humidShare})`,
      share,
    )
    .option(
      '--heartbeat <time>',
      'each device also publishes devices/{id}/events/heartbeat this often',
      duration,
    )
    .option(
      '--connect-concurrency <n>',
      `connections opened at once (default: ${D.connectConcurrency})`,
      wholeNumber,
    )
    .option(
      '--linger <time>',
      `stay connected this long after the last publish (default: ${ms(D.lingerMs)})`,
      duration,
    )
    .addOption(
      new Option('--progress <time>', 'print progress this often').argParser(duration).default(5_000, '5s'),
    )
    .option('--profiles-out <file>', 'write the devices\' profiles as NDJSON (for "vigil profiles import")')
    .addOption(
      new Option(
        '--fleet-secret <secret>',
        "derive each device's own secret from this one: --profiles-out then carries the credential hashes " +
          'for "vigil profiles import", and the devices connect with their secrets',
      ).env('VIGIL_SIM_FLEET_SECRET'),
    )
    .option('--profiles-only', 'write --profiles-out and exit without connecting')
    .optionsGroup('Behaviours (all off by default):')
    .option('--silent-share <share>', 'share of devices that go silent, 0..1', share)
    .option('--silent-after <time>', `when they go silent (default: ${ms(D.silentAfterMs)})`, duration)
    .option(
      '--silent-spread <time>',
      'each goes silent at a seeded moment within this span after --silent-after',
      duration,
    )
    .addOption(
      new Option('--silent-mode <mode>', 'stay connected, send DISCONNECT, drop the connection, or a mix')
        .choices(['stay', 'disconnect', 'drop', 'mixed'])
        .default(D.silentMode),
    )
    .option(
      '--outage-sites <n>',
      `sites that lose ${D.outageDevicesPerSite} devices at about the same time`,
      wholeNumber,
    )
    .option(
      '--outage-after <time>',
      `when those devices go silent (default: ${ms(D.outageAfterMs)})`,
      duration,
    )
    .option('--heat-bursts <n>', 'devices that send a burst of readings above 80', wholeNumber)
    .option(
      '--heat-burst-readings <n>',
      `readings in each heat burst (default: ${D.heatBurstReadings})`,
      wholeNumber,
    )
    .option('--heat-burst-after <time>', 'when heat bursts start (default: at once)', duration)
    .option('--humid-bursts <n>', 'devices that send a burst of readings with humidity above 85', wholeNumber)
    .option(
      '--humid-burst-readings <n>',
      `readings in each humid burst (default: ${D.humidBurstReadings})`,
      wholeNumber,
    )
    .option('--humid-burst-after <time>', 'when humid bursts start (default: at once)', duration)
    .option(
      '--never-registered <n>',
      'devices that are provisioned (they have a profile) but never connect',
      wholeNumber,
    )
    .action(async (flags: SimFlags) => {
      io.setExitCode(await simCommand(flags, io));
    });
}

/** Maps the command's flags to the library's options. */
export function simOptionsFromFlags(flags: SimFlags): SimOptions {
  const opts: SimOptions = {
    url: flags.url,
    devices: flags.devices,
    rate: flags.rate,
    durationMs: flags.duration,
    format: flags.format,
    qos: flags.qos === '1' ? 1 : 0,
    seed: flags.seed,
  };
  const optional: { [K in keyof SimOptions]?: number | string | undefined } = {
    idPrefix: flags.idPrefix,
    sites: flags.sites,
    customers: flags.customers,
    hotShare: flags.hotShare,
    lowBatteryShare: flags.lowBatteryShare,
    humidShare: flags.humidShare,
    heartbeatMs: flags.heartbeat,
    connectConcurrency: flags.connectConcurrency,
    lingerMs: flags.linger,
    silentShare: flags.silentShare,
    silentAfterMs: flags.silentAfter,
    silentSpreadMs: flags.silentSpread,
    silentMode: flags.silentMode,
    outageSites: flags.outageSites,
    outageAfterMs: flags.outageAfter,
    heatBursts: flags.heatBursts,
    heatBurstReadings: flags.heatBurstReadings,
    heatBurstAfterMs: flags.heatBurstAfter,
    humidBursts: flags.humidBursts,
    humidBurstReadings: flags.humidBurstReadings,
    humidBurstAfterMs: flags.humidBurstAfter,
    neverRegistered: flags.neverRegistered,
  };
  for (const [key, value] of Object.entries(optional)) {
    if (value !== undefined) Object.assign(opts, { [key]: value });
  }
  const fleetSecret = flags.fleetSecret;
  if (fleetSecret !== undefined) {
    opts.credentials = (id) => ({ username: id, password: deviceSecret(fleetSecret, id) });
  }
  return opts;
}

/** Runs the command; resolves to the exit code. */
async function simCommand(flags: SimFlags, io: SimCommandIo): Promise<number> {
  const say = (line: string): void => void io.out.write(line + '\n');
  const opts = simOptionsFromFlags(flags);
  let plan: FleetPlan;
  try {
    plan = planFleet(opts);
    if (flags.profilesOut !== undefined) {
      const fleetSecret = flags.fleetSecret;
      const n = await writeProfilesNdjson(
        flags.profilesOut,
        opts,
        fleetSecret === undefined ? undefined : (p) => ({ credential: credentialOf(fleetSecret, p.id) }),
      );
      say(`sim: wrote ${n} profiles to ${flags.profilesOut}`);
    } else if (flags.profilesOnly) {
      throw new InvalidArgumentError('--profiles-only needs --profiles-out FILE');
    }
  } catch (error) {
    io.err.write(`vigil sim: ${error instanceof Error ? error.message : String(error)}\n${hintLine(error)}`);
    return 2;
  }
  if (flags.profilesOnly) return 0;
  say(describePlan(opts, plan));

  const stop = new AbortController();
  const onSignal = (): void => {
    if (stop.signal.aborted) process.exit(130); // a second Ctrl-C: the user wants out now
    io.err.write('sim: stopping (Ctrl-C again to quit at once)\n');
    stop.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  let last = { atMs: 0, published: 0 };
  try {
    const summary = await runSim(opts, {
      signal: stop.signal,
      progressIntervalMs: flags.progress,
      onProgress: (s) => {
        const published = s.published.telemetry + s.published.heartbeat;
        const rate =
          s.elapsedMs > last.atMs ? ((published - last.published) * 1_000) / (s.elapsedMs - last.atMs) : 0;
        last = { atMs: s.elapsedMs, published };
        io.err.write(progressLine(s, rate) + '\n');
      },
    });
    say(formatSummary(summary));
    return exitCode(summary, opts.url);
  } catch (error) {
    if (!(error instanceof VigilError)) throw error;
    io.err.write(`vigil sim: ${error.message}\n${hintLine(error)}`);
    return 2;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }

  function exitCode(s: SimSummary, url: string): number {
    if (s.connected > 0 || s.devices === s.neverRegistered) return 0;
    io.err.write(`vigil sim: no device could connect to ${url}${s.firstError ? ` (${s.firstError})` : ''}\n`);
    if (s.firstError?.includes('Not authorized')) {
      io.err.write(
        'vigil sim: the gateway wants device credentials: write the profiles with --fleet-secret S --profiles-out FILE,\n' +
          '           import them with "vigil profiles import FILE", then run the simulator with the same --fleet-secret\n',
      );
    }
    return 1;
  }
}

function describePlan(opts: SimOptions, plan: FleetPlan): string {
  const o = plan.options;
  const lines = [
    `sim: ${o.devices} devices -> ${opts.url}, ${o.rate} events/s for ` +
      `${o.durationMs === Infinity ? 'ever' : `${o.durationMs / 1_000} s`}, ${opts.format ?? D.format}, ` +
      `QoS ${opts.qos ?? D.qos}, seed ${o.seed}`,
  ];
  const list = (ids: readonly string[]): string =>
    ids.length <= 10 ? ids.join(', ') : `${ids.slice(0, 10).join(', ')} … (${ids.length})`;
  if (plan.neverRegistered.length > 0) lines.push(`     never register: ${list(plan.neverRegistered)}`);
  if (plan.silent.length > 0) lines.push(`     go silent (${o.silentMode}): ${list(plan.silent)}`);
  for (const outage of plan.outages)
    lines.push(`     outage at ${outage.site}: ${outage.devices.join(', ')}`);
  if (plan.heatBursts.length > 0) lines.push(`     heat bursts: ${list(plan.heatBursts)}`);
  if (plan.humidBursts.length > 0) lines.push(`     humid bursts: ${list(plan.humidBursts)}`);
  return lines.join('\n');
}

function progressLine(s: SimSummary, rate: number): string {
  const connecting = s.devices - s.neverRegistered;
  return (
    `sim ${(s.elapsedMs / 1_000).toFixed(1).padStart(6)}s  connected ${s.connected}/${connecting}` +
    `  published ${s.published.telemetry + s.published.heartbeat} (${Math.round(rate)}/s)` +
    `  failed ${s.failed}  commands ${s.commands}`
  );
}

function wholeNumber(value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 0) throw new InvalidArgumentError('expected a whole number');
  return n;
}

function integer(value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n)) throw new InvalidArgumentError('expected an integer');
  return n;
}

function positiveNumber(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('expected a number above 0');
  return n;
}

function share(value: string): number {
  const n = Number(value);
  if (!(n >= 0 && n <= 1)) throw new InvalidArgumentError('expected a share from 0 to 1, e.g. 0.05');
  return n;
}

function duration(value: string): number {
  const ms = parseDurationMs(value);
  if (ms === undefined) throw new InvalidArgumentError('expected a duration such as 500ms, 20s, 5m, 1h');
  return ms;
}

function ms(value: number): string {
  return value % 1_000 === 0 ? `${value / 1_000}s` : `${value}ms`;
}

function durationOrForever(value: string): number {
  return value === 'forever' ? Infinity : duration(value);
}

/** An error's hint on a line of its own, or nothing when it has none. */
function hintLine(error: unknown): string {
  return error instanceof VigilError && error.hint !== undefined ? `hint: ${error.hint}\n` : '';
}
