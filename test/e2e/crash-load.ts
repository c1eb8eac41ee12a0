import type { MqttClient } from 'mqtt';
import type { Action } from '../../src/shared/index.js';
import { startGatewayProcess, type GatewayProcess } from '../helpers/gateway-process.js';
import {
  connectBusiness,
  connectReconnectingDevice,
  crashScene,
  READING_RULES,
  replayedActionIds,
  saveCloudActionIds,
  seeded,
  waitUntil,
} from './crash-harness.js';

/** The device subscribed to its commands at QoS 1; each of its levels decides a command and an action. */
export const COMMANDED = 'dev-cmd';

/**
 * Every reading of a device and every level of the commanded device decides one action with its number `n`; a
 * level is also a command to its device. No policy: nothing is suppressed.
 */
const SET_RELAY_RULES = {
  'set-relay.yaml': `id: set-relay
description: Every level sets the relay of its device, and the cloud hears of it.
priority: 60
category: control
when:
  event: level
then:
  action: set-relay
  to: [upstream, device]
  payload:
    n: data.n
`,
};

/** Every order from the cloud decides one action with its number `n`. */
const ORDER_RULES = {
  'order.yaml': `id: order
description: Every order from the cloud is confirmed to the cloud, with its number.
priority: 50
category: maintenance
when:
  event: order
then:
  action: confirm-order
  to: [upstream]
  payload:
    n: data.n
`,
};

export interface CrashLoadOptions {
  /** Names the run in what it prints. */
  name: string;
  kills: number;
  seed: number;
  /** Devices publishing readings (each decides one action to the cloud). */
  devices: number;
  /** A device's pause between two readings: `minMs` plus up to `spreadMs`, at random. */
  readingPause: { minMs: number; spreadMs: number };
  /** Extra `vigil run` arguments (`--threads 2`). */
  args?: readonly string[];
  /** The business system publishes orders to the cloud broker too, for this many customers. */
  customers?: number;
  onCleanup: (cleanup: () => Promise<unknown>) => void;
}

