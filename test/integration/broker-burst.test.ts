import mqtt, { type MqttClient } from 'mqtt';
import { pino } from 'pino';
import { afterEach, expect, test } from 'vitest';
import { startBroker, type Broker } from '../../src/broker/index.js';

const open: Array<{ close(): Promise<void> }> = [];

afterEach(async () => {
  for (const item of open.splice(0).reverse()) await item.close();
});

/** Whole QoS 1 PUBLISH packets back to back, as a device flushing its queue after a reconnect sends them. */
function qos1Burst(topic: string, payload: string, count: number): Buffer {
  const topicBytes = Buffer.from(topic);
  const body = Buffer.from(payload);
  const remaining = 2 + topicBytes.length + 2 + body.length;
  if (remaining > 127) throw new Error('keep the test packets under 128 bytes');
  const packets: Buffer[] = [];
  for (let id = 1; id <= count; id++) {
    const p = Buffer.alloc(2 + remaining);
    p[0] = 0x32; // PUBLISH, QoS 1 [MQTT-3.3.1]
    p[1] = remaining;
    p.writeUInt16BE(topicBytes.length, 2);
    topicBytes.copy(p, 4);
    p.writeUInt16BE(id, 4 + topicBytes.length);
    body.copy(p, 6 + topicBytes.length);
    packets.push(p);
  }
  return Buffer.concat(packets);
}

test('a burst of QoS 1 events from many devices, some answered with commands, is acknowledged in full', async () => {
  const devices = 200;
  const perDevice = 50;
  let events = 0;
  const late: { broker?: Broker } = {};
  const broker = await startBroker({
    host: '127.0.0.1',
    port: 0,
    maxPacketBytes: 256 * 1024,
    logger: pino({ level: 'silent' }),
    hooks: {
      // One event in 20 decides a command back to its device, as a hot reading does.
      onPublish: (client) => {
        if (++events % 20 === 0) {
          late.broker?.publish(`devices/${client.id}/commands/check`, '{}').catch(() => undefined);
        }
      },
      onConnected: () => undefined,
      onDisconnected: () => undefined,
    },
  });
  late.broker = broker;
  open.push(broker);

  let acks = 0;
  let commands = 0;
  const clients: MqttClient[] = [];
  for (let d = 1; d <= devices; d++) {
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${broker.address.port}`, {
      clientId: `dev-${d}`,
      reconnectPeriod: 0,
    });
    await client.subscribeAsync(`devices/dev-${d}/commands/#`, { qos: 0 });
    // mqtt.js sent none of these publishes: it ignores their PUBACKs, which are counted here.
    client.on('packetreceive', (packet) => {
      if (packet.cmd === 'puback') acks++;
    });
    client.on('message', () => commands++);
    clients.push(client);
    open.push({ close: () => client.endAsync() });
  }
  // All at once: each device's burst is one write, so the broker reads many publishes per socket read.
  clients.forEach((client, i) =>
    client.stream.write(qos1Burst(`devices/dev-${i + 1}/events/telemetry`, '{"temp":21.5}', perDevice)),
  );

  const total = devices * perDevice;
  const deadline = Date.now() + 20_000;
  while ((acks < total || commands < total / 20) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  expect(events).toBe(total);
  expect(acks).toBe(total);
  expect(commands).toBe(total / 20);
});
