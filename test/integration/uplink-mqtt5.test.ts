import mqtt from 'mqtt';
import { pino } from 'pino';
import { afterEach, describe, expect, test } from 'vitest';
import { policyFromObject } from '../../src/rules/policy.js';
import type { Action } from '../../src/shared/index.js';
import { openStore, type Store } from '../../src/store/index.js';
import { Uplink, type UplinkOptions } from '../../src/upstream/uplink.js';
import { hasMosquitto, MOSQUITTO_MISSING, startMosquitto } from '../helpers/mosquitto.js';
import { until } from '../helpers/mqtt.js';
import { tempDir } from '../helpers/temp.js';

/**
 * MQTT 5 on the uplink, against Debian's mosquitto 2: what each message of actions carries, and the message expiry
 * the broker enforces for a consumer that was away. (That the v5 session persists across a gateway restart is
 * in uplink-session.test.ts, on the same broker.)
 */
const quiet = pino({ level: 'silent' });
const HOUR = 3_600_000;
const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
if (!hasMosquitto()) console.warn(MOSQUITTO_MISSING);

interface Received {
  actions: Action[];
  properties: mqtt.IPublishPacket['properties'];
}

function action(id: string, category: string, decidedAt: number): Action {
  return {
    id,
    gateway: 'gw1',
    scenario: `scn-${id}`,
    action: 'notify',
    actor: 'dev-1',
    priority: 50,
    category,
    decidedAt,
    eventAt: decidedAt,
    payload: {},
  };
}

async function openOutbox(): Promise<Store> {
  const dir = await tempDir('vigil-uplink5-');
  const store = await openStore(dir.path);
  cleanups.push(() => dir.remove());
  cleanups.push(() => store.close());
  return store;
}

function startUplink(store: Store, url: string, opts: Partial<UplinkOptions>): Uplink {
  const uplink = new Uplink({
    url,
    gatewayId: 'gw1',
    keepaliveMs: 30_000,
    reconnectMs: 100,
    inflight: 100,
    outbox: store.outbox,
    logger: quiet,
    session: { protocolVersion: 5, expiryMs: HOUR },
    ...opts,
  });
  cleanups.push(() => uplink.stop());
  uplink.connect();
  return uplink;
}

/** A cloud consumer on MQTT 5 with a persistent session (kept an hour). */
async function consumer(url: string, received: Received[]): Promise<mqtt.MqttClient> {
  const client = mqtt.connect(url, {
    clientId: 'console',
    protocolVersion: 5,
    clean: false,
    properties: { sessionExpiryInterval: 3_600 },
    reconnectPeriod: 0,
  });
  // Before the CONNACK: what the broker kept for the session follows it at once.
  client.on('message', (_topic, payload, packet) => {
    const body = JSON.parse(payload.toString()) as Action | Action[];
    received.push({ actions: Array.isArray(body) ? body : [body], properties: packet.properties });
  });
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve());
    client.once('error', reject);
  });
  await client.subscribeAsync('vigil/gw1/actions', { qos: 1 });
  return client;
}

describe.runIf(hasMosquitto())('MQTT 5 on the uplink (mosquitto)', () => {
  test('each message says what it is: content type, action ids and scenarios, and an expiry from the ttl', async () => {
    const cloud = await startMosquitto();
    cleanups.push(() => cloud.stop());
    const received: Received[] = [];
    const console = await consumer(cloud.url, received);
    cleanups.push(() => console.endAsync());
    const store = await openOutbox();
    const now = 10 * HOUR;
    const policy = policyFromObject({ ttl: { offer: '1h' } });
    await store.outbox.add(action('offer-1', 'offer', now - 10 * 60_000));
    await store.outbox.add(action('support-1', 'support', now));
    startUplink(store, cloud.url, { policy: () => policy, now: () => now });
    await until('both actions', () => received.length === 2);

    const offer = received.find((r) => r.actions[0]?.id === 'offer-1');
    expect(offer?.properties).toMatchObject({
      contentType: 'application/json',
      userProperties: { actionId: 'offer-1', scenario: 'scn-offer-1' },
    });
    // 50 minutes left of its hour; the broker may count down a second on its way.
    expect(offer?.properties?.messageExpiryInterval).toBeGreaterThanOrEqual(50 * 60 - 5);
    expect(offer?.properties?.messageExpiryInterval).toBeLessThanOrEqual(50 * 60);
    // No ttl for its category: it never expires on the broker.
    const support = received.find((r) => r.actions[0]?.id === 'support-1');
    expect(support?.properties).toMatchObject({
      contentType: 'application/json',
      userProperties: { actionId: 'support-1', scenario: 'scn-support-1' },
    });
    expect(support?.properties?.messageExpiryInterval).toBeUndefined();
  }, 20_000);

  test('a consumer away longer than an action’s ttl never gets it from the broker; the others wait for it', async () => {
    const cloud = await startMosquitto();
    cleanups.push(() => cloud.stop());
    const received: Received[] = [];
    const first = await consumer(cloud.url, received);
    // The consumer goes away; the broker keeps its session and queues for it.
    await first.endAsync();
    const store = await openOutbox();
    const now = 10 * HOUR;
    const policy = policyFromObject({ ttl: { offer: '1h' } });
    // One second left of its hour, and a whole hour.
    await store.outbox.add(action('offer-late', 'offer', now - HOUR + 1_000));
    await store.outbox.add(action('offer-fresh', 'offer', now));
    await store.outbox.add(action('support', 'support', now));
    startUplink(store, cloud.url, { policy: () => policy, now: () => now });
    await until('all three acknowledged by the broker', () => store.outbox.size === 0);
    // Past the late offer's expiry on the broker's clock, with a margin.
    await new Promise((r) => setTimeout(r, 3_000));

    const back = await consumer(cloud.url, received);
    cleanups.push(() => back.endAsync());
    await until('what the broker kept', () => received.length >= 2);
    await new Promise((r) => setTimeout(r, 300));
    const ids = received.flatMap((r) => r.actions.map((a) => a.id));
    expect(ids.sort()).toEqual(['offer-fresh', 'support']);
  }, 20_000);

  test('a batch carries every id and scenario, and expires with the longest ttl left', async () => {
    const cloud = await startMosquitto();
    cleanups.push(() => cloud.stop());
    const received: Received[] = [];
    const console = await consumer(cloud.url, received);
    cleanups.push(() => console.endAsync());
    const store = await openOutbox();
    const now = 10 * HOUR;
    const policy = policyFromObject({ ttl: { offer: '1h', notice: '10m' } });
    await store.outbox.add(action('x', 'offer', now - 30 * 60_000));
    await store.outbox.add(action('y', 'notice', now));
    startUplink(store, cloud.url, {
      policy: () => policy,
      now: () => now,
      batch: { max: 10, withinMs: 0 },
    });
    await until('the batch', () => received.length === 1);
    const [batch] = received;
    expect(batch?.actions.map((a) => a.id).sort()).toEqual(['x', 'y']);
    const ids = batch?.properties?.userProperties?.['actionId'];
    expect([ids].flat().sort()).toEqual(['x', 'y']);
    expect([batch?.properties?.userProperties?.['scenario']].flat().sort()).toEqual(['scn-x', 'scn-y']);
    // x has 30 minutes left, y 10: the message lasts as long as x.
    expect(batch?.properties?.messageExpiryInterval).toBeGreaterThan(29 * 60);
    expect(batch?.properties?.messageExpiryInterval).toBeLessThanOrEqual(30 * 60);
  }, 20_000);
});
