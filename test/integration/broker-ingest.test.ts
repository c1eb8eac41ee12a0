import net from 'node:net';
import { encode } from 'cbor-x';
import mqtt, { type MqttClient } from 'mqtt';
import { pino } from 'pino';
import { afterEach, describe, expect, test, vi } from 'vitest';
import { startBroker, type Broker, type ClientInfo } from '../../src/broker/index.js';
import { Ingest, type DeadLetter } from '../../src/ingest/index.js';
import type { Event, Profile } from '../../src/shared/index.js';
import { Collector } from '../helpers/mqtt.js';

const DEAD_LETTER_TOPIC = 'vigil/deadletter';
const MAX_PAYLOAD = 64 * 1024;
const MAX_PACKET = 256 * 1024;

interface Wired {
  broker: Broker;
  url: string;
  events: Event[];
  logs: Array<Record<string, unknown>>;
  disconnects: Array<[string, string]>;
  /** Set to make the publish hook refuse, as a storage fault will. */
  failPublishes: boolean;
}

const open: Array<{ close(): Promise<void> | void }> = [];

afterEach(async () => {
  vi.restoreAllMocks();
  for (const item of open.splice(0).reverse()) await item.close();
});

/** The broker wired to ingest as the gateway wires them, with profiles in memory. */
async function startWired(opts: { maxPacketBytes?: number } = {}): Promise<Wired> {
  const profiles = new Map<string, Profile>([['dev-1', { maxTemp: 50, site: 'north' }]]);
  const logs: Array<Record<string, unknown>> = [];
  const logger = pino(
    { level: 'info' },
    { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) },
  );
  const events: Event[] = [];
  // The dead-letter sink publishes on the broker, which starts after ingest, as in the gateway.
  const late: { broker?: Broker } = {};
  const ingest = new Ingest({
    profiles: {
      peek: (id) => ({ hit: true, profile: profiles.get(id) }),
      get: (id) => Promise.resolve(profiles.get(id)),
    },
    clock: () => Date.now(),
    logger,
    maxPayloadBytes: MAX_PAYLOAD,
    deliver: (ev) => events.push(ev),
    deadLetter: (record: DeadLetter) => {
      late.broker
        ?.publish(DEAD_LETTER_TOPIC, JSON.stringify(record))
        .catch((err: unknown) => logger.warn({ err }, 'dead letter not published'));
    },
  });
  const wired: Wired = {
    broker: undefined as unknown as Broker,
    url: '',
    events,
    logs,
    disconnects: [],
    failPublishes: false,
  };
  const broker = await startBroker({
    host: '127.0.0.1',
    port: 0,
    maxPacketBytes: opts.maxPacketBytes ?? MAX_PACKET,
    logger,
    hooks: {
      onPublish: (client: ClientInfo, topic, payload, qos) => {
        if (wired.failPublishes) return Promise.reject(new Error('journal write failed'));
        return ingest.handleDevicePublish(client, topic, payload, qos);
      },
      onConnected: (client) => ingest.handleBrokerEvent(client.id, 'connected'),
      onDisconnected: (client, reason) => {
        wired.disconnects.push([client.id, reason]);
        ingest.handleBrokerEvent(client.id, 'disconnected', { reason });
      },
    },
  });
  open.push({ close: () => broker.close() });
  late.broker = broker;
  wired.broker = broker;
  wired.url = `mqtt://127.0.0.1:${broker.address.port}`;
  return wired;
}

async function device(url: string, clientId: string): Promise<MqttClient> {
  const client = await mqtt.connectAsync(url, { clientId, reconnectPeriod: 0 });
  client.on('error', () => undefined);
  open.push({ close: () => void client.end(true) });
  return client;
}

async function subscriber(url: string, topics: string[]): Promise<Collector> {
  const collector = await Collector.connect(url, topics);
  open.push({ close: () => collector.close() });
  return collector;
}

