import { mkdir, writeFile } from 'node:fs/promises';
import { createServer, connect, type AddressInfo, type Socket } from 'node:net';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterEach, describe, expect, test } from 'vitest';
import { startLocalBroker, type Broker } from '../../src/broker/index.js';
import { parseConfig } from '../../src/config/index.js';
import { startGateway, type Gateway } from '../../src/app/index.js';
import { until } from '../helpers/mqtt.js';
import { tempDir } from '../helpers/temp.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const RAW = `
id: temp-raw
when:
  event: telemetry
then:
  forward: raw
`;
const SAMPLED = `
id: temp-sampled
when:
  event: telemetry
then:
  forward: { sample: 5, type: temp-sampled }
`;
const EVERY = `
id: temp-every
when:
  event: telemetry
then:
  forward: { every: 1h, type: temp-hourly }
`;
const AVERAGE = `
id: temp-average
when:
  event: telemetry
  window: 1h
  aggregate:
    avgTemp: avg(data.temp)
    readings: count()
  having: readings >= 3
then:
  forward: { of: aggregates, type: temp-average }
`;
const HOT = `
id: hot
priority: 90
category: alarm
when:
  event: telemetry
  where: data.temp > 90
then:
  action: cool-down
  to: [upstream]
  payload:
    i: data.i
`;

interface Seen {
  topic: string;
  body: Record<string, unknown>;
}

/** The cloud: aedes, with everything the gateway publishes recorded in order, in process. */
async function cloudBroker(): Promise<{ broker: Broker; seen: Seen[] }> {
  const broker = await startLocalBroker();
  cleanups.push(() => broker.close());
  const seen: Seen[] = [];
  await broker.subscribe('vigil/gw1/#', (topic, payload) => {
    if (topic === 'vigil/gw1/actions' || topic.startsWith('vigil/gw1/telemetry/')) {
      seen.push({ topic, body: JSON.parse(payload.toString()) as Record<string, unknown> });
    }
  });
  return { broker, seen };
}

/** A TCP relay to the cloud that can cut the gateway off (an outage of its uplink alone) and let it back. */
async function relay(port: number): Promise<{ port: number; cut(): void; mend(): void }> {
  let down = false;
  const sockets = new Set<Socket>();
  const server = createServer((inbound) => {
    if (down) return void inbound.destroy();
    const outbound = connect(port, '127.0.0.1');
    for (const s of [inbound, outbound]) {
      sockets.add(s);
      s.on('error', () => undefined);
      s.once('close', () => {
        sockets.delete(s);
        inbound.destroy();
        outbound.destroy();
      });
    }
    inbound.pipe(outbound).pipe(inbound);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return {
    port: (server.address() as AddressInfo).port,
    cut: () => {
      down = true;
      for (const s of sockets) s.destroy();
    },
    mend: () => void (down = false),
  };
}

async function gatewayWith(
  rules: Record<string, string>,
  upstreamPort: number,
  telemetry: Record<string, unknown> = {},
): Promise<Gateway> {
  const tmp = await tempDir();
  cleanups.push(() => tmp.remove());
  const dir = join(tmp.path, 'rules');
  await mkdir(dir);
  for (const [name, text] of Object.entries(rules)) await writeFile(join(dir, `${name}.yaml`), text);
  const gateway = await startGateway(
    parseConfig({
      gatewayId: 'gw1',
      data: join(tmp.path, 'data'),
      rules: dir,
      mqtt: { host: '127.0.0.1', port: 0, allowAnonymous: true },
      http: { port: 0 },
      upstream: { url: `mqtt://127.0.0.1:${upstreamPort}`, reconnect: '100ms', telemetry },
      sync: { healthEvery: 0 },
      log: { level: 'silent' },
    }),
  );
  cleanups.push(() => gateway.stop());
  await gateway.recovered;
  return gateway;
}

