import { once } from 'node:events';
import net from 'node:net';
import type mqtt from 'mqtt';
import mqttPacket from 'mqtt-packet';
import { pino } from 'pino';
import { afterEach, describe, expect, test } from 'vitest';
import { startGateway, type Gateway } from '../../src/app/index.js';
import { startBroker, type Broker } from '../../src/broker/index.js';
import { parseConfig, type ConfigInput } from '../../src/config/index.js';
import { MqttSessions, openStore, type Store } from '../../src/store/index.js';
import { connectWithConnack, until } from '../helpers/mqtt.js';
import { tempDir } from '../helpers/temp.js';
import { captureLogs } from './durability-faults.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function gateway(
  mqttConfig: NonNullable<ConfigInput['mqtt']> = {},
  threads: 1 | 2 = 1,
): Promise<{ gateway: Gateway; lines: Array<Record<string, unknown>> }> {
  const dir = await tempDir();
  cleanups.push(() => dir.remove());
  const { logger, lines } = captureLogs('warn');
  const gw = await startGateway(
    parseConfig({
      gatewayId: 'gw1',
      threads,
      data: dir.path,
      mqtt: { host: '127.0.0.1', port: 0, allowAnonymous: true, ...mqttConfig },
      http: { port: 0 },
    }),
    { logger },
  );
  cleanups.push(() => gw.stop());
  return { gateway: gw, lines };
}

/** Connects and resolves with the CONNACK; `received` gets every message as `topic payload`. */
function connect(port: number, opts: mqtt.IClientOptions, received: string[] = []) {
  return connectWithConnack(port, opts, received, (c) => cleanups.push(c));
}

async function counter(gw: Gateway, name: string, labels: Record<string, string> = {}): Promise<number> {
  const metric = await gw.metrics.registry.getSingleMetric(name)?.get();
  return (metric?.values ?? [])
    .filter((v) => Object.entries(labels).every(([k, want]) => v.labels[k] === want))
    .reduce((sum, v) => sum + v.value, 0);
}