/** What a crash run under load saw, once every acknowledged event had the time to reach the cloud. */
export interface CrashLoadRun {
  /** `scenario actor n` of every event acknowledged to its sender. */
  expected: ReadonlySet<string>;
  /** Every action delivery at the cloud. */
  deliveries: ReadonlyArray<{ action: Action }>;
  /** The distinct ids the cloud received for each `scenario actor n`. */
  idsByKey: ReadonlyMap<string, ReadonlySet<string>>;
  /** The distinct action ids the cloud received. */
  received: ReadonlySet<string>;
  /** The commands at the commanded device, with the QoS each came at. */
  commands: ReadonlyArray<{ qos: number; action: Action }>;
  /** The distinct command ids for each level `n`. */
  commandIds: ReadonlyMap<number, ReadonlySet<string>>;
  /** Acknowledged publishes: readings of all devices and levels; levels alone; orders. */
  deviceEvents: number;
  levels: number;
  orders: number;
  /** The gateway's data dir. */
  dataDir: string;
  missingActions(): string[];
  missingCommands(): number[];
  /** Stops the gateway and runs the built `vigil replay --journal` over what it retained. */
  replay(): ReturnType<typeof replayedActionIds>;
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** `publish(n)` for n = 1, 2, ... while `going()`, the next once the last is acknowledged (`acked(n)`). */
async function publishLoop(
  publish: (n: number) => Promise<unknown>,
  going: () => boolean,
  pauseMs: () => number,
  acked: (n: number) => void,
): Promise<void> {
  for (let n = 1; going(); n++) {
    await publish(n);
    acked(n);
    await pause(pauseMs());
  }
}

/** How many distinct ids the cloud received for each `scenario actor n`. */
function idsByKey(actions: ReadonlyArray<{ action: Action }>): Map<string, Set<string>> {
  const ids = new Map<string, Set<string>>();
  for (const { action } of actions) {
    const key = `${action.scenario} ${action.actor} ${String(action.payload.n)}`;
    ids.set(key, (ids.get(key) ?? new Set()).add(action.id));
  }
  return ids;
}

/**
 * The gateway (the built CLI) killed with -9 `kills` times at random moments, 1.5–3 s apart, and started again on
 * the same port, while devices publish readings at QoS 1, a device subscribed to its commands publishes levels
 * (each a command back to it), and the business system, when asked, publishes orders to the cloud broker. Each
 * publisher sends its next once the last is acknowledged. Then it waits (up to 30 s) for every acknowledged
 * event's action at the cloud and every command at its device, and reports what arrived.
 */
export async function runCrashLoad(opts: CrashLoadOptions): Promise<CrashLoadRun> {
  console.log(`${opts.name}: seed ${opts.seed} (VIGIL_CRASH_SEED=${opts.seed} repeats it)`);
  const random = seeded(opts.seed);
  const ordering = opts.customers !== undefined;
  // Checkpoints every second, so that kills land before, during and after them, and delivered ids are forgotten.
  const scene = await crashScene({
    rules: { ...READING_RULES, ...SET_RELAY_RULES, ...(ordering ? ORDER_RULES : {}) },
    checkpointInterval: '1s',
    onCleanup: opts.onCleanup,
  });
  const { cloud } = scene;
  const args = (port: number) => [...scene.args(port), ...(opts.args ?? [])];
  const business = await connectBusiness(cloud);
  opts.onCleanup(() => business.client.endAsync(true));
  let gateway: GatewayProcess = await startGatewayProcess(args(0));
  // Whichever runs when the test ends (or fails).
  opts.onCleanup(() => gateway.stop());
  const port = gateway.mqttPort;
  await business.online;

  const devices: MqttClient[] = [];
  for (let d = 0; d < opts.devices; d++) devices.push(await connectReconnectingDevice(port, `dev-${d}`));
  const commanded = await connectReconnectingDevice(port, COMMANDED);
  opts.onCleanup(() => Promise.all([...devices, commanded].map((c) => c.endAsync(true))));
  // mqtt.js subscribes again on every reconnect (a clean session), and acknowledges each command at once.
  const commands: Array<{ qos: number; action: Action }> = [];
  commanded.on('message', (_topic, payload, packet) => {
    commands.push({ qos: packet.qos, action: JSON.parse(payload.toString()) as Action });
  });
  await commanded.subscribeAsync(`devices/${COMMANDED}/commands/#`, { qos: 1 });

  let publishing = true;
  const going = () => publishing;
  const readings = new Array<number>(opts.devices).fill(0);
  let levels = 0;
  let orders = 0;
  const { minMs, spreadMs } = opts.readingPause;
  const loops = [
    ...devices.map((client, d) =>
      publishLoop(
        (n) => client.publishAsync(`devices/dev-${d}/events/telemetry`, JSON.stringify({ n }), { qos: 1 }),
        going,
        () => minMs + Math.floor(random() * spreadMs),
        (n) => (readings[d] = n),
      ),
    ),
    publishLoop(
      (n) => commanded.publishAsync(`devices/${COMMANDED}/events/level`, JSON.stringify({ n }), { qos: 1 }),
      going,
      () => 10 + Math.floor(random() * 20),
      (n) => (levels = n),
    ),
  ];
  const customers = opts.customers ?? 0;
  if (ordering) {
    // The cloud broker acknowledges an order whether the gateway is up or not: it keeps it for the session.
    loops.push(
      publishLoop(
        (n) =>
          business.client.publishAsync(
            'vigil/gw1/events',
            JSON.stringify({ actor: `cust-${n % customers}`, type: 'order', data: { n } }),
            { qos: 1 },
          ),
        going,
        () => 2 + Math.floor(random() * 10),
        (n) => (orders = n),
      ),
    );
  }
  // A loop cut short by the test failing must not outlive it as an unhandled rejection.
  for (const loop of loops) loop.catch(() => undefined);

  // What can repeat is what was in flight at a kill (published, its PUBACK not yet recorded): a share of the
  // actions decided between two kills that shrinks as they grow apart. 1.5–3 s keeps it well under the bound on
  // a busy machine (about 20 repeats a kill at a load average of 15).
  for (let kill = 0; kill < opts.kills; kill++) {
    await pause(1_500 + Math.floor(random() * 1_500));
    await gateway.kill();
    gateway = await startGatewayProcess(args(port));
  }
  // Load after the last restart too, then stop; every publish under way is acknowledged by then.
  await pause(500);
  publishing = false;
  await Promise.all(loops);

  const expected = new Set<string>();
  for (let d = 0; d < opts.devices; d++) {
    for (let n = 1; n <= (readings[d] ?? 0); n++) expected.add(`reading dev-${d} ${n}`);
  }
  for (let n = 1; n <= levels; n++) expected.add(`set-relay ${COMMANDED} ${n}`);
  for (let n = 1; n <= orders; n++) expected.add(`order cust-${n % customers} ${n}`);
  const missingActions = () => {
    const ids = idsByKey(cloud.actions);
    return [...expected].filter((key) => !ids.has(key));
  };
  const commandIds = () => {
    const ids = new Map<number, Set<string>>();
    for (const { action } of commands) {
      const n = Number(action.payload.n);
      ids.set(n, (ids.get(n) ?? new Set()).add(action.id));
    }
    return ids;
  };
  const missingCommands = () => {
    const ids = commandIds();
    return Array.from({ length: levels }, (_, i) => i + 1).filter((n) => !ids.has(n));
  };
  await waitUntil(
    () => missingActions().length === 0 && missingCommands().length === 0,
    30_000,
    'every acknowledged event’s action at the cloud and every command at its device',
  ).catch(() => undefined);
  // Whatever is still in flight lands.
  await pause(1_000);

  const { ids: received, dataDir } = await saveCloudActionIds(scene);
  const deliveries = [...cloud.actions];
  const deviceEvents = readings.reduce((a, b) => a + b, 0) + levels;
  const repeats = deliveries.length - received.size;
  const distinctCommands = new Set(commands.map((c) => c.action.id));
  console.log(
    `${opts.name}: ${opts.kills} kills; ${deviceEvents} device events and ${orders} cloud events acknowledged; ` +
      `${received.size} actions, ${deliveries.length} deliveries at the cloud, ${repeats} repeats ` +
      `(${((100 * repeats) / Math.max(1, received.size)).toFixed(2)}%); ${levels} commands expected, ` +
      `${distinctCommands.size} received (${commands.length - distinctCommands.size} repeats); data ${dataDir}`,
  );
  return {
    expected,
    deliveries,
    idsByKey: idsByKey(deliveries),
    received,
    commands: [...commands],
    commandIds: commandIds(),
    deviceEvents,
    levels,
    orders,
    dataDir,
    missingActions,
    missingCommands,
    replay: async () => {
      await gateway.stop();
      return replayedActionIds(dataDir);
    },
  };
}
