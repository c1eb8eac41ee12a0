import type { MqttClient } from 'mqtt';
import { pino } from 'pino';
import { afterEach, describe, expect, test } from 'vitest';
import { startBroker, type Broker } from '../../src/broker/index.js';
import { MqttSessions, openStore, type Store } from '../../src/store/index.js';
import { connectWithConnack, until } from '../helpers/mqtt.js';
import { tempDir } from '../helpers/temp.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface Running {
  broker: Broker;
  sessions: MqttSessions;
  /** `topic payload` of each publish the hook took in. */
  taken: string[];
  /** Set to hold the acknowledgement of QoS 1 publishes until it is called (the journal has not synced). */
  hold: Promise<void> | undefined;
  /** Publishes that went through aedes' router and its publish path, not acknowledged on the short way. */
  unrouted(): number;
}

async function start(store: Store): Promise<Running> {
  const sessions = await MqttSessions.open(store.db);
  const running: Running = {
    broker: undefined as unknown as Broker,
    sessions,
    taken: [],
    hold: undefined,
    unrouted: () => running.broker.unroutedPublishes ?? -1,
  };
  running.broker = await startBroker({
    host: '127.0.0.1',
    port: 0,
    maxPacketBytes: 64 * 1024,
    logger: pino({ level: 'silent' }),
    hooks: {
      onPublish: (_client, topic, payload, qos) => {
        running.taken.push(`${topic} ${payload.toString()}`);
        return qos > 0 ? running.hold : undefined;
      },
      onConnected: () => undefined,
      onDisconnected: () => undefined,
    },
    sessions,
  });
  return running;
}

async function broker(): Promise<Running> {
  const dir = await tempDir();
  cleanups.push(() => dir.remove());
  const store = await openStore(dir.path);
  cleanups.push(() => store.close());
  const running = await start(store);
  cleanups.push(() => running.sessions.close());
  cleanups.push(() => running.broker.close());
  return running;
}

function connect(
  running: Running,
  clientId: string,
  received: string[] = [],
  clean = true,
): Promise<{ client: MqttClient }> {
  return connectWithConnack(running.broker.address.port, { clientId, clean }, received, (c) =>
    cleanups.push(c),
  );
}

