import mqtt, { type MqttClient } from 'mqtt';
import { afterEach, describe, expect, test } from 'vitest';
import { parseConfig, type ConfigInput } from '../../src/config/index.js';
import { startGateway, type Gateway } from '../../src/app/index.js';
import { CredentialStore } from '../../src/credentials/index.js';
import { tempDir } from '../helpers/temp.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface Site {
  gateway: Gateway;
  url: string;
  credentials: CredentialStore;
  /** Adds a device with a profile (maxTemp 50) and a credential; resolves to its secret. */
  enrol(id: string): Promise<string>;
}

async function site(mqttOverrides: NonNullable<ConfigInput['mqtt']> = {}): Promise<Site> {
  const dir = await tempDir('vigil-sec-');
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
    url: `mqtt://127.0.0.1:${gateway.mqtt.port}`,
    credentials,
    enrol: async (id) => {
      await gateway.store.profiles.put(id, { id, maxTemp: 50, site: 'north' });
      return credentials.add(id);
    },
  };
}

async function connect(url: string, opts: mqtt.IClientOptions): Promise<MqttClient> {
  const client = await mqtt.connectAsync(url, { reconnectPeriod: 0, connectTimeout: 5_000, ...opts });
  client.on('error', () => undefined);
  cleanups.push(() => client.endAsync(true));
  return client;
}

/** The CONNACK return code of a refused connect, or 0 when it was accepted. */
async function connackCode(url: string, opts: mqtt.IClientOptions): Promise<number> {
  try {
    await connect(url, opts);
    return 0;
  } catch (err) {
    return (err as { code?: number }).code ?? -1;
  }
}

/** The QoS granted per filter (128: refused); mqtt.js rejects a SUBACK with a refusal, so it is read from the error. */
async function granted(client: MqttClient, filters: string[]): Promise<number[]> {
  try {
    return (await client.subscribeAsync(filters, { qos: 1 })).map((g) => g.qos);
  } catch (err) {
    const packet = (err as { packet?: { granted?: number[] } }).packet;
    if (packet?.granted === undefined) throw err;
    return packet.granted;
  }
}

async function counter(gateway: Gateway, name: string, labels: Record<string, string> = {}): Promise<number> {
  const metric = await gateway.metrics.registry.getSingleMetric(name)?.get();
  return (metric?.values ?? [])
    .filter((v) => Object.entries(labels).every(([k, want]) => v.labels[k] === want))
    .reduce((sum, v) => sum + v.value, 0);
}

