import mqtt, { type MqttClient } from 'mqtt';
import { afterEach, describe, expect, test } from 'vitest';
import { startGatewayProcess, type GatewayProcess } from '../helpers/gateway-process.js';
import { crashScene, type Received, seeded, waitUntil } from './crash-harness.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const KILLS = Number(process.env.VIGIL_CRASH_KILLS ?? 20);
const SEED = Number(process.env.VIGIL_CRASH_SEED ?? Date.now() % 1_000_000);
const DEVICES = 8;

/**
 * Two scenarios whose right answer is known from the readings alone: one stateful (every third reading of a
 * device: a lost or doubled reading, or lost state, moves it), one per reading (readings flagged hot).
 */
const RULES = {
  'every-third.yaml': `id: every-third
description: Every third reading of a device.
priority: 60
category: maintenance
when:
  event: telemetry
  count: 3
then:
  action: third-reading
  to: [upstream]
  payload:
    n: data.n
`,
  'hot.yaml': `id: hot
description: A reading flagged hot.
priority: 80
category: maintenance
when:
  event: telemetry
  where: data.hot
then:
  action: cool-down
  to: [upstream, device]
  payload:
    n: data.n
`,
};

const isHot = (n: number) => n % 7 === 0;

describe('kill -9 at random moments while devices publish at QoS 1', () => {
  test(`${KILLS} crashes: every acknowledged reading has its effects at the cloud, once per id, and nothing else`, async () => {
    console.log(`crash loop: seed ${SEED} (VIGIL_CRASH_SEED=${SEED} repeats it)`);
    const random = seeded(SEED);
    // Checkpoints every half second, so that kills land before, during and after them.
    const { cloud, args } = await crashScene({
      rules: RULES,
      checkpointInterval: '500ms',
      onCleanup: (c) => cleanups.push(c),
    });
    let gateway: GatewayProcess = await startGatewayProcess(args(0));
    const port = gateway.mqttPort;
    const outputs: string[] = [];

    // Each device publishes its readings 1, 2, 3, ... one at a time, the next once the last is acknowledged;
    // mqtt.js sends an unacknowledged one again after reconnecting.
    let publishing = true;
    const acked = new Array<number>(DEVICES).fill(0);
    const devices: MqttClient[] = [];
    for (let d = 0; d < DEVICES; d++) {
      const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, {
        clientId: `dev-${d}`,
        reconnectPeriod: 100,
        connectTimeout: 2_000,
      });
      client.on('error', () => undefined);
      devices.push(client);
    }
    cleanups.push(() => Promise.all(devices.map((c) => c.endAsync(true))));
    const loops = devices.map(async (client, d) => {
      for (let n = 1; publishing; n++) {
        await client.publishAsync(`devices/dev-${d}/events/telemetry`, JSON.stringify({ n, hot: isHot(n) }), {
          qos: 1,
        });
        acked[d] = n;
        await new Promise((r) => setTimeout(r, 5 + Math.floor(random() * 10)));
      }
    });
    // A loop cut short by the test failing must not outlive it as an unhandled rejection.
    for (const loop of loops) loop.catch(() => undefined);

    for (let kill = 0; kill < KILLS; kill++) {
      await new Promise((r) => setTimeout(r, 300 + Math.floor(random() * 1_200)));
      await gateway.kill();
      outputs.push(gateway.output());
      gateway = await startGatewayProcess(args(port));
    }
    cleanups.push(() => gateway.stop());
    publishing = false;
    await Promise.all(loops);

    const expected = new Map<string, number>(); // `${scenario} ${device} ${n}` → how many distinct ids
    for (let d = 0; d < DEVICES; d++) {
      for (let n = 1; n <= (acked[d] ?? 0); n++) {
        if (n % 3 === 0) expected.set(`every-third dev-${d} ${n}`, 1);
        if (isHot(n)) expected.set(`hot dev-${d} ${n}`, 1);
      }
    }
    const keyOf = (r: Received) => `${r.action.scenario} ${r.action.actor} ${String(r.action.payload.n)}`;
    const distinctIds = (): Map<string, Set<string>> => {
      const ids = new Map<string, Set<string>>();
      for (const r of cloud.actions) {
        const key = keyOf(r);
        ids.set(key, (ids.get(key) ?? new Set()).add(r.action.id));
      }
      return ids;
    };
    try {
      await waitUntil(
        () => [...expected.keys()].every((key) => distinctIds().has(key)),
        30_000,
        'every expected action at the cloud',
      );
    } catch (err) {
      const missing = [...expected.keys()].filter((key) => !distinctIds().has(key));
      console.log(`missing ${missing.length}: ${missing.slice(0, 20).join(', ')}\n${gateway.output()}`);
      throw err;
    }
    // Whatever is still in flight lands; then nothing may be there that should not be.
    await new Promise((r) => setTimeout(r, 500));
    const ids = distinctIds();
    const unexpected = [...ids.keys()].filter((key) => !expected.has(key));
    const doubled = [...ids].filter(([, set]) => set.size > 1).map(([key]) => key);
    const published = acked.reduce((a, b) => a + b, 0);
    console.log(
      `crash loop: ${KILLS} kills, ${published} readings acknowledged, ${expected.size} actions expected, ` +
        `${cloud.actions.length} received (${cloud.actions.length - ids.size} repeats with the same id)`,
    );
    if (unexpected.length > 0 || doubled.length > 0) console.log(outputs.join('\n---\n'));
    expect(unexpected).toEqual([]);
    expect(doubled).toEqual([]);
    expect(published).toBeGreaterThan(KILLS * DEVICES);
  }, 110_000);
});
