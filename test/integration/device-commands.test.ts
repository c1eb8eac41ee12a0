import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import mqtt, { type IPublishPacket, type MqttClient } from 'mqtt';
import { afterEach, describe, expect, test } from 'vitest';
import { parseConfig } from '../../src/config/index.js';
import { startGateway, type Gateway } from '../../src/app/index.js';
import type { Action } from '../../src/shared/index.js';
import { tempDir } from '../helpers/temp.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

// `set-relay` (category control, ttl 1h) for every telemetry event, `blink` (category brief, ttl 400ms) for
// every pulse; both to the device only.
const RULES: Record<string, string> = {
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
  'blink.yaml': `id: blink
description: Every pulse blinks the light, now or never.
priority: 50
category: brief
when:
  event: pulse
then:
  action: blink
  to: [device]
  payload:
    n: data.n
`,
  'policy.yaml': `policy:
  ttl:
    control: 1h
    brief: 400ms
`,
};

async function gateway(existing?: string): Promise<Gateway> {
  let path = existing;
  if (path === undefined) {
    const dir = await tempDir();
    cleanups.push(() => dir.remove());
    path = dir.path;
    await mkdir(join(path, 'rules'));
    for (const [name, text] of Object.entries(RULES)) await writeFile(join(path, 'rules', name), text);
  }
  const rules = join(path, 'rules');
  const gw = await startGateway(
    parseConfig({
      gatewayId: 'gw1',
      data: join(path, 'data'),
      rules,
      // Devices connect anonymously (client id = device id); a sensor client publishes their events.
      mqtt: { host: '127.0.0.1', port: 0, allowAnonymous: true },
      http: { port: 0 },
      log: { level: 'silent' },
    }),
  );
  cleanups.push(() => gw.stop());
  await gw.recovered;
  return gw;
}

interface Device {
  client: MqttClient;
  received: Array<{ topic: string; qos: number; action: Action }>;
}

/**
 * A device connection that keeps the commands it receives. With `holdAcks`, the PUBACKs wait until
 * `release()` (mqtt.js sends one once its message handler is done).
 */
async function device(
  gw: Gateway,
  id: string,
  opts: { qos?: 0 | 1; holdAcks?: boolean } = {},
): Promise<Device & { release(): void }> {
  const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${gw.mqtt.port}`, {
    clientId: id,
    reconnectPeriod: 0,
  });
  cleanups.push(() => client.endAsync(true));
  const received: Device['received'] = [];
  const held: Array<() => void> = [];
  let holding = opts.holdAcks ?? false;
  client.handleMessage = (packet: IPublishPacket, done: (err?: Error) => void) => {
    received.push({
      topic: packet.topic,
      qos: packet.qos,
      action: JSON.parse(Buffer.from(packet.payload).toString()) as Action,
    });
    if (holding) held.push(() => done());
    else done();
  };
  await client.subscribeAsync(`devices/${id}/commands/#`, { qos: opts.qos ?? 1 });
  return {
    client,
    received,
    release() {
      holding = false;
      for (const ack of held.splice(0)) ack();
    },
  };
}

