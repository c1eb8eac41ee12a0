import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { createServer } from 'node:net';
import { join } from 'node:path';
import type { Command } from 'commander';
import mqtt, { type MqttClient } from 'mqtt';
import {
  formatSummary,
  generateProfiles,
  planFleet,
  runSim,
  type FleetPlan,
  type SimOptions,
} from '../../firmware-sim/index.js';
import { startLocalBroker } from '../broker/index.js';
import { parseConfig } from '../config/index.js';
import { startGateway, type Gateway } from '../app/index.js';
import { CredentialStore } from '../credentials/index.js';
import { ConfigError, parseDurationMs, upstreamTopics, type Action } from '../shared/index.js';
import { DemoConsole } from './demo-console.js';
import { writeDemoRules } from './demo-rules.js';
import { liveFigures, printSummary, Received } from './demo-summary.js';
import { exitWithError, parsePositiveInt } from './util.js';

export interface DemoOptions {
  devices: number;
  rate: number;
  /** How long the fleet publishes; `Infinity` until Ctrl-C. */
  durationMs: number;
  format: 'json' | 'cbor';
  seed: number;
  /** Action lines printed per second at most; the others are counted in the live line. */
  print: number;
  /** The demo policy's cooldown and contact window: how soon the same device can be reported again. */
  cadenceMs: number;
}

/** The demo gateway's id, in its upstream topics. */
const DEMO_GATEWAY = 'demo';
/** Where stdout is not a terminal (a log, a pipe), the live line is printed this often. */
const STATUS_EVERY_MS = 5_000;

const DEMO_DEFAULTS = {
  devices: 200,
  rate: 200,
  format: 'json',
  seed: 1,
  print: 20,
  cadence: '30s',
} as const;

/**
 * The gateway on its embedded defaults (MQTT 1883 and HTTP 8080, or free ports when those are taken;
 * a fresh data dir), a local broker playing the cloud, and the simulated fleet. Prints the dashboard's
 * address first, then actions as the cloud receives them with a live summary line, until `durationMs` has
 * passed or `stop` is aborted (Ctrl-C); then a summary.
 */
export async function runDemo(
  opts: DemoOptions,
  out: NodeJS.WritableStream & { isTTY?: boolean } = process.stdout,
  stop: AbortSignal = new AbortController().signal,
): Promise<void> {
  const root = await mkdtemp(join(tmpdir(), 'vigil-demo-'));
  const cloud = await startLocalBroker();
  const cloudUrl = `mqtt://127.0.0.1:${cloud.address.port}`;
  const rulesOverlay = await writeDemoRules(join(root, 'rules'), opts.cadenceMs);
  const gateway = await startDemoGateway(join(root, 'data'), cloudUrl, rulesOverlay);
  const startedAtMs = Date.now();
  const screen = new DemoConsole(out, { printPerS: opts.print, statusEveryMs: STATUS_EVERY_MS, startedAtMs });
  const say = (line: string) => screen.say(line);
  say(`vigil demo: dashboard on http://127.0.0.1:${gateway.http.port}/ (metrics on /metrics)`);
  say(`            gateway mqtt on 127.0.0.1:${gateway.mqtt.port}`);
  say(`            cloud broker on ${cloudUrl}; data in ${root}`);
  say(`            scenarios: ${gateway.rules.scenarios.map((s) => s.id).join(', ')}`);

  const simOptions = demoSimOptions(opts, `mqtt://127.0.0.1:${gateway.mqtt.port}`);
  const plan = planFleet(simOptions);
  await gateway.store.profiles.putMany(
    [...generateProfiles(simOptions)].map((p) => ({ id: p.id, profile: { ...p } })),
  );
  const until = Number.isFinite(opts.durationMs) ? `for ${opts.durationMs / 1000} s` : 'until Ctrl-C';
  say(`            ${opts.devices} device profiles imported; the fleet publishes ${until}\n`);

  const received = new Received();
  const cloudClient = await mqtt.connectAsync(cloudUrl, { clientId: 'demo-cloud', reconnectPeriod: 0 });
  await receiveActions(cloudClient, received, screen);
  await waitUntil(() => gateway.metrics.upstreamConnected.get().then((m) => m.values[0]?.value === 1), 5_000);
  await speakForBusinessSystems(cloudClient, plan);

  const live = setInterval(() => {
    liveFigures(gateway).then(
      (figures) => screen.update(figures),
      () => undefined,
    );
  }, 1_000);
  try {
    const simSummary = await runFleet(gateway, simOptions, plan, received, stop);
    // Give the uplink a moment to deliver what was decided last.
    await waitUntil(() => gateway.store.outbox.size === 0, 2_000);
    screen.finish();
    say('\n' + formatSummary(simSummary));
    await printSummary(say, gateway, received, simSummary.commands);
  } finally {
    clearInterval(live);
    screen.finish();
    await cloudClient.endAsync();
    await gateway.stop();
    await cloud.close();
    await rm(root, { recursive: true, force: true });
  }
}

