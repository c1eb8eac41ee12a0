import { encode as encodeCbor } from 'cbor-x';
import mqtt, { type MqttClient } from 'mqtt';
import { afterEach, describe, expect, test } from 'vitest';
import { startLocalBroker, type Broker } from '../../src/broker/index.js';
import { parseConfig } from '../../src/config/index.js';
import { startGateway, type Gateway } from '../../src/app/index.js';
import type { Action } from '../../src/shared/index.js';
import { CredentialStore } from '../../src/credentials/index.js';
import { Collector } from '../helpers/mqtt.js';
import { tempDir } from '../helpers/temp.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function cloudBroker(port = 0): Promise<Broker> {
  const broker = await startLocalBroker({ port });
  return broker;
}

async function gatewayWith(opts: {
  data: string;
  upstream?: string;
  allowAnonymous?: boolean;
}): Promise<Gateway> {
  const gateway = await startGateway(
    parseConfig({
      gatewayId: 'gw1',
      data: opts.data,
      mqtt: { host: '127.0.0.1', port: 0, allowAnonymous: opts.allowAnonymous ?? false },
      http: { port: 0 },
      upstream: opts.upstream ? { url: opts.upstream, reconnect: '200ms' } : {},
      log: { level: 'silent' },
    }),
  );
  return gateway;
}

/** A device with its own credential (made on first use), connected as client id = user name = its id. */
async function device(gateway: Gateway, id: string): Promise<MqttClient> {
  const credentials = new CredentialStore(gateway.store.sublevels.creds);
  const secret = (await credentials.list()).some((c) => c.id === id)
    ? await credentials.rotate(id)
    : await credentials.add(id);
  const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${gateway.mqtt.port}`, {
    clientId: id,
    username: id,
    password: secret,
    reconnectPeriod: 0,
  });
  cleanups.push(() => client.endAsync());
  return client;
}

/** Commands as the devices receive them: each subscribes to its own (it may not see others'). */
async function commandsOf(devices: MqttClient[]): Promise<Array<{ topic: string; payload: Buffer }>> {
  const received: Array<{ topic: string; payload: Buffer }> = [];
  for (const d of devices) {
    d.on('message', (topic, payload) => received.push({ topic, payload }));
    await d.subscribeAsync(`devices/${d.options.clientId ?? ''}/commands/#`, { qos: 0 });
  }
  return received;
}

