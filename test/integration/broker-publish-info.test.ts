import mqtt, { type MqttClient } from 'mqtt';
import { pino } from 'pino';
import { afterEach, expect, test } from 'vitest';
import { startBroker, type PublishPacketInfo } from '../../src/broker/index.js';

const open: Array<{ close(): Promise<void> | void }> = [];

afterEach(async () => {
  for (const item of open.splice(0).reverse()) await item.close();
});

async function connect(url: string, clientId: string): Promise<MqttClient> {
  const client = await mqtt.connectAsync(url, { clientId, reconnectPeriod: 0 });
  client.on('error', () => undefined);
  open.push({ close: () => void client.end(true) });
  return client;
}

test("each publish's packet id, DUP flag and connection reach the hook, whatever the publish before it said", async () => {
  const seen: Array<{ clientId: string; qos: number; payload: string } & PublishPacketInfo> = [];
  const broker = await startBroker({
    host: '127.0.0.1',
    port: 0,
    maxPacketBytes: 64 * 1024,
    logger: pino({ level: 'silent' }),
    hooks: {
      // Copied during the call: the broker rewrites the object for the next publish.
      onPublish: (client, _topic, payload, qos, { dup, messageId, connection }) =>
        void seen.push({ clientId: client.id, qos, payload: payload.toString(), dup, messageId, connection }),
      onConnected: () => undefined,
      onDisconnected: () => undefined,
    },
  });
  open.push({ close: () => broker.close() });
  const url = `mqtt://127.0.0.1:${broker.address.port}`;
  const a = await connect(url, 'dev-a');
  const b = await connect(url, 'dev-b');
  for (let i = 0; i < 3; i++) {
    await a.publishAsync('devices/dev-a/events/t', `a${i}`, { qos: 1 });
    await b.publishAsync('devices/dev-b/events/t', `b${i}q1`, { qos: 1, dup: i === 1 });
    await b.publishAsync('devices/dev-b/events/t', `b${i}`, { qos: 0 });
  }
  await new Promise((resolve) => setTimeout(resolve, 50));
  expect(seen).toHaveLength(9);
  const byPayload = new Map(seen.map((s) => [s.payload, s]));
  const connectionOf = (clientId: string) => seen.find((s) => s.clientId === clientId)?.connection;
  expect(connectionOf('dev-a')).not.toBe(connectionOf('dev-b'));
  for (let i = 0; i < 3; i++) {
    expect(byPayload.get(`a${i}`)).toMatchObject({ qos: 1, dup: false, connection: connectionOf('dev-a') });
    expect(byPayload.get(`b${i}`)).toMatchObject({ qos: 0, dup: false, messageId: undefined });
    expect(byPayload.get(`b${i}q1`)).toMatchObject({
      qos: 1,
      dup: i === 1,
      connection: connectionOf('dev-b'),
    });
  }
  // Each client numbers its own QoS 1 publishes.
  const ids = (clientId: string) =>
    seen.filter((s) => s.clientId === clientId && s.qos === 1).map((s) => s.messageId);
  expect(new Set(ids('dev-a')).size).toBe(3);
  expect(new Set(ids('dev-b')).size).toBe(3);
  expect(ids('dev-b').every((id) => typeof id === 'number')).toBe(true);
});
