import mqtt from 'mqtt';
import { afterEach, describe, expect, test } from 'vitest';
import type { Action } from '../../src/shared/index.js';
import { startGatewayProcess, type GatewayProcess } from '../helpers/gateway-process.js';
import { crashScene, seeded, waitUntil } from './crash-harness.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const KILLS = Number(process.env.VIGIL_CRASH_KILLS ?? 4);
const SEED = Number(process.env.VIGIL_CRASH_SEED ?? Date.now() % 1_000_000);

/** Every reading decides a command back to its device, with the reading's number. */
const RULES = {
  'set-relay.yaml': `id: set-relay
description: Every reading sets the relay.
priority: 50
category: control
when:
  event: telemetry
then:
  action: set-relay
  to: [device]
  payload:
    n: data.n
`,
};

describe('kill -9 while a device subscribed at QoS 1 is sent commands', () => {
  test(`${KILLS} crashes: the device receives the command of every acknowledged reading, one id each`, async () => {
    console.log(`crash commands: seed ${SEED} (VIGIL_CRASH_SEED=${SEED} repeats it)`);
    const random = seeded(SEED);
    const { args } = await crashScene({
      rules: RULES,
      checkpointInterval: '500ms',
      onCleanup: (c) => cleanups.push(c),
    });
    let gateway: GatewayProcess = await startGatewayProcess(args(0));
    const port = gateway.mqttPort;
    const outputs: string[] = [];

    // A clean session that subscribes again on every reconnect (mqtt.js does), and acknowledges at once.
    const device = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, {
      clientId: 'dev-1',
      reconnectPeriod: 100,
      connectTimeout: 2_000,
    });
    device.on('error', () => undefined);
    cleanups.push(() => device.endAsync(true));
    const received: Array<{ qos: number; action: Action }> = [];
    device.on('message', (_topic, payload, packet) => {
      received.push({ qos: packet.qos, action: JSON.parse(payload.toString()) as Action });
    });
    await device.subscribeAsync('devices/dev-1/commands/#', { qos: 1 });

    // Readings 1, 2, 3, ... at QoS 1, the next once the last is acknowledged; mqtt.js sends an
    // unacknowledged one again after reconnecting.
    let publishing = true;
    let acked = 0;
    const loop = (async () => {
      for (let n = 1; publishing; n++) {
        await device.publishAsync('devices/dev-1/events/telemetry', JSON.stringify({ n }), { qos: 1 });
        acked = n;
        await new Promise((r) => setTimeout(r, 10 + Math.floor(random() * 20)));
      }
    })();
    loop.catch(() => undefined);

    for (let kill = 0; kill < KILLS; kill++) {
      await new Promise((r) => setTimeout(r, 500 + Math.floor(random() * 1_500)));
      await gateway.kill();
      outputs.push(gateway.output());
      gateway = await startGatewayProcess(args(port));
    }
    cleanups.push(() => gateway.stop());
    // Readings after the last restart too, then stop.
    await new Promise((r) => setTimeout(r, 500));
    publishing = false;
    await loop;

    const idsByReading = (): Map<number, Set<string>> => {
      const ids = new Map<number, Set<string>>();
      for (const { action } of received) {
        const n = Number(action.payload.n);
        ids.set(n, (ids.get(n) ?? new Set()).add(action.id));
      }
      return ids;
    };
    const missing = (): number[] => {
      const ids = idsByReading();
      return Array.from({ length: acked }, (_, i) => i + 1).filter((n) => !ids.has(n));
    };
    try {
      await waitUntil(() => missing().length === 0, 20_000, 'the command of every acknowledged reading');
    } catch (err) {
      console.log(`missing ${missing().join(', ')}\n${outputs.join('\n---\n')}\n---\n${gateway.output()}`);
      throw err;
    }
    const ids = idsByReading();
    const distinct = new Set(received.map((r) => r.action.id));
    console.log(
      `crash commands: ${KILLS} kills, ${acked} readings acknowledged, ${distinct.size} distinct commands, ` +
        `${received.length} received (${received.length - distinct.size} repeats with the same id)`,
    );
    expect(acked).toBeGreaterThan(KILLS * 5);
    expect(distinct.size).toBeGreaterThanOrEqual(acked);
    // One id per reading: a repeat is the same command again, never a second one.
    expect([...ids].filter(([, set]) => set.size > 1)).toEqual([]);
    expect(new Set(received.map((r) => r.qos))).toEqual(new Set([1]));
  }, 60_000);
});
