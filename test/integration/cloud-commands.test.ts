import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterEach, describe, expect, test } from 'vitest';
import { startGateway, type Gateway } from '../../src/app/index.js';
import { startLocalBroker } from '../../src/broker/index.js';
import { parseConfig } from '../../src/config/index.js';
import { CredentialStore } from '../../src/credentials/index.js';
import { Collector } from '../helpers/mqtt.js';
import { tempDir } from '../helpers/temp.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface Status {
  id: string | null;
  status: string;
  reason: string | null;
}

async function scene(): Promise<{
  gateway: Gateway;
  /** Stops the gateway and starts it again on the same data directory, once it is back online. */
  restart: () => Promise<Gateway>;
  send: (body: unknown) => Promise<unknown>;
  statuses: () => Status[];
  waitForStatuses: (n: number) => Promise<void>;
}> {
  const tmp = await tempDir();
  cleanups.push(() => tmp.remove());
  const cloud = await startLocalBroker();
  cleanups.push(() => cloud.close());
  const cloudUrl = `mqtt://127.0.0.1:${cloud.address.port}`;
  const seen = await Collector.connect(cloudUrl, ['vigil/gw1/status', 'vigil/gw1/commands/status']);
  cleanups.push(() => seen.close());
  const console1 = await mqtt.connectAsync(cloudUrl, { clientId: 'console', reconnectPeriod: 0 });
  cleanups.push(() => console1.endAsync());
  const config = parseConfig({
    gatewayId: 'gw1',
    data: join(tmp.path, 'data'),
    mqtt: { host: '127.0.0.1', port: 0, allowAnonymous: true },
    http: { port: 0 },
    upstream: { url: cloudUrl, reconnect: '200ms' },
    ingest: { cloudEvents: { maxBytes: 512 } },
    log: { level: 'silent' },
  });
  const start = async (): Promise<Gateway> => {
    const onlines = () => seen.messages.filter((m) => m.payload.toString() === 'online').length;
    const before = onlines();
    const gw = await startGateway(config);
    cleanups.push(() => gw.stop());
    await gw.recovered;
    await seen.waitFor(() => onlines() > before, 5_000, 'online');
    return gw;
  };
  const gateway = await start();
  const statuses = () =>
    seen.json<Status>('vigil/gw1/commands/status').map(({ id, status, reason }) => ({ id, status, reason }));
  return {
    gateway,
    restart: async () => {
      await gateway.stop();
      return start();
    },
    send: (body) =>
      console1.publishAsync('vigil/gw1/commands', typeof body === 'string' ? body : JSON.stringify(body), {
        qos: 1,
      }),
    statuses,
    waitForStatuses: (n) => seen.waitFor(() => statuses().length >= n, 5_000, `${n} statuses`),
  };
}

async function metric(gateway: Gateway, series: string): Promise<number | undefined> {
  const name = series.replace(/\{.*$/, '');
  const text = await gateway.metrics.registry.getSingleMetricAsString(name);
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.split(' ').at(-1));
}

describe('commands from the cloud, in process (aedes as the cloud)', () => {
  test('a device known by its profile or its credential gets its command; a monitor sees the data too', async () => {
    const { gateway, send, statuses, waitForStatuses } = await scene();
    await gateway.store.profiles.put('dev-p', { id: 'dev-p' });
    await new CredentialStore(gateway.store.sublevels.creds).add('dev-c');

    const monitor = await Collector.connect(`mqtt://127.0.0.1:${gateway.mqtt.port}`, [
      'devices/+/commands/#',
    ]);
    cleanups.push(() => monitor.close());
    await send({ id: 'p-1', device: 'dev-p', command: 'open', data: { valve: 2 }, ttl: '1h', by: 'alice' });
    await send({ id: 'c-1', device: 'dev-c', command: 'close', ttl: '1h' });
    await send({ id: 'x-1', device: 'dev-x', command: 'close', ttl: '1h' });
    await waitForStatuses(1);
    expect(statuses()).toEqual([{ id: 'x-1', status: 'refused', reason: 'unknown device dev-x' }]);
    // Another subscriber of the command topics (a monitor) gets a copy of each as it is queued.
    await monitor.waitFor((m) => m.length >= 2, 5_000, 'the copies');
    expect(monitor.messages.map((m) => `${m.topic} ${m.payload.toString()}`)).toEqual([
      'devices/dev-p/commands/open {"valve":2}',
      'devices/dev-c/commands/close {}',
    ]);

    // dev-p subscribes at QoS 0: written to its connection is as far as it can be delivered.
    const dev = await mqtt.connectAsync(`mqtt://127.0.0.1:${gateway.mqtt.port}`, {
      clientId: 'dev-p',
      reconnectPeriod: 0,
    });
    cleanups.push(() => dev.endAsync());
    const got: string[] = [];
    dev.on('message', (topic, payload, packet) =>
      got.push(`${topic} ${payload.toString()} qos${packet.qos}`),
    );
    await dev.subscribeAsync('devices/dev-p/commands/#', { qos: 0 });
    await waitForStatuses(2);
    expect(statuses()[1]).toEqual({ id: 'p-1', status: 'delivered', reason: 'written at QoS 0' });
    expect(got).toEqual(['devices/dev-p/commands/open {"valve":2} qos0']);
    expect(await metric(gateway, 'vigil_cloud_commands_received_total')).toBe(3);
    expect(await metric(gateway, 'vigil_cloud_commands_refused_total{reason="unknown-device"}')).toBe(1);
    expect(await metric(gateway, 'vigil_cloud_commands_status_total{status="delivered"}')).toBe(1);
    expect(gateway.store.commands.has('cloud:c-1')).toBe(true);
  });

  test('a command over the size bound is refused without an id', async () => {
    const { gateway, send, statuses, waitForStatuses } = await scene();
    await gateway.store.profiles.put('dev-p', { id: 'dev-p' });
    await send({ id: 'big', device: 'dev-p', command: 'x', data: 'a'.repeat(600), ttl: '1m' });
    await waitForStatuses(1);
    expect(statuses()).toEqual([{ id: null, status: 'refused', reason: 'the command is over 512 bytes' }]);
    expect(await metric(gateway, 'vigil_cloud_commands_refused_total{reason="too-large"}')).toBe(1);
    expect(gateway.store.commands.size).toBe(0);
  });

  test('a command that waited past its ttl is reported expired at the next start, its device still away', async () => {
    const { gateway, restart, send, statuses, waitForStatuses } = await scene();
    await gateway.store.profiles.put('dev-p', { id: 'dev-p' });
    await send({ id: 'e-1', device: 'dev-p', command: 'open', ttl: '300ms' });
    await send({ id: 'marker', device: 'dev-x', command: 'open', ttl: '1m' });
    await waitForStatuses(1);
    expect(gateway.store.commands.has('cloud:e-1')).toBe(true);
    await new Promise((r) => setTimeout(r, 400));
    const again = await restart();
    // Recovery sweeps the command outbox once: no device needs to come back for the status.
    await waitForStatuses(2);
    expect(statuses()[1]).toEqual({ id: 'e-1', status: 'expired', reason: 'ttl' });
    expect(again.store.commands.size).toBe(0);
    expect(again.store.commands.isAcknowledged('cloud:e-1')).toBe(true);
  });
});