describe('gateway end to end (in process, aedes as the cloud)', () => {
  test('an overheat event decides one action upstream and one command to the device, JSON and CBOR alike', async () => {
    // Two devices: the shipped policy's 10-minute cooldown holds back a repeat of a scenario for one device.
    const dir = await tempDir();
    cleanups.push(() => dir.remove());
    const cloud = await cloudBroker();
    cleanups.push(() => cloud.close());
    const gateway = await gatewayWith({ data: dir.path, upstream: `mqtt://127.0.0.1:${cloud.address.port}` });
    cleanups.push(() => gateway.stop());
    await gateway.store.profiles.put('dev-1', { id: 'dev-1', maxTemp: 50, site: 'north' });
    await gateway.store.profiles.put('dev-2', { id: 'dev-2', maxTemp: 50, site: 'north' });

    const atCloud = await Collector.connect(`mqtt://127.0.0.1:${cloud.address.port}`, ['vigil/gw1/actions']);
    cleanups.push(() => atCloud.close());
    const dev = await device(gateway, 'dev-1');
    const dev2 = await device(gateway, 'dev-2');
    const commands = await commandsOf([dev, dev2]);
    await dev.publishAsync('devices/dev-1/events/telemetry', JSON.stringify({ temp: 61, bat: 3.9 }), {
      qos: 1,
    });
    await atCloud.waitFor((m) => m.length === 1, 5_000, 'the JSON action at the cloud');
    await waitUntil(() => commands.length === 1, 5_000, 'the command at the device');

    await dev2.publishAsync(
      'devices/dev-2/events/telemetry',
      Buffer.from(encodeCbor({ temp: 61, bat: 3.9 })),
      { qos: 1 },
    );
    await atCloud.waitFor((m) => m.length === 2, 5_000, 'the CBOR action at the cloud');
    await waitUntil(() => commands.length === 2, 5_000, 'the second command');

    const actions = atCloud.json<Action>();
    expect(actions.map((a) => a.actor)).toEqual(['dev-1', 'dev-2']);
    for (const action of actions) {
      expect(action).toMatchObject({
        gateway: 'gw1',
        scenario: 'overheat',
        action: 'inspect-device',
        priority: 70,
        category: 'maintenance',
        payload: { temp: 61, site: 'north' },
      });
      expect(action.decidedAt).toBeGreaterThanOrEqual(action.eventAt);
    }
    expect(actions[0]?.id).not.toEqual(actions[1]?.id);
    expect(commands.map((m) => m.topic)).toEqual([
      'devices/dev-1/commands/inspect-device',
      'devices/dev-2/commands/inspect-device',
    ]);
    expect(JSON.parse(commands[0]?.payload.toString() ?? '')).toMatchObject({ id: actions[0]?.id });

    // A repeat for dev-1 within the cooldown is suppressed and counted, not sent.
    await dev.publishAsync('devices/dev-1/events/telemetry', JSON.stringify({ temp: 65 }), { qos: 1 });
    await new Promise((r) => setTimeout(r, 300));
    expect(atCloud.messages).toHaveLength(2);
    const suppressed = await gateway.metrics.registry.getSingleMetricAsString(
      'vigil_actions_suppressed_total',
    );
    expect(suppressed).toMatch(/scenario="overheat",reason="cooldown"} 1/);
  });

  test('a malformed payload decides nothing, is dead-lettered with its reason, and the next event is handled', async () => {
    const dir = await tempDir();
    cleanups.push(() => dir.remove());
    const cloud = await cloudBroker();
    cleanups.push(() => cloud.close());
    // Anonymous clients allowed, so that one can watch the dead letters (a device may not); the device
    // itself still authenticates.
    const gateway = await gatewayWith({
      data: dir.path,
      upstream: `mqtt://127.0.0.1:${cloud.address.port}`,
      allowAnonymous: true,
    });
    cleanups.push(() => gateway.stop());
    await gateway.store.profiles.put('dev-1', { id: 'dev-1', maxTemp: 50, site: 'north' });

    const atCloud = await Collector.connect(`mqtt://127.0.0.1:${cloud.address.port}`, ['vigil/gw1/actions']);
    cleanups.push(() => atCloud.close());
    const deadLetters = await Collector.connect(`mqtt://127.0.0.1:${gateway.mqtt.port}`, [
      'vigil/deadletter',
    ]);
    cleanups.push(() => deadLetters.close());

    const dev = await device(gateway, 'dev-1');
    // QoS 1: the broker must still acknowledge it, or the device would resend it forever.
    await dev.publishAsync('devices/dev-1/events/telemetry', '{"temp": 61,', { qos: 1 });
    await dev.publishAsync('devices/dev-1/events/telemetry', '[1,2,3]', { qos: 1 });
    await deadLetters.waitFor((m) => m.length === 2, 5_000, 'two dead letters');
    const reasons = deadLetters.json<{ reason: string; deviceId?: string }>();
    expect(reasons.map((r) => r.reason)).toEqual(['json', 'not-object']);
    expect(reasons[0]?.deviceId).toBe('dev-1');

    expect(dev.connected).toBe(true);
    await dev.publishAsync('devices/dev-1/events/telemetry', JSON.stringify({ temp: 70, bat: 3.1 }), {
      qos: 1,
    });
    await atCloud.waitFor((m) => m.length === 2, 5_000, 'overheat and low-battery');
    expect(
      atCloud
        .json<Action>()
        .map((a) => a.scenario)
        .sort(),
    ).toEqual(['low-battery', 'overheat']);

    const text = await gateway.metrics.registry.getSingleMetricAsString('vigil_ingest_rejects_total');
    expect(text).toMatch(/reason="json"} 1/);
    expect(text).toMatch(/reason="not-object"} 1/);
  });

  test('actions wait in the outbox while the cloud is down, across a restart, and drain when it is back', async () => {
    const dir = await tempDir();
    cleanups.push(() => dir.remove());
    // Reserve a port for the cloud, then take it down.
    const probe = await cloudBroker();
    const cloudPort = probe.address.port;
    await probe.close();
    const upstream = `mqtt://127.0.0.1:${cloudPort}`;

    let gateway = await gatewayWith({ data: dir.path, upstream });
    for (let i = 0; i < 5; i++) {
      await gateway.store.profiles.put(`dev-${i}`, { id: `dev-${i}`, maxTemp: 50, site: 'north' });
      const dev = await device(gateway, `dev-${i}`);
      await dev.publishAsync(`devices/dev-${i}/events/telemetry`, JSON.stringify({ temp: 60 + i }), {
        qos: 1,
      });
      await dev.endAsync();
    }
    await waitUntil(() => gateway.store.outbox.size === 5, 5_000, 'five queued actions');
    await gateway.stop();

    gateway = await gatewayWith({ data: dir.path, upstream });
    cleanups.push(() => gateway.stop());
    expect(gateway.store.outbox.size).toBe(5);

    const cloud = await cloudBroker(cloudPort);
    cleanups.push(() => cloud.close());
    const atCloud = new Map<string, Action>();
    await cloud.subscribe('vigil/gw1/actions', (_topic, payload) => {
      const action = JSON.parse(payload.toString()) as Action;
      atCloud.set(action.id, action);
    });
    await waitUntil(() => atCloud.size === 5, 10_000, 'five actions at the cloud');
    expect([...atCloud.values()].map((a) => a.payload.temp).sort()).toEqual([60, 61, 62, 63, 64]);
    await waitUntil(() => gateway.store.outbox.size === 0, 5_000, 'an empty outbox');
  });
});

async function waitUntil(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
