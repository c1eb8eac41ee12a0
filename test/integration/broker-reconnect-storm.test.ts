import mqtt, { type MqttClient } from 'mqtt';
import { afterEach, expect, test } from 'vitest';
import { startGateway, type Gateway } from '../../src/app/index.js';
import { parseConfig } from '../../src/config/index.js';
import type { Presence } from '../../src/dashboard/index.js';
import { tempDir } from '../helpers/temp.js';

// A reconnect storm on a real gateway: the devices' connection records and profile reads wait a few milliseconds
// for company (src/runtime/journal.ts, src/store/profile-store.ts); every one is still applied, in order with what
// the devices send, and nothing a device waits for is held back by it.

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const DEVICES = 150;

async function presence(gateway: Gateway): Promise<Presence> {
  const res = await fetch(`http://127.0.0.1:${gateway.http.port}/api/health`);
  return ((await res.json()) as { presence: Presence }).presence;
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

test('every device of a storm is connected and seen as connected; a QoS 1 publish right after is acknowledged', async () => {
  const dir = await tempDir('vigil-storm-');
  cleanups.push(() => dir.remove());
  const gateway = await startGateway(
    parseConfig({
      gatewayId: 'gw1',
      data: dir.path,
      mqtt: { host: '127.0.0.1', port: 0, allowAnonymous: true },
      http: { port: 0 },
      log: { level: 'silent' },
    }),
  );
  cleanups.push(() => gateway.stop());
  const ids = Array.from({ length: DEVICES }, (_, i) => `dev-${i + 1}`);
  // Known devices, their profiles not cached yet: each connection's profile is read from LevelDB.
  await gateway.store.profiles.putMany(ids.map((id) => ({ id, profile: { id, site: 'north' } })));
  const url = `mqtt://127.0.0.1:${gateway.mqtt.port}`;
  const clients: MqttClient[] = await Promise.all(
    ids.map((id) => mqtt.connectAsync(url, { clientId: id, reconnectPeriod: 0, connectTimeout: 10_000 })),
  );
  cleanups.push(() => Promise.all(clients.map((c) => c.endAsync(true))));
  // Acknowledged once synced: the connection records waiting for company go with it, not after it.
  await clients[0]?.publishAsync('devices/dev-1/events/heartbeat', JSON.stringify({ ok: true }), { qos: 1 });
  await until('every connection applied', async () => (await presence(gateway)).connected === DEVICES);

  await Promise.all(clients.map((c) => c.endAsync()));
  await until('every disconnection applied', async () => (await presence(gateway)).connected === 0);
  expect(await presence(gateway)).toMatchObject({ connected: 0, away: DEVICES });
}, 60_000);
