import { connect } from 'node:net';
import mqtt from 'mqtt';
import mqttPacket from 'mqtt-packet';
import { afterEach, describe, expect, test } from 'vitest';
import { parseConfig } from '../../src/config/index.js';
import { startGateway, type Gateway } from '../../src/app/index.js';
import { tempDir } from '../helpers/temp.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function gateway(): Promise<Gateway> {
  const dir = await tempDir();
  cleanups.push(() => dir.remove());
  const gw = await startGateway(
    parseConfig({
      gatewayId: 'gw1',
      data: dir.path,
      mqtt: { host: '127.0.0.1', port: 0, allowAnonymous: true },
      http: { port: 0 },
      log: { level: 'silent' },
    }),
  );
  cleanups.push(() => gw.stop());
  return gw;
}

/** Sends one CONNECT and resolves with the bytes the broker answered before closing (or within a second). */
function answerTo(port: number, protocolVersion: 4 | 5): Promise<Buffer> {
  const packet = mqttPacket.generate(
    { cmd: 'connect', protocolId: 'MQTT', protocolVersion, clientId: 'dev-5', clean: true, keepalive: 30 },
    { protocolVersion },
  );
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    const done = () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(Buffer.concat(chunks));
    };
    const timer = setTimeout(done, 1_000);
    socket.on('data', (d: Buffer) => chunks.push(d));
    socket.once('close', done);
    socket.once('error', reject);
    socket.write(packet);
  });
}

describe('the MQTT versions devices may speak', () => {
  test('MQTT 5 is refused with CONNACK 0x01 (unacceptable protocol version) and the connection closed; 3.1.1 connects', async () => {
    const gw = await gateway();
    // [MQTT-3.1.2-2]: a 3.1.1 CONNACK, return code 1.
    expect([...(await answerTo(gw.mqtt.port, 5))]).toEqual([0x20, 0x02, 0x00, 0x01]);
    expect([...(await answerTo(gw.mqtt.port, 4))].slice(0, 4)).toEqual([0x20, 0x02, 0x00, 0x00]);
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${gw.mqtt.port}`, {
      clientId: 'dev-4',
      protocolVersion: 4,
      reconnectPeriod: 0,
    });
    cleanups.push(() => client.endAsync());
    expect(client.connected).toBe(true);
  });
});
