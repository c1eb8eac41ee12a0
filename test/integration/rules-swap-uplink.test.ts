import { writeFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterEach, expect, test } from 'vitest';
import { startLocalBroker } from '../../src/broker/index.js';
import { parseConfig } from '../../src/config/index.js';
import { startGateway } from '../../src/app/index.js';
import type { Action } from '../../src/shared/index.js';
import { tempDir } from '../helpers/temp.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const ALARM = `id: alarm
priority: 50
category: notice
when:
  event: alarm
then:
  action: raise
  to: [upstream]
  payload:
    n: data.n
`;

async function until(what: string, predicate: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test('a rules swap changes the pace of the uplink at once', async () => {
  const dir = await tempDir();
  cleanups.push(() => dir.remove());
  const rulesDir = join(dir.path, 'rules');
  await mkdir(rulesDir);
  await writeFile(join(rulesDir, 'alarm.yaml'), ALARM);
  // One action a minute: the first goes, the others wait far longer than this test runs.
  await writeFile(join(rulesDir, 'policy.yaml'), 'policy:\n  rate: 1/m\n');

  const cloud = await startLocalBroker({ port: 0, maxPacketBytes: 1024 * 1024 });
  cleanups.push(() => cloud.close());
  const received: Action[] = [];
  const watcher = await mqtt.connectAsync(`mqtt://127.0.0.1:${cloud.address.port}`);
  cleanups.push(() => watcher.endAsync());
  watcher.on('message', (_topic, payload) => received.push(JSON.parse(payload.toString()) as Action));
  await watcher.subscribeAsync('vigil/gw1/actions', { qos: 1 });

  const gateway = await startGateway(
    parseConfig({
      gatewayId: 'gw1',
      data: join(dir.path, 'data'),
      rules: rulesDir,
      mqtt: { host: '127.0.0.1', port: 0, allowAnonymous: true },
      http: { port: 0 },
      upstream: { url: `mqtt://127.0.0.1:${cloud.address.port}`, reconnect: '100ms' },
      log: { level: 'silent' },
    }),
  );
  cleanups.push(() => gateway.stop());
  await gateway.recovered;

  const device = await mqtt.connectAsync(`mqtt://127.0.0.1:${gateway.mqtt.port}`, { clientId: 'dev-1' });
  cleanups.push(() => device.endAsync());
  for (let n = 0; n < 5; n++) {
    await device.publishAsync('devices/dev-1/events/alarm', JSON.stringify({ n }), { qos: 1 });
  }
  await until('the first action', () => received.length === 1);
  await new Promise((r) => setTimeout(r, 300));
  expect(received).toHaveLength(1);
  expect(gateway.store.outbox.size).toBe(4);

  // The same scenario, a policy without a rate: the four waiting actions leave without a restart.
  await writeFile(join(rulesDir, 'policy.yaml'), 'policy:\n  rate: 1000/s\n');
  const status = await gateway.reloadRules();
  expect(status).toMatchObject({ status: 'applied' });
  await until('the waiting actions', () => received.length === 5, 5_000);
  expect(received.map((a) => a.payload.n)).toEqual([0, 1, 2, 3, 4]);
});