/** Every device authenticates, as on a real site: one credential each, the secret handed to the simulator. */
async function runFleet(
  gateway: Gateway,
  simOptions: SimOptions,
  plan: FleetPlan,
  received: Received,
  stop: AbortSignal,
): Promise<Awaited<ReturnType<typeof runSim>>> {
  const credentials = new CredentialStore(gateway.store.sublevels.creds);
  const secrets = new Map<string, string>();
  for (const device of plan.devices) {
    if (device.registered) secrets.set(device.id, await credentials.add(device.id));
  }
  return runSim(
    { ...simOptions, credentials: (id) => ({ username: id, password: secrets.get(id) ?? '' }) },
    {
      signal: stop,
      onCommand: (_deviceId, _name, payload, receivedAtMs) => {
        received.command(JSON.parse(payload.toString()) as Action, receivedAtMs);
      },
    },
  );
}

async function startDemoGateway(dataDir: string, cloudUrl: string, rulesOverlay: string): Promise<Gateway> {
  const config = parseConfig({
    gatewayId: DEMO_GATEWAY,
    data: dataDir,
    mqtt: { host: '127.0.0.1', port: (await isFree(1883)) ? 1883 : 0 },
    http: { port: (await isFree(8080)) ? 8080 : 0 },
    upstream: { url: cloudUrl, reconnect: '500ms' },
    log: { level: 'warn' },
  });
  // The demo profile: the shipped rules, with non-events shortened from minutes and hours to seconds.
  return startGateway(config, { rulesOverlay });
}

function demoSimOptions(opts: DemoOptions, url: string): SimOptions {
  return {
    url,
    devices: opts.devices,
    rate: opts.rate,
    durationMs: opts.durationMs,
    format: opts.format,
    seed: opts.seed,
    qos: 0,
    // Behaviours that make every shipped scenario fire within the demo.
    silentShare: 0.03,
    silentAfterMs: Math.min(5_000, opts.durationMs / 4),
    silentMode: 'mixed',
    outageSites: 1,
    outageAfterMs: Math.min(6_000, opts.durationMs / 3),
    heatBursts: 2,
    heatBurstReadings: 5,
    humidBursts: 2,
    neverRegistered: 3,
  };
}

/** Subscribes the cloud to the demo gateway's actions; each one is counted and printed as it arrives. */
async function receiveActions(
  cloudClient: MqttClient,
  received: Received,
  screen: DemoConsole,
): Promise<void> {
  const seen = new Set<string>();
  await cloudClient.subscribeAsync(upstreamTopics(DEMO_GATEWAY).actions, { qos: 1 });
  cloudClient.on('message', (_topic, payload) => {
    const at = Date.now();
    const action = JSON.parse(payload.toString()) as Action;
    // A redelivery after a reconnect is the same action; ids are remembered until the next one is new.
    if (seen.has(action.id)) return;
    if (seen.size >= 100_000) seen.clear();
    seen.add(action.id);
    received.action(action, at);
    screen.action(action);
  });
}

