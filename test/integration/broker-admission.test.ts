import { readFile } from 'node:fs/promises';
import net from 'node:net';
import mqtt, { type MqttClient } from 'mqtt';
import { afterEach, describe, expect, test } from 'vitest';
import { parseConfig, type ConfigInput } from '../../src/config/index.js';
import { startGateway, type Gateway } from '../../src/app/index.js';
import { CredentialStore } from '../../src/credentials/index.js';
import { makePki } from '../helpers/certs.js';
import { tempDir } from '../helpers/temp.js';

// Linux routes all of 127.0.0.0/8 to the loopback interface: a client socket bound to 127.0.0.2 is
// another source address to the gateway.
const FLOODER = '127.0.0.2';
const DEVICE = '127.0.0.1';

const cleanups: Array<() => Promise<unknown> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function site(mqttOverrides: NonNullable<ConfigInput['mqtt']> = {}) {
  const dir = await tempDir('vigil-admission-');
  cleanups.push(() => dir.remove());
  const gateway = await startGateway(
    parseConfig({
      gatewayId: 'gw1',
      data: dir.path,
      mqtt: { host: '127.0.0.1', port: 0, ...mqttOverrides },
      http: { port: 0 },
      log: { level: 'silent' },
    }),
  );
  cleanups.push(() => gateway.stop());
  const credentials = new CredentialStore(gateway.store.sublevels.creds);
  return {
    gateway,
    port: gateway.mqtt.port,
    enrol: async (id: string) => {
      await gateway.store.profiles.put(id, { id, maxTemp: 50 });
      return credentials.add(id);
    },
  };
}

/** Raw TCP connections from `from` that never send CONNECT, opened a few hundred at a time. */
interface Flood {
  sockets: net.Socket[];
  /** How many of them the gateway has closed. */
  closed(): number;
}

async function flood(port: number, from: string, count: number): Promise<Flood> {
  const sockets: net.Socket[] = [];
  let closed = 0;
  cleanups.push(() => {
    for (const s of sockets) s.destroy();
  });
  const open = (): Promise<void> =>
    new Promise((resolve) => {
      const socket = net.connect({ port, host: DEVICE, localAddress: from });
      sockets.push(socket);
      socket.on('error', () => undefined);
      socket.once('close', () => {
        closed++;
        resolve();
      });
      socket.once('connect', () => resolve());
    });
  // In steps, so that the listen backlog never overflows (a dropped SYN is retried a second later).
  for (let i = 0; i < count; i += 250) {
    await Promise.all(Array.from({ length: Math.min(250, count - i) }, open));
  }
  return { sockets, closed: () => closed };
}

async function device(port: number, id: string, password: string): Promise<MqttClient> {
  const client = await mqtt.connectAsync(`mqtt://${DEVICE}:${port}`, {
    clientId: id,
    username: id,
    password,
    reconnectPeriod: 0,
    connectTimeout: 1_000,
  });
  client.on('error', () => undefined);
  cleanups.push(() => client.endAsync(true));
  return client;
}

async function metric(gateway: Gateway, name: string, labels: Record<string, string> = {}): Promise<number> {
  const values = (await gateway.metrics.registry.getSingleMetric(name)?.get())?.values ?? [];
  return values
    .filter((v) => Object.entries(labels).every(([k, want]) => v.labels[k] === want))
    .reduce((sum, v) => sum + v.value, 0);
}

async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const limitHits = (gateway: Gateway, limit: string) =>
  metric(gateway, 'vigil_mqtt_limit_hits_total', { limit });

