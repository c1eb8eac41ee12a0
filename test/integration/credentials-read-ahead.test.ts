import mqtt from 'mqtt';
import pino from 'pino';
import { afterEach, expect, test } from 'vitest';
import { startGateway, type Gateway } from '../../src/app/index.js';
import { parseConfig } from '../../src/config/index.js';
import { CredentialStore, generateSecret, hashSecret } from '../../src/credentials/index.js';
import { tempDir } from '../helpers/temp.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

type Logged = Record<string, unknown> & { msg: string };

async function start(data: string, logged: Logged[] = []): Promise<Gateway> {
  const logger = pino(
    { level: 'info' },
    { write: (line: string) => void logged.push(JSON.parse(line) as Logged) },
  );
  const gateway = await startGateway(
    parseConfig({ gatewayId: 'gw1', data, mqtt: { host: '127.0.0.1', port: 0 }, http: { port: 0 } }),
    { logger },
  );
  cleanups.push(() => gateway.stop());
  return gateway;
}

/** The CONNACK return code (0: accepted), the connection closed again at once. */
async function connackCode(gateway: Gateway, id: string, secret: string): Promise<number> {
  const opts = { clientId: id, username: id, password: secret, reconnectPeriod: 0, connectTimeout: 5_000 };
  try {
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${gateway.mqtt.port}`, opts);
    await client.endAsync(true);
    return 0;
  } catch (err) {
    return (err as { code?: number }).code ?? -1;
  }
}

async function until(what: string, check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test('after a restart, a credential changed before its device reconnects is answered as changed, not as read ahead', async () => {
  const dir = await tempDir('vigil-read-ahead-');
  cleanups.push(() => dir.remove());
  const ids = ['dev-1', 'dev-2', 'dev-3', 'dev-4'];
  const first = await start(dir.path);
  const enrolling = new CredentialStore(first.store.sublevels.creds);
  const secrets = await Promise.all(ids.map((id) => enrolling.add(id)));
  for (const [i, id] of ids.entries()) expect(await connackCode(first, id, secrets[i] as string)).toBe(0);
  await first.stop();

  const logged: Logged[] = [];
  const gateway = await start(dir.path, logged);
  await until('the read-ahead', () => logged.some((l) => l.msg === 'credentials read ahead'));
  expect(logged.find((l) => l.msg === 'credentials read ahead')).toMatchObject({ devices: 4 });
  // Changed through a store of its own on the same credentials, as the HTTP API's profile import does.
  const changing = new CredentialStore(gateway.store.sublevels.creds);
  const rotated = await changing.rotate('dev-1');
  expect(await changing.remove('dev-2')).toBe(true);
  const imported = generateSecret();
  await changing.putHashes([{ id: 'dev-3', hash: hashSecret(imported) }]);

  expect(await connackCode(gateway, 'dev-1', secrets[0] as string)).toBe(4);
  expect(await connackCode(gateway, 'dev-2', secrets[1] as string)).toBe(4);
  expect(await connackCode(gateway, 'dev-3', secrets[2] as string)).toBe(4);
  expect(await connackCode(gateway, 'dev-4', secrets[3] as string)).toBe(0);
  expect(await connackCode(gateway, 'dev-1', rotated)).toBe(0);
  expect(await connackCode(gateway, 'dev-3', imported)).toBe(0);
});