/** Business systems speak too: the CRM provisions devices (some never register) and creates customers. */
async function speakForBusinessSystems(cloudClient: MqttClient, plan: FleetPlan): Promise<void> {
  const crm = async (actor: string, type: string, data: Record<string, unknown> = {}) =>
    cloudClient.publishAsync(upstreamTopics(DEMO_GATEWAY).events, JSON.stringify({ actor, type, data }), {
      qos: 1,
    });
  for (const id of plan.neverRegistered) await crm(id, 'provisioned', { order: `ord-${id}` });
  for (const [i, type] of ['account-created', 'device-assigned', 'contract-created'].entries()) {
    await crm('cust-1', type, i === 2 ? { plan: 'premium' } : {});
  }
}

/** Whether a local port can be bound now; the demo falls back to a free port rather than failing. */
function isFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = createServer();
    probe.once('error', () => resolve(false));
    probe.listen(port, '127.0.0.1', () => probe.close(() => resolve(true)));
  });
}

async function waitUntil(check: () => boolean | Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
}

interface DemoFlags {
  devices: number;
  rate: number;
  duration?: string;
  format: string;
  seed: number;
  print: number;
  cadence: string;
}

export function demoOptionsFrom(flags: DemoFlags): DemoOptions {
  const durationMs = flags.duration === undefined ? Infinity : parseDurationMs(flags.duration);
  if (durationMs === undefined || durationMs <= 0)
    throw new ConfigError(`--duration: expected a duration such as 20s or 2m, got ${flags.duration}`);
  const cadenceMs = parseDurationMs(flags.cadence);
  if (cadenceMs === undefined || cadenceMs < 1_000)
    throw new ConfigError(`--cadence: expected a duration of 1s or more, such as 30s, got ${flags.cadence}`);
  if (flags.format !== 'json' && flags.format !== 'cbor')
    throw new ConfigError('--format: expected json or cbor');
  return {
    devices: flags.devices,
    rate: flags.rate,
    durationMs,
    format: flags.format,
    seed: flags.seed,
    print: flags.print,
    cadenceMs,
  };
}

/** Runs the demo until its duration or the first Ctrl-C (SIGINT) or SIGTERM; a second one exits at once. */
export async function runDemoUntilStopped(opts: DemoOptions): Promise<void> {
  const stop = new AbortController();
  const onSignal = (): void => {
    if (stop.signal.aborted) process.exit(130);
    stop.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    await runDemo(opts, process.stdout, stop.signal);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

export function registerDemoCommand(program: Command): void {
  addDemoOptions(
    program
      .command('demo')
      .description(
        'run the gateway with a simulated fleet and a local cloud broker until Ctrl-C, printing actions as they arrive',
      ),
  ).action(async (flags: DemoFlags) => {
    try {
      await runDemoUntilStopped(demoOptionsFrom(flags));
    } catch (err) {
      exitWithError(err);
    }
  });
}

export function addDemoOptions(cmd: Command): Command {
  return cmd
    .option('--devices <n>', 'simulated devices', parsePositiveInt, DEMO_DEFAULTS.devices)
    .option('--rate <n>', 'events per second across all devices', parsePositiveInt, DEMO_DEFAULTS.rate)
    .option('--duration <d>', 'how long the fleet publishes (default: until Ctrl-C)')
    .option('--format <f>', 'payload encoding: json or cbor', DEMO_DEFAULTS.format)
    .option('--seed <n>', 'random seed (same seed, same run)', parsePositiveInt, DEMO_DEFAULTS.seed)
    .option('--print <n>', 'action lines printed per second at most', parsePositiveInt, DEMO_DEFAULTS.print)
    .option(
      '--cadence <d>',
      'how soon the demo policy lets the same device be reported again (cooldown, contact window)',
      DEMO_DEFAULTS.cadence,
    );
}
