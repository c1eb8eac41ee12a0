import { createRequire } from 'node:module';
import mqtt, { type MqttClient } from 'mqtt';
import { pino } from 'pino';
import { afterEach, expect, test } from 'vitest';
import { startBroker, type Broker } from '../../src/broker/index.js';

// aedes's own mqtt-packet, as the broker finds it.
const fromAedes = createRequire(createRequire(import.meta.url).resolve('aedes'));
const numbers = fromAedes('mqtt-packet/numbers.js') as { cache: Record<number, Buffer> };

const open: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const close of open.splice(0).reverse()) await close();
});

async function start(): Promise<Broker> {
  const broker = await startBroker({
    host: '127.0.0.1',
    port: 0,
    maxPacketBytes: 64 * 1024,
    logger: pino({ level: 'silent' }),
    hooks: { onPublish: () => undefined, onConnected: () => undefined, onDisconnected: () => undefined },
  });
  open.push(() => broker.close());
  return broker;
}

async function connect(broker: Broker, clientId: string): Promise<MqttClient> {
  const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${broker.address.port}`, {
    clientId,
    reconnectPeriod: 0,
  });
  client.on('error', () => undefined);
  open.push(() => void client.end(true));
  return client;
}

test('the broker writes packet identifiers and lengths without a cache of all 65,536 numbers', async () => {
  const broker = await start();
  const device = await connect(broker, 'd1');
  await device.subscribeAsync('cmd/d1', { qos: 1 });
  const got: Array<{ payload: string; messageId: number | undefined }> = [];
  const all = new Promise<void>((resolve) => {
    device.on('message', (_topic, payload, packet) => {
      got.push({ payload: payload.toString(), messageId: packet.messageId });
      if (got.length === 3) resolve();
    });
  });
  for (const n of [1, 2, 3]) await broker.publish('cmd/d1', 'x'.repeat(300 * n), { qos: 1 });
  await all;

  // Identifiers and the lengths of a topic and of payloads over 255 bytes arrive intact.
  expect(got.map((g) => g.payload.length)).toEqual([300, 600, 900]);
  expect(new Set(got.map((g) => g.messageId)).size).toBe(3);
  expect(got.every((g) => typeof g.messageId === 'number' && g.messageId > 0)).toBe(true);
  // mqtt-packet's cache would hold a Buffer per number once the first packet was written (10 MB or more).
  expect(Object.keys(numbers.cache)).toHaveLength(0);
});
