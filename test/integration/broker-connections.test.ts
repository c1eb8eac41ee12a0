import net from 'node:net';
import mqtt, { type MqttClient } from 'mqtt';
import { pino } from 'pino';
import { afterEach, describe, expect, test, vi } from 'vitest';
import {
  BrokerClosedError,
  startBroker,
  type Broker,
  type ClientInfo,
  type DisconnectReason,
} from '../../src/broker/index.js';
import { Collector } from '../helpers/mqtt.js';

interface Harness {
  broker: Broker;
  url: string;
  connected: ClientInfo[];
  disconnected: Array<{ client: ClientInfo; reason: DisconnectReason }>;
  published: Array<{ clientId: string; topic: string; payload: string }>;
}

const open: Array<{ close(): Promise<void> | void }> = [];

afterEach(async () => {
  vi.useRealTimers();
  for (const item of open.splice(0).reverse()) await item.close();
});

async function start(): Promise<Harness> {
  const h: Harness = {
    broker: undefined as unknown as Broker,
    url: '',
    connected: [],
    disconnected: [],
    published: [],
  };
  h.broker = await startBroker({
    host: '127.0.0.1',
    port: 0,
    maxPacketBytes: 64 * 1024,
    logger: pino({ level: 'silent' }),
    hooks: {
      onPublish: (client, topic, payload) =>
        void h.published.push({ clientId: client.id, topic, payload: payload.toString() }),
      onConnected: (client) => void h.connected.push(client),
      onDisconnected: (client, reason) => void h.disconnected.push({ client, reason }),
    },
  });
  open.push({ close: () => h.broker.close() });
  h.url = `mqtt://127.0.0.1:${h.broker.address.port}`;
  return h;
}

async function connect(url: string, opts: mqtt.IClientOptions): Promise<MqttClient> {
  const client = await mqtt.connectAsync(url, { reconnectPeriod: 0, ...opts });
  client.on('error', () => undefined);
  open.push({ close: () => void client.end(true) });
  return client;
}

async function rawSocket(port: number): Promise<net.Socket> {
  const socket = net.connect(port, '127.0.0.1');
  socket.on('error', () => undefined);
  open.push({ close: () => void socket.destroy() });
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  return socket;
}

