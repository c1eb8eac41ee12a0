import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { afterEach, describe, expect, test } from 'vitest';
import { startGateway, type Gateway } from '../../src/app/index.js';
import { startLocalBroker } from '../../src/broker/index.js';
import { parseConfig } from '../../src/config/index.js';
import { CredentialStore } from '../../src/credentials/index.js';
import { fileJournalStorage, type JournalStorage } from '../../src/runtime/index.js';
import type { Action } from '../../src/shared/index.js';
import { makePki } from '../helpers/certs.js';
import { Collector, connectWithConnack, until } from '../helpers/mqtt.js';
import { tempDir } from '../helpers/temp.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** Every reading is an action to the cloud and a command to its device, with the reading's number. */
const RULE = `id: reading
description: Every reading goes to the cloud and back to its device.
priority: 50
category: maintenance
when:
  event: telemetry
then:
  action: log-reading
  to: [upstream, device]
  payload:
    n: data.n
`;

/**
 * The journal's file storage, with the syncs held while `held` is set: what each sync made durable is added to
 * `synced` once it completes.
 */
function gatedStorage(): { storage: JournalStorage; hold(on: boolean): void; synced: Buffer[] } {
  const files = fileJournalStorage();
  const synced: Buffer[] = [];
  let release: (() => void) | undefined;
  let gate: Promise<void> = Promise.resolve();
  return {
    synced,
    hold(on) {
      if (on) gate = new Promise<void>((resolve) => (release = resolve));
      else release?.();
    },
    storage: {
      ...files,
      create: async (path) => {
        const file = await files.create(path);
        let appended: Buffer[] = [];
        return {
          append: async (chunks) => {
            await file.append(chunks);
            appended.push(...chunks);
          },
          datasync: async () => {
            const covered = appended;
            appended = [];
            await gate;
            await file.datasync();
            synced.push(...covered);
          },
          close: () => file.close(),
        };
      },
    },
  };
}

async function threadedGateway(
  data: string,
  cloudPort: number,
  storage?: JournalStorage,
  tls?: Record<string, string | number>,
): Promise<Gateway> {
  const rules = join(data, 'rules');
  await mkdir(rules, { recursive: true });
  await writeFile(join(rules, 'reading.yaml'), RULE);
  const gateway = await startGateway(
    parseConfig({
      gatewayId: 'gw1',
      data: join(data, 'data'),
      rules,
      threads: 2,
      mqtt: {
        host: '127.0.0.1',
        port: 0,
        ...(tls !== undefined ? { tls } : {}),
      },
      http: { port: 0 },
      upstream: { url: `mqtt://127.0.0.1:${cloudPort}`, reconnect: '200ms' },
      log: { level: 'silent' },
    }),
    storage !== undefined ? { journalStorage: storage } : {},
  );
  cleanups.push(() => gateway.stop());
  await gateway.recovered;
  return gateway;
}

/** A device with its own credential, checked at CONNECT by the decision thread's store. */
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

/** The auth refusals in the gateway's metrics, once one is counted (the count crosses from the edge thread). */
async function refusals(gateway: Gateway): Promise<string> {
  const read = () => gateway.metrics.registry.getSingleMetricAsString('vigil_auth_refusals_total');
  for (let i = 0; i < 100 && !/\} [1-9]/.test(await read()); i++) await new Promise((r) => setTimeout(r, 20));
  return read();
}

async function scene(storage?: JournalStorage): Promise<{ gateway: Gateway; atCloud: Collector }> {
  const dir = await tempDir();
  cleanups.push(() => dir.remove());
  const cloud = await startLocalBroker({ port: 0 });
  cleanups.push(() => cloud.close());
  const gateway = await threadedGateway(dir.path, cloud.address.port, storage);
  const atCloud = await Collector.connect(`mqtt://127.0.0.1:${cloud.address.port}`, ['vigil/gw1/actions']);
  cleanups.push(() => atCloud.close());
  return { gateway, atCloud };
}