async function sensor(gw: Gateway): Promise<MqttClient> {
  const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${gw.mqtt.port}`, {
    clientId: 'sensor',
    reconnectPeriod: 0,
  });
  cleanups.push(() => client.endAsync());
  return client;
}

async function metric(gw: Gateway, series: string): Promise<number> {
  const text = await gw.metrics.registry.metrics();
  for (const line of text.split('\n'))
    if (line.startsWith(`${series} `)) return Number(line.slice(series.length + 1));
  return 0;
}

async function waitUntil(predicate: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const DEPTH = 'vigil_device_command_outbox_depth';

describe('device commands', () => {
  test('a device subscribed at QoS 1 gets the command at QoS 1; its PUBACK clears it from the outbox', async () => {
    const gw = await gateway();
    const dev = await device(gw, 'dev-1', { holdAcks: true });
    await dev.client.publishAsync('devices/dev-1/events/telemetry', JSON.stringify({ n: 1 }), { qos: 1 });
    await waitUntil(() => dev.received.length === 1, 'the command');
    expect(dev.received[0]).toMatchObject({
      topic: 'devices/dev-1/commands/set-relay',
      qos: 1,
      action: { scenario: 'set-relay', actor: 'dev-1', payload: { n: 1 } },
    });
    expect(dev.received[0]?.action.id).toEqual(expect.any(String));

    // Not acknowledged yet: still waiting in the outbox.
    await new Promise((r) => setTimeout(r, 200));
    expect(await metric(gw, DEPTH)).toBe(1);
    expect(await metric(gw, 'vigil_device_commands_acknowledged_total{qos="1"}')).toBe(0);

    dev.release();
    await waitUntil(async () => (await metric(gw, DEPTH)) === 0, 'the outbox to empty after the PUBACK');
    expect(await metric(gw, 'vigil_device_commands_acknowledged_total{qos="1"}')).toBe(1);
    expect(await metric(gw, 'vigil_device_commands_queued_total')).toBe(1);
    expect(await metric(gw, 'vigil_device_commands_total')).toBe(1);
    expect(dev.received).toHaveLength(1);
  });

  test('each command reaches its device and any other subscriber with the same bytes, its own', async () => {
    const gw = await gateway();
    const monitor = await mqtt.connectAsync(`mqtt://127.0.0.1:${gw.mqtt.port}`, {
      clientId: 'monitor',
      reconnectPeriod: 0,
    });
    cleanups.push(() => monitor.endAsync(true));
    const watched: string[] = [];
    monitor.on('message', (_topic, payload) => watched.push(payload.toString()));
    await monitor.subscribeAsync('devices/+/commands/#', { qos: 0 });
    const dev = await device(gw, 'dev-1');
    for (const n of [1, 2, 3]) {
      await dev.client.publishAsync('devices/dev-1/events/telemetry', JSON.stringify({ n }), { qos: 1 });
      await waitUntil(() => dev.received.length === n && watched.length === n, `command ${n}`);
    }
    expect(dev.received.map((r) => r.action.payload)).toEqual([{ n: 1 }, { n: 2 }, { n: 3 }]);
    expect(dev.received.map((r) => JSON.stringify(r.action))).toEqual(watched);
  });

  test('a command not acknowledged before the device went away is sent again when it is back', async () => {
    const gw = await gateway();
    const first = await device(gw, 'dev-1', { holdAcks: true });
    await first.client.publishAsync('devices/dev-1/events/telemetry', JSON.stringify({ n: 7 }), { qos: 1 });
    await waitUntil(() => first.received.length === 1, 'the command');
    await first.client.endAsync(true);

    const again = await device(gw, 'dev-1');
    await waitUntil(() => again.received.length === 1, 'the command, sent again');
    expect(again.received[0]?.action.id).toBe(first.received[0]?.action.id);
    await waitUntil(async () => (await metric(gw, DEPTH)) === 0, 'the outbox to empty');
    expect(await metric(gw, 'vigil_device_commands_total')).toBe(2);
  });

  test('a device away when the command is decided gets it once it connects and subscribes', async () => {
    const gw = await gateway();
    const s = await sensor(gw);
    await s.publishAsync('devices/dev-2/events/telemetry', JSON.stringify({ n: 1 }), { qos: 1 });
    await s.publishAsync('devices/dev-2/events/telemetry', JSON.stringify({ n: 2 }), { qos: 1 });
    await waitUntil(async () => (await metric(gw, DEPTH)) === 2, 'two commands queued');

    const dev = await device(gw, 'dev-2');
    await waitUntil(() => dev.received.length === 2, 'both commands');
    // In the order they were decided.
    expect(dev.received.map((r) => r.action.payload.n)).toEqual([1, 2]);
    await waitUntil(async () => (await metric(gw, DEPTH)) === 0, 'the outbox to empty');
  });

  test('commands waiting for a device survive a restart of the gateway', async () => {
    const gw = await gateway();
    const s = await sensor(gw);
    await s.publishAsync('devices/dev-5/events/telemetry', JSON.stringify({ n: 1 }), { qos: 1 });
    await waitUntil(async () => (await metric(gw, DEPTH)) === 1, 'the command queued');
    await s.endAsync();
    await gw.stop();

    const again = await gateway(join(gw.config.data, '..'));
    expect(await metric(again, DEPTH)).toBe(1);
    const dev = await device(again, 'dev-5');
    await waitUntil(() => dev.received.length === 1, 'the command, after the restart');
    expect(dev.received[0]?.action.payload).toEqual({ n: 1 });
    await waitUntil(async () => (await metric(again, DEPTH)) === 0, 'the outbox to empty');
  });

  test('a device subscribed at QoS 0 gets the command at QoS 0, and it leaves the outbox once written', async () => {
    const gw = await gateway();
    const s = await sensor(gw);
    await s.publishAsync('devices/dev-3/events/telemetry', JSON.stringify({ n: 1 }), { qos: 1 });
    await waitUntil(async () => (await metric(gw, DEPTH)) === 1, 'the command queued');
    const dev = await device(gw, 'dev-3', { qos: 0, holdAcks: true });
    await waitUntil(() => dev.received.length === 1, 'the command');
    expect(dev.received[0]?.qos).toBe(0);
    await waitUntil(async () => (await metric(gw, DEPTH)) === 0, 'the outbox to empty');
    expect(await metric(gw, 'vigil_device_commands_acknowledged_total{qos="0"}')).toBe(1);
  });

  test('a command that waited past its ttl is dropped, not delivered', async () => {
    const gw = await gateway();
    const s = await sensor(gw);
    await s.publishAsync('devices/dev-4/events/pulse', JSON.stringify({ n: 1 }), { qos: 1 });
    await waitUntil(async () => (await metric(gw, DEPTH)) === 1, 'the blink queued');
    // Well past the 400 ms ttl of `brief`.
    await new Promise((r) => setTimeout(r, 1_000));

    const dev = await device(gw, 'dev-4');
    // A command with a long ttl, decided after the device subscribed: once it is there, the expired one
    // (which would have been sent first) is known not to come.
    await s.publishAsync('devices/dev-4/events/telemetry', JSON.stringify({ n: 2 }), { qos: 1 });
    await waitUntil(() => dev.received.length >= 1, 'the set-relay command');
    await new Promise((r) => setTimeout(r, 100));
    expect(dev.received.map((r) => r.action.action)).toEqual(['set-relay']);
    expect(await metric(gw, 'vigil_device_commands_expired_total')).toBe(1);
    await waitUntil(async () => (await metric(gw, DEPTH)) === 0, 'the outbox to empty');
  });
});