async function until(what: string, predicate: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

const deviceEvents = (w: Wired) => w.events.filter((e) => e.source === 'device');

describe('device events reach ingest', () => {
  test('QoS 0 and QoS 1 publishes, JSON and CBOR, are delivered as events', async () => {
    const w = await startWired();
    const dev = await device(w.url, 'dev-1');
    dev.publish('devices/dev-1/events/telemetry', '{"temp":61,"bat":3.9}', { qos: 0 });
    await dev.publishAsync('devices/dev-1/events/telemetry', encode({ temp: 62 }), { qos: 1 });
    await until('two device events', () => deviceEvents(w).length === 2);
    expect(deviceEvents(w)).toMatchObject([
      { actor: 'dev-1', type: 'telemetry', data: { temp: 61, bat: 3.9 }, source: 'device' },
      { actor: 'dev-1', type: 'telemetry', data: { temp: 62 }, source: 'device' },
    ]);
    expect(w.events[0]).toMatchObject({ actor: 'dev-1', type: 'connected', source: 'broker' });
  });

  test('a malformed QoS 1 payload is acknowledged and dead-lettered, the connection stays, the next event flows', async () => {
    const w = await startWired();
    const letters = await subscriber(w.url, [DEAD_LETTER_TOPIC]);
    const dev = await device(w.url, 'dev-1');
    let closed = false;
    dev.on('close', () => (closed = true));

    // publishAsync at QoS 1 resolves on the PUBACK.
    await dev.publishAsync('devices/dev-1/events/telemetry', '{"temp": 61,', { qos: 1 });
    await letters.waitFor((m) => m.length === 1, 5_000, 'the dead letter');
    const [letter] = letters.json<DeadLetter>();
    expect(letter).toMatchObject({
      reason: 'json',
      topic: 'devices/dev-1/events/telemetry',
      clientId: 'dev-1',
      deviceId: 'dev-1',
    });
    expect(Buffer.from(letter?.payloadBase64 ?? '', 'base64').toString()).toBe('{"temp": 61,');

    await dev.publishAsync('devices/dev-1/events/telemetry', '{"temp":63}', { qos: 1 });
    await until('the good event', () => deviceEvents(w).length === 1);
    expect(deviceEvents(w)[0]?.data).toEqual({ temp: 63 });
    expect(closed).toBe(false);
    expect(dev.connected).toBe(true);
    expect(w.logs).toContainEqual(
      expect.objectContaining({ level: 40, reason: 'json', clientId: 'dev-1', deviceId: 'dev-1' }),
    );
  });

  test('a payload over the ingest limit but within the packet limit is acknowledged and dead-lettered', async () => {
    const w = await startWired();
    const letters = await subscriber(w.url, [DEAD_LETTER_TOPIC]);
    const dev = await device(w.url, 'dev-1');
    const big = JSON.stringify({ pad: 'x'.repeat(100 * 1024) });
    await dev.publishAsync('devices/dev-1/events/telemetry', big, { qos: 1 });
    await letters.waitFor((m) => m.length === 1, 5_000, 'the dead letter');
    expect(letters.json<DeadLetter>()[0]).toMatchObject({ reason: 'too-large', deviceId: 'dev-1' });
    expect(dev.connected).toBe(true);
  });

  test('a topic outside the scheme is dead-lettered with reason topic', async () => {
    const w = await startWired();
    const letters = await subscriber(w.url, [DEAD_LETTER_TOPIC]);
    const dev = await device(w.url, 'dev-1');
    await dev.publishAsync('devices/dev-1/events/telemetry/extra', '{"temp":1}', { qos: 1 });
    await letters.waitFor((m) => m.length === 1, 5_000, 'the dead letter');
    expect(letters.json<DeadLetter>()[0]).toMatchObject({
      reason: 'topic',
      deviceId: 'dev-1',
      clientId: 'dev-1',
    });
    expect(deviceEvents(w)).toEqual([]);
  });

  test('a publish the hook refuses is not acknowledged: the connection closes so the device sends it again', async () => {
    const w = await startWired();
    const dev = await device(w.url, 'dev-1');
    const closed = new Promise<void>((resolve) => dev.once('close', () => resolve()));
    w.failPublishes = true;
    let acknowledged = false;
    dev.publish('devices/dev-1/events/telemetry', '{"temp":61}', { qos: 1 }, (err) => (acknowledged = !err));
    await closed;
    expect(acknowledged).toBe(false);
    await until('the disconnect hook', () => w.disconnects.length === 1);
    expect(w.disconnects).toEqual([['dev-1', 'error']]);
    expect(w.logs).toContainEqual(
      expect.objectContaining({ level: 50, clientId: 'dev-1', topic: 'devices/dev-1/events/telemetry' }),
    );
  });

  test('topics outside devices/+/events are relayed to subscribers and do not reach ingest', async () => {
    const w = await startWired();
    const watcher = await subscriber(w.url, ['devices/dev-1/status', 'plain/#']);
    const dev = await device(w.url, 'dev-1');
    await dev.publishAsync('devices/dev-1/status', 'online', { qos: 1 });
    await dev.publishAsync('plain/topic', 'hello', { qos: 0 });
    await watcher.waitFor((m) => m.length === 2, 5_000, 'relayed messages');
    expect(watcher.messages.map((m) => [m.topic, m.payload.toString()])).toEqual([
      ['devices/dev-1/status', 'online'],
      ['plain/topic', 'hello'],
    ]);
    expect(deviceEvents(w)).toEqual([]);
  });
});

describe('internal publish', () => {
  test('reaches a subscriber, and never passes through the device hook', async () => {
    const w = await startWired();
    const watcher = await subscriber(w.url, ['devices/dev-1/#']);
    await w.broker.publish('devices/dev-1/commands/inspect-device', JSON.stringify({ id: 'a1' }), { qos: 1 });
    await w.broker.publish('devices/dev-1/events/echo', Buffer.from('{"x":1}'));
    await watcher.waitFor((m) => m.length === 2, 5_000, 'internal publishes');
    expect(watcher.messages.map((m) => m.topic)).toEqual([
      'devices/dev-1/commands/inspect-device',
      'devices/dev-1/events/echo',
    ]);
    expect(deviceEvents(w)).toEqual([]);
  });

  test('a retained internal publish reaches a subscriber that comes later', async () => {
    const w = await startWired();
    await w.broker.publish('vigil/gw1/status', 'online', { retain: true });
    const late = await subscriber(w.url, ['vigil/gw1/status']);
    await late.waitFor((m) => m.length === 1, 5_000, 'the retained message');
    expect(late.messages[0]?.payload.toString()).toBe('online');
  });
});

describe('sockets', () => {
  test('TCP_NODELAY is set on every accepted connection', async () => {
    const setNoDelay = vi.spyOn(net.Socket.prototype, 'setNoDelay');
    const w = await startWired();
    await device(w.url, 'dev-1');
    await device(w.url, 'dev-2');
    const onBrokerSide = setNoDelay.mock.contexts.filter(
      (socket) => (socket as net.Socket).localPort === w.broker.address.port,
    );
    expect(onBrokerSide).toHaveLength(2);
    expect(
      setNoDelay.mock.calls.filter((_call, i) => onBrokerSide.includes(setNoDelay.mock.contexts[i])),
    ).toEqual([[true], [true]]);
  });
});

describe('packet size limit', () => {
  test('an oversized packet closes only that connection; another device keeps publishing', async () => {
    const w = await startWired();
    const offender = await device(w.url, 'big-1');
    const other = await device(w.url, 'dev-1');
    const closed = new Promise<void>((resolve) => offender.once('close', () => resolve()));
    offender.publish('devices/big-1/events/telemetry', Buffer.alloc(MAX_PACKET + 1, 0x20), { qos: 1 });
    await closed;

    await other.publishAsync('devices/dev-1/events/telemetry', '{"temp":61}', { qos: 1 });
    await until('the other device event', () => deviceEvents(w).length === 1);
    expect(deviceEvents(w)[0]).toMatchObject({ actor: 'dev-1', data: { temp: 61 } });
    expect(other.connected).toBe(true);
    await until('the disconnect hook', () => w.disconnects.length === 1);
    expect(w.disconnects).toEqual([['big-1', 'error']]);
    expect(w.broker.connectedCount).toBe(1);
    expect(w.logs).toContainEqual(
      expect.objectContaining({
        level: 40,
        clientId: 'big-1',
        address: expect.stringMatching(/^127\.0\.0\.1:\d+$/) as string,
        err: expect.objectContaining({ code: 'VIGIL_MQTT_PACKET_TOO_LARGE' }) as object,
      }),
    );
  });

  test('the connection closes on the header alone, before the body of a huge packet is sent', async () => {
    const w = await startWired();
    const socket = net.connect(w.broker.address.port, '127.0.0.1');
    open.push({ close: () => void socket.destroy() });
    socket.on('error', () => undefined);
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    socket.write(connectPacket('raw-1'));
    // PUBLISH announcing 100 MB (remaining length 100_000_000 as a variable byte integer), then 3 bytes of it.
    socket.write(Buffer.from([0x30, ...varint(100_000_000), 0x00, 0x01, 0x74]));
    await closed;
  });

  test('a packet of exactly the limit passes; one byte more does not', async () => {
    const limit = 1_000;
    const w = await startWired({ maxPacketBytes: limit });
    const watcher = await subscriber(w.url, ['t']);
    const dev = await device(w.url, 'dev-1');
    // PUBLISH at QoS 0 on topic "t": 1 type byte + 2 length bytes + 2 + 1 topic bytes + payload.
    await dev.publishAsync('t', Buffer.alloc(limit - 6, 0x61), { qos: 0 });
    await watcher.waitFor((m) => m.length === 1, 5_000, 'the packet at the limit');
    expect(watcher.messages[0]?.payload).toHaveLength(limit - 6);
    const closed = new Promise<void>((resolve) => dev.once('close', () => resolve()));
    dev.publish('t', Buffer.alloc(limit - 5, 0x61), { qos: 0 });
    await closed;
    expect(watcher.messages).toHaveLength(1);
  });
});

/** An MQTT 3.1.1 CONNECT with a clean session and no keep-alive. */
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
  return Buffer.concat([Buffer.from([0x10, ...varint(body.length)]), body]);
}

function varint(n: number): number[] {
  const bytes: number[] = [];
  do {
    let byte = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) byte |= 0x80;
    bytes.push(byte);
  } while (n > 0);
  return bytes;
}