describe('connections that never send CONNECT', () => {
  test('one address holding 10,000 of them cannot keep a device from another address out', async () => {
    // 10,000 client sockets plus the 1,000 the gateway keeps fit in this process's 20,000 descriptors.
    const s = await site();
    const secret = await s.enrol('dev-1');
    const f = await flood(s.port, FLOODER, 10_000);

    // The 1,000 allowed per address by default stay; the 9,000 above it are closed and counted.
    await until('the sockets over the cap closed', () => f.closed() === 9_000);
    expect(await limitHits(s.gateway, 'pending-per-address')).toBe(9_000);
    expect(await metric(s.gateway, 'vigil_mqtt_pending_connections')).toBe(1_000);
    expect(await limitHits(s.gateway, 'max-connections')).toBe(0);

    const startedAt = Date.now();
    const dev = await device(s.port, 'dev-1', secret);
    await dev.publishAsync('devices/dev-1/events/telemetry', JSON.stringify({ temp: 21 }), { qos: 1 });
    expect(Date.now() - startedAt).toBeLessThan(1_000);
    expect(await metric(s.gateway, 'vigil_mqtt_pending_connections')).toBe(1_000);
    expect(f.closed()).toBe(9_000);
    // Opening 10,000 sockets takes 10-20 s on a busy 2-core machine.
  }, 120_000);

  test('when the listeners are full, a device takes the place of the flooding address’s oldest one', async () => {
    // A per-address cap above the connection limit: the fair share, not the cap, keeps the device in.
    const s = await site({ maxConnections: 300, maxPendingPerAddress: 1_000 });
    const secret = await s.enrol('dev-1');
    const f = await flood(s.port, FLOODER, 1_000);
    await until('the sockets over the limit closed', () => f.closed() === 700);
    expect(await limitHits(s.gateway, 'max-connections')).toBe(700);
    expect(await metric(s.gateway, 'vigil_mqtt_connections')).toBe(300);

    const firstClosed = new Promise<void>((resolve) => f.sockets[0]?.once('close', () => resolve()));
    const dev = await device(s.port, 'dev-1', secret);
    await dev.publishAsync('devices/dev-1/events/telemetry', JSON.stringify({ temp: 21 }), { qos: 1 });
    await firstClosed;
    expect(await limitHits(s.gateway, 'pending-shed')).toBe(1);
    expect(await metric(s.gateway, 'vigil_mqtt_pending_connections')).toBe(299);
    expect(await metric(s.gateway, 'vigil_mqtt_connections')).toBe(300);

    // The established device is never pushed out: the flooder's next connection is the one refused.
    await flood(s.port, FLOODER, 1);
    expect(await limitHits(s.gateway, 'max-connections')).toBe(701);
    expect(dev.connected).toBe(true);
  });

  test('a connection that has not completed CONNECT within mqtt.connectTimeout is closed and counted', async () => {
    const s = await site({ connectTimeout: '500ms' });
    const secret = await s.enrol('dev-1');
    const dev = await device(s.port, 'dev-1', secret);
    const f = await flood(s.port, FLOODER, 1);
    expect(await metric(s.gateway, 'vigil_mqtt_pending_connections')).toBe(1);

    await until('the idle socket closed', () => f.closed() === 1);
    expect(await limitHits(s.gateway, 'connect-timeout')).toBe(1);
    expect(await metric(s.gateway, 'vigil_mqtt_pending_connections')).toBe(0);
    // The device completed CONNECT long before: the timeout is not for it.
    await new Promise((r) => setTimeout(r, 600));
    expect(dev.connected).toBe(true);
    await dev.publishAsync('devices/dev-1/events/telemetry', JSON.stringify({ temp: 21 }), { qos: 1 });
  });

  test('on the TLS listener the handshake is part of the time allowed; a device past CONNECT stays', async () => {
    const dir = await tempDir('vigil-admission-pki-');
    cleanups.push(() => dir.remove());
    const pki = await makePki(dir.path);
    const s = await site({
      connectTimeout: '500ms',
      tls: { port: 0, cert: pki.serverCert, key: pki.serverKey },
    });
    const tlsPort = s.gateway.mqtts?.port ?? 0;
    const secret = await s.enrol('dev-1');
    const dev = await mqtt.connectAsync(`mqtts://${DEVICE}:${tlsPort}`, {
      clientId: 'dev-1',
      username: 'dev-1',
      password: secret,
      ca: await readFile(pki.caCert),
      reconnectPeriod: 0,
    });
    dev.on('error', () => undefined);
    cleanups.push(() => dev.endAsync(true));
    // Never starts its handshake: closed by the connect timeout, long before the 10 s handshake timeout.
    const f = await flood(tlsPort, FLOODER, 1);
    await until('the idle socket closed', () => f.closed() === 1);
    expect(await limitHits(s.gateway, 'connect-timeout')).toBe(1);
    await new Promise((r) => setTimeout(r, 600));
    // Closed once, for one reason.
    expect(await metric(s.gateway, 'vigil_auth_refusals_total')).toBe(0);
    expect(dev.connected).toBe(true);
    expect(await metric(s.gateway, 'vigil_mqtt_pending_connections')).toBe(0);
    expect(await metric(s.gateway, 'vigil_mqtt_connections')).toBe(1);
  });
});