describe('publishes no subscription can match', () => {
  test('a device event no client subscribes to is taken in and acknowledged without going through the router', async () => {
    const b = await broker();
    const { client: device } = await connect(b, 'd1');
    // A subscription of its own, to its commands: held by the router, matched by no event.
    await device.subscribeAsync('devices/d1/commands/#', { qos: 1 });
    await device.publishAsync('devices/d1/events/temp', '21', { qos: 0 });
    await until('the event', () => b.taken.length === 1);
    expect(b.unrouted()).toBe(1);

    // QoS 1: the PUBACK still waits for the hook (the journal), then the publish goes no further.
    let release = (): void => undefined;
    b.hold = new Promise((resolve) => (release = resolve));
    let acknowledged = false;
    const publishing = device.publishAsync('devices/d1/events/temp', '22', { qos: 1 }).then(() => {
      acknowledged = true;
    });
    await until('the QoS 1 event', () => b.taken.length === 2);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(acknowledged).toBe(false);
    expect(b.unrouted()).toBe(1);
    release();
    await publishing;
    expect(b.unrouted()).toBe(2);
    expect(b.taken).toEqual(['devices/d1/events/temp 21', 'devices/d1/events/temp 22']);
  });

  test('a client that subscribes later is sent the events after its SUBACK, and none once it unsubscribes', async () => {
    const b = await broker();
    const { client: device } = await connect(b, 'd1');
    await device.publishAsync('devices/d1/events/temp', 'before', { qos: 1 });
    expect(b.unrouted()).toBe(1);

    const received: string[] = [];
    const { client: watcher } = await connect(b, 'watcher', received);
    await watcher.subscribeAsync(['devices/+/events/#', 'devices/d1/events/marker'], { qos: 1 });
    await device.publishAsync('devices/d1/events/temp', 'qos0', { qos: 0 });
    await device.publishAsync('devices/d1/events/temp', 'qos1', { qos: 1 });
    await until('the events', () => received.length === 2);
    expect(received).toEqual(['devices/d1/events/temp qos0', 'devices/d1/events/temp qos1']);
    expect(b.unrouted()).toBe(1);

    await watcher.unsubscribeAsync('devices/+/events/#');
    await device.publishAsync('devices/d1/events/temp', 'after', { qos: 1 });
    await device.publishAsync('devices/d1/events/marker', 'end', { qos: 1 });
    await until('the marker', () => received.length === 3);
    expect(received[2]).toBe('devices/d1/events/marker end');
    expect(b.unrouted()).toBe(2);
  });

  test('an in-process subscriber and a client subscribed to # are sent device events', async () => {
    const b = await broker();
    const inProcess: string[] = [];
    await b.broker.subscribe('devices/+/events/+', (topic, payload) =>
      inProcess.push(`${topic} ${payload.toString()}`),
    );
    const { client: device } = await connect(b, 'd1');
    await device.publishAsync('devices/d1/events/door', 'open', { qos: 1 });
    await until('the in-process delivery', () => inProcess.length === 1);

    const everything: string[] = [];
    const { client: all } = await connect(b, 'all', everything);
    await all.subscribeAsync('#', { qos: 0 });
    await device.publishAsync('devices/d1/events/door/state', 'closed', { qos: 0 });
    await until('the delivery to #', () => everything.includes('devices/d1/events/door/state closed'));
    expect(inProcess).toEqual(['devices/d1/events/door open']);
    expect(b.unrouted()).toBe(0);
  });

  test('a retained event with no subscriber is kept for the next one', async () => {
    const b = await broker();
    const { client: device } = await connect(b, 'd1');
    await device.publishAsync('devices/d1/events/state', 'on', { qos: 1, retain: true });
    expect(b.unrouted()).toBe(0);
    const received: string[] = [];
    const { client: late } = await connect(b, 'late', received);
    await late.subscribeAsync('devices/d1/events/state', { qos: 1 });
    await until('the retained event', () => received.length === 1);
    expect(received).toEqual(['devices/d1/events/state on']);
  });

  test('commands reach a device that subscribed to them, published by the gateway or by a client', async () => {
    const b = await broker();
    const received: string[] = [];
    const { client: device } = await connect(b, 'd1', received);
    await device.subscribeAsync('devices/d1/commands/#', { qos: 1 });
    await b.broker.publish('devices/d1/commands/reboot', 'now', { qos: 1 });
    expect(await b.broker.sendTo('d1', 'devices/d1/commands/light', 'on')).toBe('acknowledged');
    const { client: console1 } = await connect(b, 'console');
    await console1.publishAsync('devices/d1/commands/beep', 'twice', { qos: 1 });
    await until('the commands', () => received.length === 3);
    expect(received).toEqual([
      'devices/d1/commands/reboot now',
      'devices/d1/commands/light on',
      'devices/d1/commands/beep twice',
    ]);
    expect(b.unrouted()).toBe(0);
  });

  test('a QoS 1 event is held for a persistent session that is away, across a restart; a QoS 0 one is not', async () => {
    const dir = await tempDir();
    cleanups.push(() => dir.remove());
    let store = await openStore(dir.path);
    let b = await start(store);
    const first = await connect(b, 'watcher', [], false);
    await first.client.subscribeAsync('devices/+/events/#', { qos: 1 });
    await first.client.endAsync();
    const { client: device } = await connect(b, 'd1');
    await until('the watcher to be away', () => b.broker.connectedCount === 1);
    await device.publishAsync('devices/d1/events/temp', 'held', { qos: 1 });
    await device.publishAsync('devices/d1/events/temp', 'not held', { qos: 0 });
    await until('the QoS 0 event', () => b.taken.length === 2);
    expect(b.unrouted()).toBe(1);
    await device.endAsync();
    await b.broker.close();
    await b.sessions.close();
    await store.close();

    // The session's subscription comes back from the store, and so does what it holds.
    store = await openStore(dir.path);
    cleanups.push(() => store.close());
    b = await start(store);
    const running = b;
    cleanups.push(() => running.sessions.close());
    cleanups.push(() => running.broker.close());
    const { client: again } = await connect(b, 'd1');
    await again.publishAsync('devices/d1/events/temp', 'after restart', { qos: 1 });
    expect(b.unrouted()).toBe(0);
    const received: string[] = [];
    await connect(b, 'watcher', received, false);
    await until('the held events', () => received.length === 2);
    expect(received).toEqual(['devices/d1/events/temp held', 'devices/d1/events/temp after restart']);
  });
});
