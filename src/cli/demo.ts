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
import { shippedRulesDir } from '../rules/index.js';
import { ConfigError, parseDurationMs, upstreamTopics, type Action } from '../shared/index.js';
import { exitWithError, parsePositiveInt } from './util.js';

export interface DemoOptions {
  devices: number;
  rate: number;
  durationMs: number;
  format: 'json' | 'cbor';
  seed: number;
  /** Print at most this many actions, then only count them. */
  print: number;
}

/** The demo gateway's id, in its upstream topics. */
const DEMO_GATEWAY = 'demo';

const DEMO_DEFAULTS: DemoOptions = {
  devices: 200,
  rate: 200,
  durationMs: 20_000,
  format: 'json',
  seed: 1,
  print: 40,
};

/**
 * The gateway on its embedded defaults (MQTT 1883 and HTTP 8080, or free ports when those are taken;
 * a fresh data dir), a local broker playing the cloud, and the simulated fleet; prints actions as the
 * cloud receives them and a summary.
 */
export async function runDemo(opts: DemoOptions, out: NodeJS.WritableStream = process.stdout): Promise<void> {
  const say = (line: string) => out.write(line + '\n');
  const dataDir = await mkdtemp(join(tmpdir(), 'vigil-demo-'));
  const cloud = await startLocalBroker();
  const cloudUrl = `mqtt://127.0.0.1:${cloud.address.port}`;
  const gateway = await startDemoGateway(dataDir, cloudUrl);
  say(`vigil demo: gateway mqtt on 127.0.0.1:${gateway.mqtt.port}`);
  say(`            dashboard on http://127.0.0.1:${gateway.http.port}/ (metrics on /metrics)`);
  say(`            cloud broker on ${cloudUrl}; data in ${dataDir}`);
  say(`            scenarios: ${gateway.rules.scenarios.map((s) => s.id).join(', ')}`);

  const simOptions = demoSimOptions(opts, `mqtt://127.0.0.1:${gateway.mqtt.port}`);
  const plan = planFleet(simOptions);
  await gateway.store.profiles.putMany(
    [...generateProfiles(simOptions)].map((p) => ({ id: p.id, profile: { ...p } })),
  );
  say(`            ${opts.devices} device profiles imported\n`);

  const cloudClient = await mqtt.connectAsync(cloudUrl, { clientId: 'demo-cloud', reconnectPeriod: 0 });
  const received = await receiveActions(cloudClient, opts.print, say);
  await waitUntil(() => gateway.metrics.upstreamConnected.get().then((m) => m.values[0]?.value === 1), 5_000);
  await speakForBusinessSystems(cloudClient, plan);

  const commandLatency: number[] = [];
  // Every device authenticates, as on a real site: one credential each, the secret handed to the simulator.
  const credentials = new CredentialStore(gateway.store.sublevels.creds);
  const secrets = new Map<string, string>();
  for (const device of plan.devices) {
    if (device.registered) secrets.set(device.id, await credentials.add(device.id));
  }
  const simSummary = await runSim(
    { ...simOptions, credentials: (id) => ({ username: id, password: secrets.get(id) ?? '' }) },
    {
      onCommand: (_deviceId, _name, payload, receivedAtMs) => {
        const action = JSON.parse(payload.toString()) as Action;
        commandLatency.push(receivedAtMs - action.eventAt);
      },
    },
  );
  // Give the uplink a moment to deliver what was decided last.
  await waitUntil(() => gateway.store.outbox.size === 0, 2_000);

  say('\n' + formatSummary(simSummary));
  await printSummary(say, gateway, received, commandLatency);

  await cloudClient.endAsync();
  await gateway.stop();
  await cloud.close();
  await rm(dataDir, { recursive: true, force: true });
}

type Say = (line: string) => void;
interface Received {
  action: Action;
  at: number;
}

