import mqtt, { type MqttClient } from 'mqtt';
import { afterEach, describe, expect, test } from 'vitest';
import { startGatewayProcess, type GatewayProcess } from '../helpers/gateway-process.js';
import { crashScene, READING_RULES, seeded, waitUntil } from './crash-harness.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const KILLS = Number(process.env.VIGIL_CRASH_KILLS ?? 6);
const SEED = Number(process.env.VIGIL_CRASH_SEED ?? Date.now() % 1_000_000);
const DEVICES = 20;
const EVENTS = 2_000;
const PER_DEVICE = EVENTS / DEVICES;
/** Repeats allowed: only what was in flight to the cloud at each kill. */
const MAX_DUPLICATE_SHARE = 0.02;

/** The value of a counter in a `/metrics` scrape, 0 if the gateway cannot be reached. */
async function counter(httpPort: number, name: string): Promise<number> {
  try {
    const text = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith(`${name} `));
    return line === undefined ? 0 : Number(line.slice(name.length + 1));
  } catch {
    return 0;
  }
}

describe('kill -9 while devices publish: what the cloud acknowledged is not sent again', () => {
  test(`${EVENTS} QoS 1 events from ${DEVICES} devices, ${KILLS} crashes: every action arrives, repeats only of those in flight`, async () => {
    console.log(`crash delivered: seed ${SEED} (VIGIL_CRASH_SEED=${SEED} repeats it)`);
    const random = seeded(SEED);
    // One upstream action per event, and no policy: nothing is suppressed. Checkpoints every second, so
    // that kills land before and after them and delivered ids are forgotten.
    const { cloud, args } = await crashScene({
      rules: READING_RULES,
      checkpointInterval: '1s',
      onCleanup: (c) => cleanups.push(c),
    });
    let gateway: GatewayProcess = await startGatewayProcess(args(0));
    const port = gateway.mqttPort;

    // Each device publishes its events 1..PER_DEVICE one at a time, the next once the last is acknowledged;
    // mqtt.js sends an unacknowledged one again after reconnecting.
    const acked = new Array<number>(DEVICES).fill(0);
    const total = () => acked.reduce((a, b) => a + b, 0);
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
    const pauses = Array.from({ length: EVENTS }, () => 50 + Math.floor(random() * 100));
    const loops = devices.map(async (client, d) => {
      for (let n = 1; n <= PER_DEVICE; n++) {
        await client.publishAsync(`devices/dev-${d}/events/telemetry`, JSON.stringify({ n }), { qos: 1 });
        acked[d] = n;
        await new Promise((r) => setTimeout(r, pauses[d * PER_DEVICE + n - 1]));
      }
    });
    // A loop cut short by the test failing must not outlive it as an unhandled rejection.
    for (const loop of loops) loop.catch(() => undefined);

    // The k-th kill comes at a random moment after about k/(KILLS+1) of the events are acknowledged: all of them
    // land while devices publish, whatever the speed of the machine, and not in step with a burst of
    // acknowledgements (the devices resending after the previous restart).
    const killAt = Array.from({ length: KILLS }, (_, k) => ({
      acked: Math.floor((EVENTS * (k + 0.75 + 0.5 * random())) / (KILLS + 1)),
      afterMs: Math.floor(random() * 250),
    }));
    let skipped = 0;
    for (const { acked: at, afterMs } of killAt) {
      await waitUntil(() => total() >= at, 30_000, `${at} events acknowledged`);
      await new Promise((r) => setTimeout(r, afterMs));
      skipped += await counter(gateway.httpPort, 'vigil_outbox_redelivery_skipped_total');
      await gateway.kill();
      gateway = await startGatewayProcess(args(port));
    }
    cleanups.push(() => gateway.stop());
    await Promise.all(loops);
    expect(total()).toBe(EVENTS);

    // Every acknowledged event's action at the cloud, each with one id.
    const keyOf = (d: number, n: number) => `dev-${d} ${n}`;
    const idsByEvent = () => {
      const ids = new Map<string, Set<string>>();
      for (const { action } of cloud.actions) {
        const key = `${action.actor} ${String(action.payload.n)}`;
        ids.set(key, (ids.get(key) ?? new Set()).add(action.id));
      }
      return ids;
    };
    const expected: string[] = [];
    for (let d = 0; d < DEVICES; d++) for (let n = 1; n <= PER_DEVICE; n++) expected.push(keyOf(d, n));
    await waitUntil(
      () => {
        const ids = idsByEvent();
        return expected.every((k) => ids.has(k));
      },
      30_000,
      'every acknowledged event’s action at the cloud',
    ).catch((err: unknown) => {
      const ids = idsByEvent();
      const missing = expected.filter((k) => !ids.has(k));
      console.log(`missing ${missing.length}: ${missing.slice(0, 20).join(', ')}\n${gateway.output()}`);
      throw err;
    });
    // Whatever is still in flight lands.
    await new Promise((r) => setTimeout(r, 1_000));
    skipped += await counter(gateway.httpPort, 'vigil_outbox_redelivery_skipped_total');

    const ids = idsByEvent();
    const deliveries = new Map<string, number>();
    for (const { action } of cloud.actions) deliveries.set(action.id, (deliveries.get(action.id) ?? 0) + 1);
    const duplicates = cloud.actions.length - deliveries.size;
    const repeated = [...deliveries.values()].filter((c) => c > 1).length;
    console.log(
      `crash delivered: ${KILLS} kills, ${EVENTS} events acknowledged, ${deliveries.size} actions, ` +
        `${cloud.actions.length} deliveries, ${duplicates} duplicates (${repeated} actions more than once), ` +
        `${skipped} not sent again because the cloud had them`,
    );
    expect(ids.size).toBe(EVENTS);
    expect([...ids.values()].every((set) => set.size === 1)).toBe(true);
    expect(deliveries.size).toBe(EVENTS);
    expect(duplicates).toBeLessThanOrEqual(EVENTS * MAX_DUPLICATE_SHARE);
    // Recovery decided actions again, and the outbox knew the cloud had them.
    expect(skipped).toBeGreaterThan(0);
  }, 90_000);
});
