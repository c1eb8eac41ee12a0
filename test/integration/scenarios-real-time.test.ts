import { fileURLToPath } from 'node:url';
import mqtt, { type MqttClient } from 'mqtt';
import { afterEach, describe, expect, test } from 'vitest';
import { startLocalBroker, type Broker } from '../../src/broker/index.js';
import { parseConfig } from '../../src/config/index.js';
import { startGateway, type Gateway } from '../../src/app/index.js';
import type { Action } from '../../src/shared/index.js';
import { CredentialStore } from '../../src/credentials/index.js';
import { tempDir } from '../helpers/temp.js';

// The shipped rules with periods of seconds: device-offline 3 s, not-registered 4 s, site-outage within 10 s.
const SHORT_RULES = fileURLToPath(new URL('../fixtures/rules/short/', import.meta.url));
const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface Arrival {
  action: Action;
  at: number;
}

async function setUp(): Promise<{ gateway: Gateway; cloud: Broker; arrivals: Arrival[] }> {
  const dir = await tempDir();
  cleanups.push(() => dir.remove());
  const cloud = await startLocalBroker();
  cleanups.push(() => cloud.close());
  const arrivals: Arrival[] = [];
  await cloud.subscribe('vigil/gw1/actions', (_topic, payload) => {
    arrivals.push({ action: JSON.parse(payload.toString()) as Action, at: Date.now() });
  });
  const gateway = await startGateway(
    parseConfig({
      gatewayId: 'gw1',
      data: dir.path,
      rules: SHORT_RULES,
      mqtt: { host: '127.0.0.1', port: 0 },
      http: { port: 0 },
      upstream: { url: `mqtt://127.0.0.1:${cloud.address.port}`, reconnect: '200ms' },
      log: { level: 'silent' },
    }),
  );
  cleanups.push(() => gateway.stop());
  return { gateway, cloud, arrivals };
}

/** A device with a credential of its own, connected as client id = user name = its id. */
async function device(gateway: Gateway, id: string): Promise<MqttClient> {
  const secret = await new CredentialStore(gateway.store.sublevels.creds).add(id);
  const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${gateway.mqtt.port}`, {
    clientId: id,
    username: id,
    password: secret,
    reconnectPeriod: 0,
  });
  cleanups.push(() => client.endAsync());
  return client;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const of = (arrivals: Arrival[], scenario: string) => arrivals.filter((a) => a.action.scenario === scenario);

describe('scenarios on real time, through the gateway', () => {
  test('silent devices are reported offline once each, on time, and three of one site make one site-outage', async () => {
    const { gateway, arrivals } = await setUp();
    for (const id of ['s1', 's2', 's3', 'other']) {
      await gateway.store.profiles.put(id, { id, maxTemp: 90, site: id === 'other' ? 'south' : 'north' });
    }
    const lastSpoke = new Map<string, number>();
    const clients = new Map<string, MqttClient>();
    for (const id of ['s1', 's2', 's3', 'other']) {
      const client = await device(gateway, id);
      clients.set(id, client);
      // Timed from before the publish: its PUBACK waits for the journal's sync.
      lastSpoke.set(id, Date.now());
      await client.publishAsync(`devices/${id}/events/telemetry`, JSON.stringify({ temp: 20 }), { qos: 1 });
    }
    // `other` keeps talking, so it is never silent for 3 s.
    const other = clients.get('other');
    if (!other) throw new Error('no client for other');
    const keepAlive = setInterval(() => {
      void other.publishAsync('devices/other/events/heartbeat', '{}');
    }, 500);
    cleanups.push(() => Promise.resolve(clearInterval(keepAlive)));

    await sleep(2_500);
    expect(of(arrivals, 'device-offline')).toEqual([]);

    // Generous bounds: the deadline is 3 s after the last event; real timers on a shared machine.
    await sleep(2_500);
    const offline = of(arrivals, 'device-offline');
    expect(offline.map((a) => a.action.actor).sort()).toEqual(['s1', 's2', 's3']);
    for (const { action, at } of offline) {
      const spoke = lastSpoke.get(action.actor) ?? 0;
      expect(action.eventAt - Number(action.payload.lastSeen)).toBe(3_000);
      expect(at - spoke).toBeGreaterThanOrEqual(2_990);
      expect(at - spoke).toBeLessThan(5_000);
      expect(action.payload.site).toBe('north');
    }
    const outages = of(arrivals, 'site-outage');
    expect(outages).toHaveLength(1);
    expect(outages[0]?.action).toMatchObject({ group: 'north', payload: { site: 'north' } });

    // Reported once per silence: nothing more while they stay silent.
    await sleep(3_500);
    expect(of(arrivals, 'device-offline')).toHaveLength(3);
    expect(of(arrivals, 'site-outage')).toHaveLength(1);
  });

  test('a sequence absent step fires at its deadline: provisioned by the cloud, never connected', async () => {
    const { gateway, cloud, arrivals } = await setUp();
    await gateway.store.profiles.put('new-1', { id: 'new-1', site: 'east' });
    await gateway.store.profiles.put('new-2', { id: 'new-2', site: 'east' });
    await waitFor(() => gateway.metrics.upstreamConnected.get().then((m) => m.values[0]?.value === 1), 5_000);

    // The uplink reports itself connected once it has subscribed to the cloud's topics.
    const sentAt = Date.now();
    for (const actor of ['new-1', 'new-2']) {
      await cloud.publish(
        'vigil/gw1/events',
        JSON.stringify({ actor, type: 'provisioned', data: { crm: 'x' } }),
        {
          qos: 1,
        },
      );
    }
    // new-2 registers in time; new-1 never does.
    await sleep(1_000);
    await device(gateway, 'new-2');

    await waitFor(() => of(arrivals, 'provisioned-not-registered').length > 0, 8_000);
    const [escalation, ...more] = of(arrivals, 'provisioned-not-registered');
    expect(more).toEqual([]);
    expect(escalation?.action).toMatchObject({ actor: 'new-1', action: 'escalate-activation' });
    expect((escalation?.at ?? 0) - sentAt).toBeGreaterThanOrEqual(3_900);
    expect((escalation?.at ?? 0) - sentAt).toBeLessThan(6_000);
    await sleep(1_500);
    expect(of(arrivals, 'provisioned-not-registered')).toHaveLength(1);
  });
});

async function waitFor(check: () => Promise<boolean> | boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await sleep(25);
  }
}