async function device(gateway: Gateway, id: string): Promise<mqtt.MqttClient> {
  const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${gateway.mqtt.port}`, {
    clientId: id,
    reconnectPeriod: 0,
  });
  cleanups.push(() => client.endAsync());
  return client;
}

async function metric(gateway: Gateway, name: string): Promise<number> {
  const m = gateway.metrics.registry.getSingleMetric(name);
  const values = (await m?.get())?.values ?? [];
  return values.reduce((sum, v) => sum + v.value, 0);
}

async function eventually(what: string, predicate: () => Promise<boolean>, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const telemetryOn = (seen: Seen[], type: string) =>
  seen.filter((s) => s.topic === `vigil/gw1/telemetry/${type}`);

describe('telemetry lanes', () => {
  test('raw, 1 in N, one per interval per device, and aggregates, each on its topic', async () => {
    const { broker, seen } = await cloudBroker();
    const gateway = await gatewayWith(
      { raw: RAW, sampled: SAMPLED, every: EVERY, average: AVERAGE },
      broker.address.port,
    );
    await eventually('the uplink', async () => (await metric(gateway, 'vigil_upstream_connected')) === 1);
    for (const id of ['dev-1', 'dev-2']) {
      const client = await device(gateway, id);
      for (let i = 0; i < 10; i++) {
        await client.publishAsync(`devices/${id}/events/telemetry`, JSON.stringify({ i, temp: 20 + i }), {
          qos: 1,
        });
      }
    }
    await until('raw telemetry of both devices', () => telemetryOn(seen, 'telemetry').length === 20);
    await until('the sampled telemetry', () => telemetryOn(seen, 'temp-sampled').length === 4);
    await until('the averages', () => telemetryOn(seen, 'temp-average').length >= 2);
    const raw = telemetryOn(seen, 'telemetry').filter((s) => s.body['actor'] === 'dev-1');
    expect(raw.map((s) => (s.body['data'] as { i: number }).i)).toEqual([...Array(10).keys()]);
    expect(raw[0]?.body).toMatchObject({
      gateway: 'gw1',
      scenario: 'temp-raw',
      type: 'telemetry',
      of: 'raw',
    });
    // 1 in 5 per device: the 1st and the 6th of each.
    const sampled = telemetryOn(seen, 'temp-sampled').map((s) => [
      s.body['actor'],
      (s.body['data'] as { i: number }).i,
    ]);
    expect(sampled.sort()).toEqual([
      ['dev-1', 0],
      ['dev-1', 5],
      ['dev-2', 0],
      ['dev-2', 5],
    ]);
    // One per hour per device.
    const hourly = telemetryOn(seen, 'temp-hourly').map((s) => s.body['actor']);
    expect(hourly.sort()).toEqual(['dev-1', 'dev-2']);
    const average = telemetryOn(seen, 'temp-average')[0]?.body;
    expect(average).toMatchObject({ of: 'aggregates', scenario: 'temp-average' });
    const { avgTemp, readings } = average?.['data'] as { avgTemp: number; readings: number };
    expect(readings).toBeGreaterThanOrEqual(3);
    expect(avgTemp).toBeGreaterThanOrEqual(20);
    expect(await metric(gateway, 'vigil_telemetry_sampled_out_total')).toBe(16 + 18);
    // At most once: none of it is remembered as delivered.
    expect(gateway.store.outbox.deliveredCount).toBe(0);
  }, 30_000);

  test('during an uplink outage the lane stays within its bound and counts what it drops; actions go first once back', async () => {
    const { broker, seen } = await cloudBroker();
    const link = await relay(broker.address.port);
    const gateway = await gatewayWith({ raw: RAW, hot: HOT }, link.port, { maxCount: 20, drop: 'oldest' });
    const client = await device(gateway, 'dev-1');
    const send = (i: number, temp: number) =>
      client.publishAsync('devices/dev-1/events/telemetry', JSON.stringify({ i, temp }), { qos: 1 });
    await eventually('the uplink', async () => (await metric(gateway, 'vigil_upstream_connected')) === 1);
    for (let i = 0; i < 5; i++) await send(i, 20);
    await until('telemetry while connected', () => telemetryOn(seen, 'telemetry').length === 5);

    link.cut();
    await eventually(
      'the uplink down',
      async () => (await metric(gateway, 'vigil_upstream_connected')) === 0,
    );
    // 100 events, three of them hot: three actions wait in the outbox, the telemetry in its lane.
    for (let i = 5; i < 105; i++) await send(i, i % 30 === 0 ? 95 : 20);
    await eventually(
      'the lane full',
      async () => (await metric(gateway, 'vigil_telemetry_dropped_total')) === 80,
    );
    expect(await metric(gateway, 'vigil_telemetry_queued')).toBe(20);
    expect(gateway.store.outbox.size).toBe(3);
    const before = seen.length;

    link.mend();
    await until('the actions and the kept telemetry', () => seen.length === before + 3 + 20, 10_000);
    const after = seen.slice(before);
    // The actions first, then the newest 20 of the telemetry (the oldest were dropped).
    expect(after.slice(0, 3).map((s) => s.topic)).toEqual(Array(3).fill('vigil/gw1/actions'));
    expect(
      after
        .slice(0, 3)
        .map((s) => (s.body['payload'] as { i: number }).i)
        .sort(),
    ).toEqual([30, 60, 90]);
    expect(after.slice(3).map((s) => (s.body['data'] as { i: number }).i)).toEqual(
      Array.from({ length: 20 }, (_, k) => 85 + k),
    );
    expect(await metric(gateway, 'vigil_telemetry_sent_total')).toBe(25);
    // Only the actions are remembered as delivered.
    await until('the outbox empty', () => gateway.store.outbox.size === 0);
    expect(gateway.store.outbox.deliveredCount).toBe(3);
  }, 30_000);
});
