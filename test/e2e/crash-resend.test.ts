import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { startGatewayProcess, type GatewayProcess } from '../helpers/gateway-process.js';
import { tempDir } from '../helpers/temp.js';
import {
  connectDevice,
  gatewayArgs,
  rawPublish,
  startCloud,
  waitUntil,
  writeRules,
  READING_RULES,
  type Cloud,
} from './crash-harness.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const RULES = READING_RULES;

const TOPIC = 'devices/dev-1/events/telemetry';

describe('a QoS 1 publish sent again after a crash', () => {
  test('is acknowledged and not processed twice; a new publish reusing the packet id is processed', async () => {
    const dir = await tempDir();
    cleanups.push(() => dir.remove());
    const rules = await writeRules(join(dir.path, 'rules'), RULES);
    const cloud = await startCloud();
    cleanups.push(() => cloud.stop());
    const args = (port: number) =>
      gatewayArgs({ port, data: join(dir.path, 'data'), rules, upstream: cloud.url });
    const connect = (port: number) => connectDevice(port, 'dev-1');
    const idsOf = (c: Cloud, n: number) =>
      new Set(c.actions.filter((r) => r.action.payload.n === n).map((r) => r.action.id));

    let gateway: GatewayProcess = await startGatewayProcess(args(0));
    const port = gateway.mqttPort;
    let device = await connect(port);
    await rawPublish(device, TOPIC, JSON.stringify({ n: 1 }), 42, false);
    await waitUntil(() => idsOf(cloud, 1).size === 1, 10_000, 'the action of reading 1');
    // The device never saw that PUBACK, say: the gateway died right after recording the publish.
    await gateway.kill();
    device.end(true);

    gateway = await startGatewayProcess(args(port));
    cleanups.push(() => gateway.stop());
    device = await connect(port);
    cleanups.push(() => device.endAsync());
    await rawPublish(device, TOPIC, JSON.stringify({ n: 1 }), 42, true);
    await rawPublish(device, TOPIC, JSON.stringify({ n: 2 }), 43, false);
    await waitUntil(() => idsOf(cloud, 2).size === 1, 10_000, 'the action of reading 2');

    // A client that resends without DUP (mqtt.js does) after reconnecting: recognised all the same.
    device.end(true);
    device = await connect(port);
    await rawPublish(device, TOPIC, JSON.stringify({ n: 2 }), 43, false);
    // A DUP resend of something that never reached the gateway is processed: there is nothing to repeat.
    await rawPublish(device, TOPIC, JSON.stringify({ n: 3 }), 44, true);
    await rawPublish(device, TOPIC, JSON.stringify({ n: 4 }), 45, false);
    // After a new publish on this connection, packet id 42 with the old payload is a new reading.
    await rawPublish(device, TOPIC, JSON.stringify({ n: 1 }), 42, false);
    await waitUntil(
      () => idsOf(cloud, 3).size === 1 && idsOf(cloud, 4).size === 1 && idsOf(cloud, 1).size === 2,
      10_000,
      'the actions of readings 3, 4 and the second 1',
    );
    await new Promise((r) => setTimeout(r, 300));
    expect(idsOf(cloud, 2).size).toBe(1);
    expect(idsOf(cloud, 1).size).toBe(2);

    const metrics = await (await fetch(`http://127.0.0.1:${gateway.httpPort}/metrics`)).text();
    expect(metrics).toMatch(/^vigil_publish_resends_total 2$/m);
  });
});