async function startDemoGateway(dataDir: string, cloudUrl: string): Promise<Gateway> {
  const config = parseConfig({
    gatewayId: DEMO_GATEWAY,
    data: dataDir,
    mqtt: { host: '127.0.0.1', port: (await isFree(1883)) ? 1883 : 0 },
    http: { port: (await isFree(8080)) ? 8080 : 0 },
    upstream: { url: cloudUrl, reconnect: '500ms' },
    log: { level: 'warn' },
  });
  // The demo profile: the shipped rules, with non-events shortened from minutes and hours to seconds.
  return startGateway(config, { rulesOverlay: join(shippedRulesDir(), 'demo') });
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

/** Subscribes the cloud to the demo gateway's actions; prints the first `print` of them as they arrive. */
async function receiveActions(cloudClient: MqttClient, print: number, say: Say): Promise<Received[]> {
  const received: Received[] = [];
  const seen = new Set<string>();
  await cloudClient.subscribeAsync(upstreamTopics(DEMO_GATEWAY).actions, { qos: 1 });
  const startedAt = Date.now();
  cloudClient.on('message', (_topic, payload) => {
    const at = Date.now();
    const action = JSON.parse(payload.toString()) as Action;
    if (seen.has(action.id)) return;
    seen.add(action.id);
    received.push({ action, at });
    if (received.length <= print) {
      const t = ((at - startedAt) / 1000).toFixed(1).padStart(5);
      say(
        `[${t}s] ${action.scenario.padEnd(28)} ${action.actor.padEnd(10)} -> ${action.action} ${JSON.stringify(action.payload)}`,
      );
    } else if (received.length === print + 1) {
      say(`        ... (further actions are counted, not printed)`);
    }
  });
  return received;
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

async function printSummary(
  say: Say,
  gateway: Gateway,
  received: readonly Received[],
  commandLatency: number[],
): Promise<void> {
  const metrics = await gateway.metrics.registry.getMetricsAsJSON();
  const valuesOf = (name: string) => metrics.find((m) => m.name === name)?.values ?? [];
  const sum = (name: string, labels: Record<string, string> = {}) =>
    valuesOf(name)
      .filter((v) => Object.entries(labels).every(([k, want]) => v.labels[k] === want))
      .reduce((acc, v) => acc + Number(v.value), 0);
  const cloudLatency = received.map((r) => r.at - r.action.eventAt);
  const perScenario = new Map<string, number>();
  for (const r of received) perScenario.set(r.action.scenario, (perScenario.get(r.action.scenario) ?? 0) + 1);

  say('\nSummary');
  const bySource = ['device', 'broker', 'cloud', 'engine']
    .map((source) => `${source} ${sum('vigil_events_in_total', { source })}`)
    .join(', ');
  say(`  events in                 ${sum('vigil_events_in_total')} (${bySource})`);
  say(`  actions decided           ${sum('vigil_actions_decided_total')}`);
  const reasons = new Map<string, number>();
  for (const v of valuesOf('vigil_actions_suppressed_total')) {
    const reason = String(v.labels.reason);
    reasons.set(reason, (reasons.get(reason) ?? 0) + Number(v.value));
  }
  const byReason = [...reasons].map(([reason, n]) => `${reason} ${n}`).join(', ');
  say(
    `  actions suppressed        ${sum('vigil_actions_suppressed_total')}${byReason ? ` (${byReason})` : ''}`,
  );
  say(`  device commands received  ${commandLatency.length}`);
  say(`  actions received upstream ${received.length}`);
  say('  per scenario                  matches  suppressed  received upstream');
  for (const stat of gateway.scenarioStats()) {
    const cells = [
      String(stat.matches).padStart(7),
      String(sum('vigil_actions_suppressed_total', { scenario: stat.scenario })).padStart(11),
      String(perScenario.get(stat.scenario) ?? 0).padStart(18),
    ];
    say(`    ${stat.scenario.padEnd(26)} ${cells.join(' ')}`);
  }
  say(`  arrival -> device command ${formatLatency(commandLatency)}`);
  say(`  arrival -> cloud          ${formatLatency(cloudLatency)}`);
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

function formatLatency(samples: number[]): string {
  if (samples.length === 0) return 'no samples';
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
  const ms = (v: number) => `${v.toFixed(1)} ms`;
  return `p50 ${ms(at(0.5))}, p99 ${ms(at(0.99))}, max ${ms(sorted[sorted.length - 1] ?? 0)} (${samples.length} samples)`;
}

interface DemoFlags {
  devices: number;
  rate: number;
  duration: string;
  format: string;
  seed: number;
  print: number;
}

export function demoOptionsFrom(flags: DemoFlags): DemoOptions {
  const durationMs = parseDurationMs(flags.duration);
  if (durationMs === undefined)
    throw new ConfigError(`--duration: expected a duration such as 20s or 2m, got ${flags.duration}`);
  if (flags.format !== 'json' && flags.format !== 'cbor')
    throw new ConfigError('--format: expected json or cbor');
  return {
    devices: flags.devices,
    rate: flags.rate,
    durationMs,
    format: flags.format,
    seed: flags.seed,
    print: flags.print,
  };
}

export function registerDemoCommand(program: Command): void {
  addDemoOptions(
    program
      .command('demo')
      .description(
        'run the gateway with a simulated fleet and a local cloud broker, and summarise what happened',
      ),
  ).action(async (flags: DemoFlags) => {
    try {
      await runDemo(demoOptionsFrom(flags));
    } catch (err) {
      exitWithError(err);
    }
  });
}

export function addDemoOptions(cmd: Command): Command {
  return cmd
    .option('--devices <n>', 'simulated devices', parsePositiveInt, DEMO_DEFAULTS.devices)
    .option('--rate <n>', 'events per second across all devices', parsePositiveInt, DEMO_DEFAULTS.rate)
    .option('--duration <d>', 'how long the fleet publishes', '20s')
    .option('--format <f>', 'payload encoding: json or cbor', DEMO_DEFAULTS.format)
    .option('--seed <n>', 'random seed (same seed, same run)', parsePositiveInt, DEMO_DEFAULTS.seed)
    .option('--print <n>', 'print at most this many actions', parsePositiveInt, DEMO_DEFAULTS.print);
}