async function until(what: string, predicate: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

const reasons = (h: Harness) => h.disconnected.map((d) => [d.client.id, d.reason]);

describe('connection hooks', () => {
  test('a device that connects and disconnects is reported once each way, with its address', async () => {
    const h = await start();
    const dev = await connect(h.url, { clientId: 'dev-1' });
    expect(h.connected).toEqual([
      { id: 'dev-1', address: `127.0.0.1:${(dev.stream as net.Socket).localPort}`, internal: false },
    ]);
    expect(h.broker.connectedCount).toBe(1);
    await dev.endAsync();
    await until('the disconnect', () => h.disconnected.length === 1);
    expect(reasons(h)).toEqual([['dev-1', 'closed']]);
    expect(h.disconnected[0]?.client).toEqual(h.connected[0]);
    expect(h.broker.connectedCount).toBe(0);
  });

  test('a device that vanishes without DISCONNECT is reported, and its will is published', async () => {
    const h = await start();
    const watcher = await Collector.connect(h.url, ['devices/dev-1/status']);
    open.push({ close: () => watcher.close() });
    const dev = await connect(h.url, {
      clientId: 'dev-1',
      will: { topic: 'devices/dev-1/status', payload: Buffer.from('gone'), qos: 1, retain: false },
    });
    dev.stream.destroy();
    await watcher.waitFor((m) => m.length === 1, 5_000, 'the will');
    expect(watcher.messages[0]?.payload.toString()).toBe('gone');
    await until('the disconnect', () => h.disconnected.some((d) => d.client.id === 'dev-1'));
    expect(reasons(h)).toContainEqual(['dev-1', 'closed']);
  });

  test('a will on a device event topic goes through the publish hook like any device event', async () => {
    const h = await start();
    const dev = await connect(h.url, {
      clientId: 'dev-1',
      will: { topic: 'devices/dev-1/events/lost', payload: Buffer.from('{}'), qos: 1, retain: false },
    });
    dev.stream.destroy();
    await until('the will event', () => h.published.length === 1);
    expect(h.published).toEqual([{ clientId: 'dev-1', topic: 'devices/dev-1/events/lost', payload: '{}' }]);
  });

  test('a device that stops talking is disconnected after 1.5 keep-alive periods, reason keepalive', async () => {
    const h = await start();
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const socket = await rawSocket(h.broker.address.port);
    socket.write(connectPacket('quiet-1', 10));
    await until('the connect', () => h.connected.length === 1);
    vi.advanceTimersByTime(14_000);
    await new Promise((resolve) => setImmediate(resolve));
    expect(h.disconnected).toEqual([]);
    vi.advanceTimersByTime(1_100);
    await until('the keep-alive disconnect', () => h.disconnected.length === 1);
    expect(reasons(h)).toEqual([['quiet-1', 'keepalive']]);
  });

  test('a second connection with the same client id takes over; the first is reported kicked', async () => {
    const h = await start();
    const first = await connect(h.url, { clientId: 'dev-1' });
    const firstClosed = new Promise<void>((resolve) => first.once('close', () => resolve()));
    await connect(h.url, { clientId: 'dev-1' });
    await firstClosed;
    expect(reasons(h)).toEqual([['dev-1', 'kicked']]);
    expect(h.connected).toHaveLength(2);
    expect(h.broker.connectedCount).toBe(1);
  });

  test('a protocol violation ends only that connection, reason error', async () => {
    const h = await start();
    const good = await connect(h.url, { clientId: 'good-1' });
    const socket = await rawSocket(h.broker.address.port);
    socket.write(connectPacket('bad-1'));
    await until('the connect', () => h.connected.length === 2);
    // Packet type 0 is reserved [MQTT-2.2.1].
    socket.write(Buffer.from([0x00, 0x00]));
    await until('the disconnect', () => h.disconnected.length === 1);
    expect(reasons(h)).toEqual([['bad-1', 'error']]);
    await good.publishAsync('devices/good-1/events/t', '{}', { qos: 1 });
    expect(h.published.map((p) => p.clientId)).toEqual(['good-1']);
  });
});

describe('close', () => {
  test('closes every connection, reports them kicked, refuses new ones and internal publishes', async () => {
    const h = await start();
    const dev = await connect(h.url, { clientId: 'dev-1' });
    const devClosed = new Promise<void>((resolve) => dev.once('close', () => resolve()));
    // A connection that never sends CONNECT is not an aedes client, and must not hold close() up.
    const silent = await rawSocket(h.broker.address.port);
    const silentClosed = new Promise<void>((resolve) => silent.once('close', () => resolve()));

    await h.broker.close();
    await devClosed;
    await silentClosed;
    expect(reasons(h)).toEqual([['dev-1', 'kicked']]);
    expect(h.broker.connectedCount).toBe(0);
    await expect(h.broker.publish('vigil/deadletter', '{}')).rejects.toBeInstanceOf(BrokerClosedError);
    await expect(mqtt.connectAsync(h.url, { reconnectPeriod: 0, connectTimeout: 2_000 })).rejects.toThrow(
      /ECONNREFUSED/,
    );
    await h.broker.close();
  });

  test('a port in use stops start-up with a message naming it', async () => {
    const h = await start();
    const second = startBroker({
      host: '127.0.0.1',
      port: h.broker.address.port,
      maxPacketBytes: 1024,
      logger: pino({ level: 'silent' }),
      hooks: { onPublish: () => undefined, onConnected: () => undefined, onDisconnected: () => undefined },
    });
    await expect(second).rejects.toMatchObject({
      code: 'VIGIL_CONFIG',
      message: expect.stringContaining(`127.0.0.1:${h.broker.address.port}`) as string,
    });
  });
});

/** An MQTT 3.1.1 CONNECT with a clean session. */
function connectPacket(clientId: string, keepaliveSeconds = 0): Buffer {
  const id = Buffer.from(clientId);
  const body = Buffer.concat([
    Buffer.from([
      0x00,
      0x04,
      ...Buffer.from('MQTT'),
      0x04,
      0x02,
      keepaliveSeconds >> 8,
      keepaliveSeconds & 0xff,
    ]),
    Buffer.from([id.length >> 8, id.length & 0xff]),
    id,
  ]);
  return Buffer.concat([Buffer.from([0x10, body.length]), body]);
}