/** Resolves once the broker has seen every client go: what is published next is queued for their sessions. */
async function offline(gw: Gateway): Promise<void> {
  const deadline = Date.now() + 5_000;
  while ((await counter(gw, 'vigil_devices_connected')) > 0) {
    if (Date.now() > deadline) throw new Error('timed out waiting for the clients to be gone');
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Sends a raw CONNECT (MQTT 3.1.1) with a zero-length client id, which mqtt.js refuses to send with a persistent
 * session. Resolves with the CONNACK's return code, then whether the connection closed or answers a PINGREQ.
 */
async function connectWithEmptyId(port: number, clean: boolean): Promise<[number, 'closed' | 'open']> {
  const socket = net.connect(port, '127.0.0.1');
  cleanups.push(() => Promise.resolve(socket.destroy()));
  await once(socket, 'connect');
  const packets: Array<{ cmd: string; returnCode?: number }> = [];
  const parser = mqttPacket.parser({ protocolVersion: 4 });
  parser.on('packet', (packet) => packets.push(packet));
  socket.on('data', (data: Buffer) => parser.parse(data));
  const closed = once(socket, 'close').then(() => 'closed' as const);
  // CONNECT, remaining length 12: "MQTT", level 4, flags (clean session or not), keep-alive 60 s, client id "".
  socket.write(Buffer.from([0x10, 12, 0, 4, 0x4d, 0x51, 0x54, 0x54, 4, clean ? 0x02 : 0x00, 0, 60, 0, 0]));
  await until('the CONNACK', () => packets.length > 0);
  const returnCode = packets[0]?.returnCode ?? -1;
  if (returnCode !== 0) return [returnCode, await closed];
  socket.write(Buffer.from([0xc0, 0])); // PINGREQ
  await until('the PINGRESP', () => packets.some((p) => p.cmd === 'pingresp'));
  return [returnCode, 'open'];
}

// With two threads aedes runs on the edge thread and its sessions are this thread's, asked across.
describe.each([1, 2] as const)('persistent sessions, threads: %i', (threads) => {
  test('an offline client is held at most mqtt.sessions.maxQueued messages; the rest are counted and logged', async () => {
    const { gateway: gw, lines } = await gateway({ sessions: { maxQueued: 3 } }, threads);
    const port = gw.mqtt.port;
    const first = await connect(port, { clientId: 'dev-1', clean: false });
    await first.client.subscribeAsync('devices/dev-1/commands/#', { qos: 1 });
    await first.client.endAsync();
    await offline(gw);

    const console1 = await connect(port, { clientId: 'console' });
    for (const n of [1, 2, 3, 4, 5]) {
      await console1.client.publishAsync('devices/dev-1/commands/set', String(n), { qos: 1 });
    }

    const received: string[] = [];
    const back = await connect(port, { clientId: 'dev-1', clean: false }, received);
    expect(back.connack.sessionPresent).toBe(true);
    await until('the queued commands', () => received.length >= 3);
    // The marker goes out after the queue: once it is in, nothing more of the queue is coming.
    await console1.client.publishAsync('devices/dev-1/commands/marker', 'm', { qos: 1 });
    await until('the marker', () => received.length >= 4);
    expect(received.map((r) => r.split(' ')[1])).toEqual(['1', '2', '3', 'm']);
    expect(await counter(gw, 'vigil_mqtt_session_messages_dropped_total', { limit: 'max-queued' })).toBe(2);
    const logged = lines.filter((l) => l.msg === 'mqtt session full: message not kept');
    expect(logged).toHaveLength(1);
    expect(logged[0]).toMatchObject({ clientId: 'dev-1', limit: 'max-queued' });
  });

  test('a zero-length client id with a persistent session is refused with CONNACK 0x02 and closed; with a clean one it is accepted', async () => {
    const { gateway: gw } = await gateway({}, threads);
    expect(await connectWithEmptyId(gw.mqtt.port, false)).toEqual([2, 'closed']);
    expect(await connectWithEmptyId(gw.mqtt.port, true)).toEqual([0, 'open']);
  });

  test('a retained message reaches a later subscriber; an empty one clears it; a session is resumed with its subscription', async () => {
    const { gateway: gw } = await gateway({}, threads);
    const port = gw.mqtt.port;
    const first = await connect(port, { clientId: 'dev-1', clean: false });
    await first.client.subscribeAsync('devices/dev-1/commands/#', { qos: 1 });
    await first.client.endAsync();
    const console1 = await connect(port, { clientId: 'console' });
    await console1.client.publishAsync('devices/dev-2/status', 'online', { qos: 1, retain: true });
    await console1.client.publishAsync('devices/dev-3/status', 'online', { qos: 1, retain: true });
    await console1.client.publishAsync('devices/dev-3/status', '', { qos: 1, retain: true });

    const statuses: string[] = [];
    const watcher = await connect(port, { clientId: 'watcher' }, statuses);
    await watcher.client.subscribeAsync('devices/+/status', { qos: 1 });
    await until('the retained status', () => statuses.length >= 1);
    expect(statuses).toEqual(['devices/dev-2/status online']);

    const received: string[] = [];
    const back = await connect(port, { clientId: 'dev-1', clean: false }, received);
    expect(back.connack.sessionPresent).toBe(true);
    // No SUBSCRIBE on this connection: the message reaches it by the session's subscription.
    await console1.client.publishAsync('devices/dev-1/commands/reboot', 'now', { qos: 1 });
    await until('the command', () => received.length >= 1);
    expect(received).toEqual(['devices/dev-1/commands/reboot now']);
  });
});

describe('the broker with durable sessions', () => {
  async function broker(store: Store): Promise<{ broker: Broker; sessions: MqttSessions }> {
    const sessions = await MqttSessions.open(store.db);
    const started = await startBroker({
      host: '127.0.0.1',
      port: 0,
      maxPacketBytes: 64 * 1024,
      logger: pino({ level: 'silent' }),
      hooks: { onPublish: () => undefined, onConnected: () => undefined, onDisconnected: () => undefined },
      sessions,
    });
    return { broker: started, sessions };
  }

  test('after a restart, the subscriptions a session brings back reach the client sent to alone', async () => {
    const dir = await tempDir();
    cleanups.push(() => dir.remove());
    let store = await openStore(dir.path);
    let running = await broker(store);
    const first = await connect(running.broker.address.port, { clientId: 'dev-1', clean: false });
    await first.client.subscribeAsync('devices/dev-1/commands/#', { qos: 1 });
    await first.client.endAsync();
    await running.broker.close();
    await running.sessions.close();
    await store.close();

    store = await openStore(dir.path);
    cleanups.push(() => store.close());
    running = await broker(store);
    const started = running;
    cleanups.push(async () => {
      await started.broker.close();
      await started.sessions.close();
    });
    const received: string[] = [];
    const back = await connect(running.broker.address.port, { clientId: 'dev-1', clean: false }, received);
    expect(back.connack.sessionPresent).toBe(true);
    // No SUBSCRIBE on this connection: the broker knows the filter from the session.
    expect(await running.broker.sendTo('dev-1', 'devices/dev-1/commands/reboot', 'now')).toBe('acknowledged');
    expect(received).toEqual(['devices/dev-1/commands/reboot now']);
  });
});
