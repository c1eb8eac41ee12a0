import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterEach, describe, expect, test } from 'vitest';
import { startGateway, type Gateway } from '../../src/app/index.js';
import { startLocalBroker } from '../../src/broker/index.js';
import { parseConfig } from '../../src/config/index.js';
import type { Action } from '../../src/shared/index.js';
import { hasMosquitto, MOSQUITTO_MISSING, startMosquitto } from '../helpers/mosquitto.js';
import { Collector } from '../helpers/mqtt.js';
import { tempDir } from '../helpers/temp.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const ORDER = `
id: order
priority: 50
category: maintenance
when:
  event: order
then:
  action: confirm-order
  to: [upstream]
  payload:
    n: data.n
`;

const EVENTS = 20;

interface CloudBroker {
  url: string;
  stop(): Promise<void>;
}

const brokers: Array<{ name: string; protocolVersion: 4 | 5; start: () => Promise<CloudBroker> }> = [
  {
    name: 'aedes, MQTT 3.1.1',
    protocolVersion: 4,
    start: async () => {
      const broker = await startLocalBroker();
      return { url: `mqtt://127.0.0.1:${broker.address.port}`, stop: () => broker.close() };
    },
  },
  ...(hasMosquitto()
    ? ([4, 5] as const).map((protocolVersion) => ({
        name: `mosquitto, MQTT ${protocolVersion === 5 ? '5' : '3.1.1'}`,
        protocolVersion,
        start: () => startMosquitto(),
      }))
    : []),
];
if (!hasMosquitto()) console.warn(MOSQUITTO_MISSING);

describe.each(brokers)('the uplink session on $name', ({ protocolVersion, start }) => {
  test('what the cloud publishes while the gateway is stopped is decided once it runs again, and only then', async () => {
    const tmp = await tempDir();
    cleanups.push(() => tmp.remove());
    const rules = join(tmp.path, 'rules');
    await mkdir(rules);
    await writeFile(join(rules, 'order.yaml'), ORDER);
    const cloud = await start();
    cleanups.push(() => cloud.stop());
    const seen = await Collector.connect(cloud.url, [
      'vigil/gw1/actions',
      'vigil/gw1/status',
      'vigil/gw1/profiles/status',
    ]);
    cleanups.push(() => seen.close());
    const business = await mqtt.connectAsync(cloud.url, { clientId: 'crm', reconnectPeriod: 0 });
    cleanups.push(() => business.endAsync());

    const config = parseConfig({
      gatewayId: 'gw1',
      data: join(tmp.path, 'data'),
      rules,
      mqtt: { host: '127.0.0.1', port: 0, allowAnonymous: true },
      http: { port: 0 },
      upstream: { url: cloud.url, reconnect: '200ms', protocolVersion },
      log: { level: 'silent' },
    });
    const run = async (): Promise<{ gateway: Gateway; decided: Action[] }> => {
      const decided: Action[] = [];
      const onlineBefore = seen.messages.filter((m) => m.payload.toString() === 'online').length;
      const gateway = await startGateway(config, { onAction: (a) => decided.push(a) });
      await gateway.recovered;
      await seen.waitFor(
        (m) => m.filter((x) => x.payload.toString() === 'online').length > onlineBefore,
        5_000,
        'the gateway online',
      );
      return { gateway, decided };
    };

    // The first run creates the session; the gateway then stops as it does on SIGTERM.
    const first = await run();
    await first.gateway.stop();

    for (let n = 1; n <= EVENTS; n++) {
      const payload = JSON.stringify({ actor: `cust-${n % 3}`, type: 'order', data: { n } });
      await business.publishAsync('vigil/gw1/events', payload, { qos: 1 });
    }
    // Refused, and still acknowledged: the broker must not keep delivering it.
    await business.publishAsync('vigil/gw1/events', 'not json', { qos: 1 });
    const batch = { seq: 1, upsert: [{ id: 'cust-1', tier: 'gold' }] };
    await business.publishAsync('vigil/gw1/profiles', JSON.stringify(batch), { qos: 1 });
    await new Promise((r) => setTimeout(r, 300));
    expect(seen.json<Action>('vigil/gw1/actions')).toEqual([]);

    const second = await run();
    cleanups.push(() => second.gateway.stop());
    await seen.waitFor(
      (m) => m.filter((x) => x.topic === 'vigil/gw1/actions').length >= EVENTS,
      10_000,
      `${EVENTS} actions at the cloud`,
    );
    const numbers = seen.json<Action>('vigil/gw1/actions').map((a) => a.payload.n);
    expect(numbers.sort((a, b) => Number(a) - Number(b))).toEqual(
      Array.from({ length: EVENTS }, (_, i) => i + 1),
    );
    expect(second.decided).toHaveLength(EVENTS);
    expect(await jsonRejects(second.gateway)).toBe(1);
    await seen.waitFor(
      () => seen.json('vigil/gw1/profiles/status').some((st) => st.status === 'applied'),
      5_000,
      'the profile batch applied',
    );
    expect(await second.gateway.store.profiles.get('cust-1')).toEqual({ id: 'cust-1', tier: 'gold' });
    await second.gateway.stop();

    // Everything was acknowledged: a third run gets nothing again, neither the events nor the refused one.
    const third = await run();
    cleanups.push(() => third.gateway.stop());
    await new Promise((r) => setTimeout(r, 500));
    expect(third.decided).toEqual([]);
    expect(await jsonRejects(third.gateway)).toBe(0);
    expect(seen.json('vigil/gw1/profiles/status')).toHaveLength(1);
  }, 30_000);
});

/** Payloads this gateway refused as not JSON. */
async function jsonRejects(gateway: Gateway): Promise<number> {
  const text = await gateway.metrics.registry.getSingleMetricAsString('vigil_ingest_rejects_total');
  return Number(/reason="json"} (\d+)/.exec(text)?.[1] ?? 0);
}