describe('the gateway with threads: 2 (the device edge on a thread of its own)', () => {
  test('QoS 0 and QoS 1 events decide actions to the cloud and commands back to the device', async () => {
    const { gateway, atCloud } = await scene();
    const dev = await device(gateway, 'dev-1');
    const commands: Array<{ topic: string; n: number }> = [];
    dev.on('message', (topic, payload) =>
      commands.push({ topic, n: (JSON.parse(payload.toString()) as Action).payload.n as number }),
    );
    await dev.subscribeAsync('devices/dev-1/commands/#', { qos: 1 });

    dev.publish('devices/dev-1/events/telemetry', JSON.stringify({ n: 1 }), { qos: 0 });
    await dev.publishAsync('devices/dev-1/events/telemetry', JSON.stringify({ n: 2 }), { qos: 1 });
    await atCloud.waitFor((m) => m.length === 2, 10_000, 'both actions at the cloud');
    await until('both commands at the device', () => commands.length === 2, 10_000);

    const actions = atCloud.json<Action>();
    expect(actions.map((a) => a.payload.n).sort()).toEqual([1, 2]);
    expect(actions.every((a) => a.actor === 'dev-1' && a.scenario === 'reading')).toBe(true);
    expect(commands.map((c) => c.topic)).toEqual([
      'devices/dev-1/commands/log-reading',
      'devices/dev-1/commands/log-reading',
    ]);
    expect(commands.map((c) => c.n).sort()).toEqual([1, 2]);
    // Connection changes are inputs too, counted with the events.
    expect(await gateway.metrics.registry.getSingleMetricAsString('vigil_events_in_total')).toMatch(
      /type="connected"/,
    );
  });

  test('a QoS 1 PUBACK comes only once the journal synced the record of that publish', async () => {
    const gated = gatedStorage();
    const { gateway } = await scene(gated.storage);
    const dev = await device(gateway, 'dev-1');
    cleanups.push(() => Promise.resolve(gated.hold(false)));
    const marker = 'held-reading-7f3a';
    gated.hold(true);
    let acknowledged = false;
    const published = dev
      .publishAsync('devices/dev-1/events/telemetry', JSON.stringify({ n: 3, marker }), { qos: 1 })
      .then(() => (acknowledged = true));
    const holds = (b: Buffer) => b.includes(marker);
    // Long enough for a PUBACK that did not wait to arrive many times over.
    await new Promise((r) => setTimeout(r, 500));
    expect(acknowledged).toBe(false);
    expect(gated.synced.some(holds)).toBe(false);
    gated.hold(false);
    await published;
    expect(gated.synced.some(holds)).toBe(true);
  });

  test('a device with a wrong secret is refused at CONNECT; with its secret it gets a persistent session', async () => {
    const { gateway } = await scene();
    await new CredentialStore(gateway.store.sublevels.creds).add('dev-9');
    const port = gateway.mqtt.port;
    const received: string[] = [];
    const wrong = connectWithConnack(
      port,
      { clientId: 'dev-9', username: 'dev-9', password: 'not-the-secret' },
      received,
      (c) => cleanups.push(c),
    );
    await expect(wrong).rejects.toThrow(/Not authorized|Bad username/i);
    // The edge thread's guard counts, in the decision thread's metrics.
    expect(await refusals(gateway)).toMatch(/^vigil_auth_refusals_total\{reason="[a-z-]+"\} 1$/m);
    const secret = await new CredentialStore(gateway.store.sublevels.creds).rotate('dev-9');
    const lasting = connectWithConnack(
      port,
      { clientId: 'dev-9', username: 'dev-9', password: secret, clean: false },
      received,
      (c) => cleanups.push(c),
    );
    const first = await lasting;
    expect(first.connack.sessionPresent).toBe(false);
    // aedes reports a session present when it holds subscriptions.
    await first.client.subscribeAsync('devices/dev-9/commands/#', { qos: 1 });
    await first.client.endAsync();
    const again = await connectWithConnack(
      port,
      { clientId: 'dev-9', username: 'dev-9', password: secret, clean: false },
      received,
      (c) => cleanups.push(c),
    );
    expect(again.connack.sessionPresent).toBe(true);
  });

  test('the TLS listener runs on the edge thread: a device with a client certificate is its common name', async () => {
    const dir = await tempDir();
    cleanups.push(() => dir.remove());
    const pki = await makePki(dir.path);
    const cloud = await startLocalBroker({ port: 0 });
    cleanups.push(() => cloud.close());
    const tls = { port: 0, cert: pki.serverCert, key: pki.serverKey, ca: pki.caCert };
    const gateway = await threadedGateway(dir.path, cloud.address.port, undefined, tls);
    const atCloud = await Collector.connect(`mqtt://127.0.0.1:${cloud.address.port}`, ['vigil/gw1/actions']);
    cleanups.push(() => atCloud.close());
    const tlsPort = gateway.mqtts?.port;
    expect(tlsPort).toBeGreaterThan(0);
    const connect = async (id: string) => {
      const cert = await pki.client(id);
      return mqtt.connectAsync(`mqtts://127.0.0.1:${tlsPort}`, {
        clientId: id,
        ca: await readFile(pki.caCert),
        cert: await readFile(cert.cert),
        key: await readFile(cert.key),
        reconnectPeriod: 0,
        connectTimeout: 5_000,
      });
    };
    const dev = await connect('dev-t');
    cleanups.push(() => dev.endAsync());
    await dev.publishAsync('devices/dev-t/events/telemetry', JSON.stringify({ n: 5 }), { qos: 1 });
    await atCloud.waitFor((m) => m.length === 1, 10_000, 'the action at the cloud');
    expect(atCloud.json<Action>()[0]).toMatchObject({ actor: 'dev-t', payload: { n: 5 } });
  });
});