async function until(
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs = 5_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const telemetry = (temp: number) => JSON.stringify({ temp });

describe('authentication (on by default)', () => {
  test('no credentials, a wrong secret or another device id is refused; the right secret connects', async () => {
    const s = await site();
    const secret = await s.enrol('dev-1');
    expect(await connackCode(s.url, { clientId: 'dev-1' })).toBe(5);
    expect(
      await connackCode(s.url, { clientId: 'dev-1', username: 'dev-1', password: 'not-the-secret' }),
    ).toBe(4);
    expect(await connackCode(s.url, { clientId: 'dev-2', username: 'dev-2', password: secret })).toBe(4);
    expect(await connackCode(s.url, { clientId: 'dev-2', username: 'dev-1', password: secret })).toBe(2);
    expect(await connackCode(s.url, { clientId: 'dev-1', username: 'dev-1', password: secret })).toBe(0);

    expect(await counter(s.gateway, 'vigil_auth_refusals_total', { reason: 'no-credentials' })).toBe(1);
    expect(await counter(s.gateway, 'vigil_auth_refusals_total', { reason: 'wrong-secret' })).toBe(1);
    expect(await counter(s.gateway, 'vigil_auth_refusals_total', { reason: 'unknown-device' })).toBe(1);
    expect(await counter(s.gateway, 'vigil_auth_refusals_total', { reason: 'client-id-mismatch' })).toBe(1);
    // A refused client never became a device: no connected event for it.
    expect(await counter(s.gateway, 'vigil_events_in_total', { type: 'connected' })).toBe(1);
  });

  test('after a few refusals from one address, its next connects are answered late', async () => {
    const s = await site();
    await s.enrol('dev-1');
    const wrong = { clientId: 'dev-1', username: 'dev-1', password: 'wrong' };
    for (let i = 0; i < 5; i++) expect(await connackCode(s.url, wrong)).toBe(4);
    const startedAt = Date.now();
    expect(await connackCode(s.url, wrong)).toBe(4);
    // The sixth refusal waits 250 ms first (then 500, 1 s, … up to 10 s).
    expect(Date.now() - startedAt).toBeGreaterThanOrEqual(240);
  });

  test('a removed device is disconnected at once and cannot come back; a rotated secret replaces the old', async () => {
    const s = await site();
    const secret = await s.enrol('dev-1');
    const dev = await connect(s.url, { clientId: 'dev-1', username: 'dev-1', password: secret });
    const closed = new Promise<void>((resolve) => dev.once('close', () => resolve()));
    const rotated = await s.credentials.rotate('dev-1');
    expect(await connackCode(s.url, { clientId: 'dev-x', username: 'dev-1', password: secret })).toBe(2);
    expect(await connackCode(s.url, { clientId: 'dev-1', username: 'dev-1', password: secret })).toBe(4);
    const again = await connect(s.url, { clientId: 'dev-1', username: 'dev-1', password: rotated });
    const againClosed = new Promise<void>((resolve) => again.once('close', () => resolve()));
    await closed; // taken over by the new connection of the same client id

    const api = `http://127.0.0.1:${s.gateway.http.port}/api/devices/dev-1`;
    expect((await fetch(api, { method: 'DELETE' })).status).toBe(200);
    await againClosed;
    expect(await connackCode(s.url, { clientId: 'dev-1', username: 'dev-1', password: rotated })).toBe(4);
  });

  test('--allow-anonymous lets clients in without credentials; a wrong secret is still refused', async () => {
    const s = await site({ allowAnonymous: true });
    await s.enrol('dev-1');
    expect(await connackCode(s.url, { clientId: 'anything' })).toBe(0);
    expect(await connackCode(s.url, { clientId: 'dev-1', username: 'dev-1', password: 'wrong' })).toBe(4);
  });
});

describe('per-device topics', () => {
  test('a device publishing as another is acknowledged, decides nothing and is counted; its own events still flow', async () => {
    const s = await site();
    const a = await connect(s.url, {
      clientId: 'dev-a',
      username: 'dev-a',
      password: await s.enrol('dev-a'),
    });
    await s.enrol('dev-b');
    await a.publishAsync('devices/dev-b/events/telemetry', telemetry(99), { qos: 1 });
    await a.publishAsync('vigil/deadletter', '{}', { qos: 1 });
    await a.publishAsync('devices/dev-a/events/telemetry', telemetry(20), { qos: 1 });
    await until(
      'dev-a event',
      async () => (await counter(s.gateway, 'vigil_events_in_total', { type: 'telemetry' })) === 1,
    );

    expect(await counter(s.gateway, 'vigil_acl_refusals_total', { action: 'publish' })).toBe(2);
    expect(await counter(s.gateway, 'vigil_actions_decided_total')).toBe(0);
    expect(a.connected).toBe(true);
  });

  test("a device cannot subscribe to another device's commands, nor to # or $SYS; its own it receives", async () => {
    const s = await site();
    const a = await connect(s.url, {
      clientId: 'dev-a',
      username: 'dev-a',
      password: await s.enrol('dev-a'),
    });
    const b = await connect(s.url, {
      clientId: 'dev-b',
      username: 'dev-b',
      password: await s.enrol('dev-b'),
    });
    expect(await granted(a, ['devices/dev-b/commands/#', '#', '$SYS/#', 'vigil/deadletter'])).toEqual([
      128, 128, 128, 128,
    ]);
    expect(await granted(b, ['devices/dev-b/commands/#'])).toEqual([1]);
    const atA: string[] = [];
    const atB: string[] = [];
    a.on('message', (topic) => atA.push(topic));
    b.on('message', (topic) => atB.push(topic));

    // Overheat: the shipped rules send `inspect-device` to the device itself.
    await b.publishAsync('devices/dev-b/events/telemetry', telemetry(99), { qos: 1 });
    await until('the command at dev-b', () => atB.length === 1);
    expect(atB).toEqual(['devices/dev-b/commands/inspect-device']);
    expect(atA).toEqual([]);
    expect(await counter(s.gateway, 'vigil_acl_refusals_total', { action: 'subscribe' })).toBe(4);
  });

  test('topics over the length or depth limit are refused and counted; the connection stays', async () => {
    const s = await site({ maxTopicBytes: 64, maxTopicLevels: 5 });
    const a = await connect(s.url, {
      clientId: 'dev-a',
      username: 'dev-a',
      password: await s.enrol('dev-a'),
    });
    await a.publishAsync(`devices/dev-a/events/${'x'.repeat(64)}`, telemetry(1), { qos: 1 });
    await a.publishAsync('devices/dev-a/events/a/b/c', telemetry(1), { qos: 1 });
    expect(await granted(a, ['devices/dev-a/commands/a/b/c'])).toEqual([128]);
    expect(await counter(s.gateway, 'vigil_mqtt_limit_hits_total', { limit: 'topic-length' })).toBe(1);
    expect(await counter(s.gateway, 'vigil_mqtt_limit_hits_total', { limit: 'topic-levels' })).toBe(2);
    expect(a.connected).toBe(true);
  });
  test('a connection holds at most 100 subscriptions; an unsubscribe frees a place', async () => {
    const s = await site();
    const a = await connect(s.url, {
      clientId: 'dev-a',
      username: 'dev-a',
      password: await s.enrol('dev-a'),
    });
    const filters = Array.from({ length: 101 }, (_, i) => `devices/dev-a/commands/c${i}`);
    const first = await granted(a, filters);
    expect(first.filter((q) => q === 1)).toHaveLength(100);
    expect(first[100]).toBe(128);
    expect(await granted(a, ['devices/dev-a/commands/c0'])).toEqual([1]); // held already: no new place taken
    await a.unsubscribeAsync('devices/dev-a/commands/c0');
    expect(await granted(a, ['devices/dev-a/commands/#'])).toEqual([1]);
    expect(await counter(s.gateway, 'vigil_mqtt_limit_hits_total', { limit: 'subscriptions' })).toBe(1);
  });

  test('retained publishes from a device are kept up to mqtt.retained.maxPerDevice: a device cannot fill the store with them', async () => {
    const s = await site({ allowAnonymous: true, retained: { maxPerDevice: 2 } });
    const a = await connect(s.url, {
      clientId: 'dev-a',
      username: 'dev-a',
      password: await s.enrol('dev-a'),
    });
    const live = await connect(s.url, { clientId: 'watcher-1' });
    const seenLive: string[] = [];
    live.on('message', (topic) => seenLive.push(topic));
    await live.subscribeAsync('devices/dev-a/#', { qos: 1 });
    for (const topic of ['status', 'desired', 'extra']) {
      await a.publishAsync(`devices/dev-a/${topic}`, topic, { qos: 1, retain: true });
    }
    // All three are delivered; the third is not kept.
    await until('the live deliveries', () => seenLive.length === 3);
    expect(await counter(s.gateway, 'vigil_mqtt_retained_refused_total', { limit: 'per-device' })).toBe(1);

    const later = async (): Promise<string[]> => {
      const late = await connect(s.url, { clientId: 'watcher-2' });
      const seen: string[] = [];
      late.on('message', (topic, payload, packet) =>
        seen.push(`${topic}=${payload.toString()} ${packet.retain}`),
      );
      await late.subscribeAsync('devices/dev-a/#', { qos: 1 });
      await a.publishAsync('devices/dev-a/marker', 'x', { qos: 1 });
      await until('the marker', () => seen.some((m) => m.startsWith('devices/dev-a/marker')));
      await late.endAsync();
      return seen.sort();
    };
    expect(await later()).toEqual([
      'devices/dev-a/desired=desired true',
      'devices/dev-a/marker=x false',
      'devices/dev-a/status=status true',
    ]);
    // [MQTT-3.3.1-10] An empty retained publish clears the topic, and makes room.
    await a.publishAsync('devices/dev-a/desired', '', { qos: 1, retain: true });
    await a.publishAsync('devices/dev-a/extra', 'extra', { qos: 1, retain: true });
    expect(await later()).toEqual([
      'devices/dev-a/extra=extra true',
      'devices/dev-a/marker=x false',
      'devices/dev-a/status=status true',
    ]);
  });
});

describe('limits', () => {
  test('a device flooding far beyond its rate is throttled, then disconnected, while another device flows', async () => {
    const s = await site({ publishRate: { perSecond: 20, burst: 20, disconnectAfter: '1s' } });
    const flood = await connect(s.url, {
      clientId: 'dev-f',
      username: 'dev-f',
      password: await s.enrol('dev-f'),
    });
    const calm = await connect(s.url, {
      clientId: 'dev-c',
      username: 'dev-c',
      password: await s.enrol('dev-c'),
    });
    const floodClosed = new Promise<void>((resolve) => flood.once('close', () => resolve()));

    let sentByFlood = 0;
    let flooding = true;
    const pump = (async () => {
      while (flooding && flood.connected) {
        for (let i = 0; i < 50 && flood.connected; i++, sentByFlood++) {
          flood.publish('devices/dev-f/events/telemetry', telemetry(20), { qos: 0 });
        }
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    for (let i = 0; i < 10; i++) {
      await calm.publishAsync('devices/dev-c/events/telemetry', telemetry(20), { qos: 1 });
      await new Promise((r) => setTimeout(r, 50));
    }
    await floodClosed;
    flooding = false;
    await pump;

    const dropped = await counter(s.gateway, 'vigil_mqtt_limit_hits_total', { limit: 'publish-rate' });
    expect(sentByFlood).toBeGreaterThan(1_000);
    expect(dropped).toBeGreaterThan(sentByFlood / 2);
    expect(await counter(s.gateway, 'vigil_mqtt_limit_hits_total', { limit: 'rate-disconnect' })).toBe(1);
    await until('every calm event', async () => {
      const events = await counter(s.gateway, 'vigil_events_in_total', { type: 'telemetry' });
      return events >= 10 + 20;
    });
    // Of the flood, not much more than the burst and 20/s for the seconds it lasted got in.
    const total = await counter(s.gateway, 'vigil_events_in_total', { type: 'telemetry' });
    expect(total - 10).toBeLessThan(sentByFlood - dropped + 1);
    expect(calm.connected).toBe(true);
  });

  test('connections beyond the maximum are closed at once and counted', async () => {
    const s = await site({ maxConnections: 2 });
    const one = await connect(s.url, {
      clientId: 'dev-1',
      username: 'dev-1',
      password: await s.enrol('dev-1'),
    });
    await connect(s.url, { clientId: 'dev-2', username: 'dev-2', password: await s.enrol('dev-2') });
    const secret3 = await s.enrol('dev-3');
    const third = mqtt.connect(s.url, {
      clientId: 'dev-3',
      username: 'dev-3',
      password: secret3,
      reconnectPeriod: 0,
    });
    third.on('error', () => undefined);
    cleanups.push(() => third.endAsync(true));
    let connected = false;
    third.on('connect', () => (connected = true));
    await new Promise<void>((resolve) => third.once('close', () => resolve()));
    expect(connected).toBe(false);
    expect(await counter(s.gateway, 'vigil_mqtt_limit_hits_total', { limit: 'max-connections' })).toBe(1);
    await one.endAsync();
    await until('a free slot', async () => (await counter(s.gateway, 'vigil_mqtt_connections')) === 1);
    expect(await connackCode(s.url, { clientId: 'dev-3', username: 'dev-3', password: secret3 })).toBe(0);
  });
});

describe('the local HTTP API', () => {
  test('binding beyond loopback without a token is refused at start-up', async () => {
    const dir = await tempDir('vigil-sec-');
    cleanups.push(() => dir.remove());
    await expect(
      startGateway(
        parseConfig({
          data: dir.path,
          mqtt: { host: '127.0.0.1', port: 0 },
          http: { host: '0.0.0.0', port: 0 },
          log: { level: 'silent' },
        }),
      ),
    ).rejects.toThrow(/not a loopback address.*token/);
  });

  test('with a token, requests need it (Bearer, or Basic from a browser); /healthz stays open', async () => {
    const dir = await tempDir('vigil-sec-');
    cleanups.push(() => dir.remove());
    const token = 'a-token-of-32-characters-or-so-x';
    const gateway = await startGateway(
      parseConfig({
        data: dir.path,
        mqtt: { host: '127.0.0.1', port: 0 },
        http: { host: '0.0.0.0', port: 0, token },
        log: { level: 'silent' },
      }),
    );
    cleanups.push(() => gateway.stop());
    const base = `http://127.0.0.1:${gateway.http.port}`;
    const status = async (path: string, authorization?: string) =>
      (await fetch(`${base}${path}`, authorization ? { headers: { authorization } } : {})).status;
    expect(await status('/metrics')).toBe(401);
    expect(await status('/metrics', `Bearer ${token}x`)).toBe(401);
    expect(await status('/metrics', `Bearer ${token.slice(0, -1)}`)).toBe(401);
    expect(await status('/metrics', `Bearer ${token}`)).toBe(200);
    expect(await status('/api/devices', `Basic ${Buffer.from(`anyone:${token}`).toString('base64')}`)).toBe(
      200,
    );
    expect(await status('/healthz')).toBe(200);
    const refused = await fetch(`${base}/api/devices`);
    expect(refused.headers.get('www-authenticate')).toMatch(/^Basic/);
  });
});
