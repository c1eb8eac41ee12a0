import type { MqttClient } from 'mqtt';
import { afterEach, describe, expect, test } from 'vitest';
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

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const KILLS = Number(process.env.VIGIL_CRASH_KILLS ?? 4);
const SEED = Number(process.env.VIGIL_CRASH_SEED ?? Date.now() % 1_000_000);
const DEVICES = 6;
/** The device subscribed to its commands at QoS 1; each of its levels decides a command and an action. */
const COMMANDED = 'dev-cmd';

const RULES = {
  ...READING_RULES,
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

describe('kill -9 of the gateway with --threads 2 under QoS 1 load', () => {
  test(`${KILLS} crashes: every acknowledged event decided once, every command at its device, the journal replays to what the cloud received`, async () => {
    console.log(`crash threads: seed ${SEED} (VIGIL_CRASH_SEED=${SEED} repeats it)`);
    const random = seeded(SEED);
    const scene = await crashScene({
      rules: RULES,
      checkpointInterval: '1s',
      onCleanup: (c) => cleanups.push(c),
    });
    const { cloud } = scene;
    const args = (port: number) => [...scene.args(port), '--threads', '2'];
    const business = await connectBusiness(cloud);
    cleanups.push(() => business.client.endAsync(true));
    let gateway: GatewayProcess = await startGatewayProcess(args(0));
    const port = gateway.mqttPort;
    await business.online;

    const devices: MqttClient[] = [];
    for (let d = 0; d < DEVICES; d++) devices.push(await connectReconnectingDevice(port, `dev-${d}`));
    const commanded = await connectReconnectingDevice(port, COMMANDED);
    cleanups.push(() => Promise.all([...devices, commanded].map((c) => c.endAsync(true))));
    const commands: Action[] = [];
    commanded.on('message', (_topic, payload) => commands.push(JSON.parse(payload.toString()) as Action));
    await commanded.subscribeAsync(`devices/${COMMANDED}/commands/#`, { qos: 1 });

    let publishing = true;
    const going = () => publishing;
    const readings = new Array<number>(DEVICES).fill(0);
    let levels = 0;
    const loops = [
      ...devices.map((client, d) =>
        publishLoop(
          (n) => client.publishAsync(`devices/dev-${d}/events/telemetry`, JSON.stringify({ n }), { qos: 1 }),
          going,
          () => 2 + Math.floor(random() * 10),
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
    for (const loop of loops) loop.catch(() => undefined);

    for (let kill = 0; kill < KILLS; kill++) {
      await pause(1_500 + Math.floor(random() * 1_500));
      await gateway.kill();
      gateway = await startGatewayProcess(args(port));
    }
    cleanups.push(() => gateway.stop());
    await pause(500);
    publishing = false;
    await Promise.all(loops);

    const expected = new Set<string>();
    for (let d = 0; d < DEVICES; d++) {
      for (let n = 1; n <= (readings[d] ?? 0); n++) expected.add(`reading dev-${d} ${n}`);
    }
    for (let n = 1; n <= levels; n++) expected.add(`set-relay ${COMMANDED} ${n}`);
    const idsByKey = () => {
      const ids = new Map<string, Set<string>>();
      for (const { action } of cloud.actions) {
        const key = `${action.scenario} ${action.actor} ${String(action.payload.n)}`;
        ids.set(key, (ids.get(key) ?? new Set()).add(action.id));
      }
      return ids;
    };
    const missingActions = () => [...expected].filter((key) => !idsByKey().has(key));
    const commandNumbers = () => new Set(commands.map((c) => Number(c.payload.n)));
    const missingCommands = () =>
      Array.from({ length: levels }, (_, i) => i + 1).filter((n) => !commandNumbers().has(n));
    await waitUntil(
      () => missingActions().length === 0 && missingCommands().length === 0,
      30_000,
      'every acknowledged event’s action at the cloud and every command at its device',
    ).catch(() => undefined);
    await pause(1_000);

    const { ids: received, dataDir } = await saveCloudActionIds(scene);
    const deviceEvents = readings.reduce((a, b) => a + b, 0) + levels;
    console.log(
      `crash threads: ${KILLS} kills; ${deviceEvents} device events acknowledged; ${received.size} actions, ` +
        `${cloud.actions.length} deliveries at the cloud; ${levels} commands expected, ${commands.length} received`,
    );
    expect(missingActions().slice(0, 20)).toEqual([]);
    expect([...idsByKey()].filter(([, set]) => set.size > 1).map(([key]) => key)).toEqual([]);
    expect(missingCommands()).toEqual([]);
    expect(deviceEvents).toBeGreaterThan(KILLS * DEVICES * 10);

    await gateway.stop();
    const replayed = await replayedActionIds(dataDir);
    expect(replayed.code, replayed.stderr).toBe(0);
    expect([...replayed.ids].filter((id) => !received.has(id)).slice(0, 20)).toEqual([]);
    expect([...received].filter((id) => !replayed.ids.has(id)).slice(0, 20)).toEqual([]);
  }, 90_000);
});
