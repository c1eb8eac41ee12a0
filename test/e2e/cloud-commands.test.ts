import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterEach, describe, expect, test } from 'vitest';
import { startGatewayProcess, type GatewayProcess } from '../helpers/gateway-process.js';
import { hasMosquitto, MOSQUITTO_MISSING, startMosquitto } from '../helpers/mosquitto.js';
import { Collector, connectWithConnack, until as untilFor } from '../helpers/mqtt.js';
import { tempDir } from '../helpers/temp.js';

const until = (what: string, predicate: () => boolean) => untilFor(what, predicate, 10_000);

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

if (!hasMosquitto()) console.warn(MOSQUITTO_MISSING);

interface Status {
  id: string | null;
  status: string;
  reason: string | null;
  at: number;
}

/** Connects dev-1, with a persistent session, to the gateway's broker; `received` gets every message. */
function device(gateway: GatewayProcess, received: string[] = []) {
  const opts = { clientId: 'dev-1', clean: false };
  return connectWithConnack(gateway.mqttPort, opts, received, (c) => cleanups.push(c));
}

/** mosquitto as the cloud, a console publishing commands on it, and the `vigil run` arguments of a gateway. */
async function cloudScene() {
  const cloud = await startMosquitto({ persistent: true });
  cleanups.push(() => cloud.stop());
  const dir = await tempDir();
  cleanups.push(() => dir.remove());
  const args = [
    '--allow-anonymous',
    ...['--mqtt-port', '0', '--http-port', '0', '--gateway-id', 'gw1'],
    ...['--data', join(dir.path, 'data'), '--upstream', cloud.url],
  ];
  const seen = await Collector.connect(cloud.url, ['vigil/gw1/status', 'vigil/gw1/commands/status']);
  cleanups.push(() => seen.close());
  const console1 = await mqtt.connectAsync(cloud.url, { clientId: 'console', reconnectPeriod: 0 });
  cleanups.push(() => console1.endAsync());
  return {
    args,
    seen,
    onlines: () => seen.messages.filter((m) => m.payload.toString() === 'online').length,
    statuses: () => seen.json<Status>('vigil/gw1/commands/status'),
    send: (body: unknown) =>
      console1.publishAsync('vigil/gw1/commands', typeof body === 'string' ? body : JSON.stringify(body), {
        qos: 1,
      }),
  };
}

async function metrics(gateway: GatewayProcess): Promise<string> {
  return (await fetch(`http://127.0.0.1:${gateway.httpPort}/metrics`)).text();
}

describe.skipIf(!hasMosquitto())(
  'commands from the cloud (mosquitto as the cloud, the built gateway)',
  () => {
    test('a command reaches a device offline across a restart, an expired one never does, and the cloud hears both', async () => {
      const { args, seen, onlines, statuses, send } = await cloudScene();

      let gateway = await startGatewayProcess(args);
      cleanups.push(() => gateway.stop());
      await seen.waitFor(() => onlines() >= 1, 10_000, 'the gateway online');

      // The device subscribes with a persistent session, is seen (its QoS 1 event is acknowledged once
      // recorded and applied), then goes away.
      const first = await device(gateway);
      await first.client.subscribeAsync('devices/dev-1/commands/#', { qos: 1 });
      await first.client.publishAsync('devices/dev-1/events/heartbeat', '{}', { qos: 1 });
      await first.client.endAsync();

      await send({ id: 'c-1', device: 'dev-1', command: 'reboot', data: { delayS: 5 }, ttl: '10m' });
      await send({ id: 'c-2', device: 'dev-1', command: 'blink', data: {}, ttl: '1s' });
      const sentAt = Date.now();
      await send({ id: 'c-3', device: 'dev-9', command: 'reboot', ttl: '10m' });
      await send('{"id": "c-4", "device": ');
      await send({ id: 'c-5', device: 'dev-1', ttl: '10m' });
      // The gateway takes cloud messages in order: once the last is refused, c-1 and c-2 are stored.
      await until('three refusals', () => statuses().length >= 3);
      expect(statuses().map(({ id, status, reason }) => ({ id, status, reason }))).toEqual([
        { id: 'c-3', status: 'refused', reason: 'unknown device dev-9' },
        { id: null, status: 'refused', reason: 'the command is not JSON' },
        { id: 'c-5', status: 'refused', reason: '"command" is missing' },
      ]);

      expect(await gateway.stop()).toBe(0);
      gateway = await startGatewayProcess(args);
      await seen.waitFor(() => onlines() >= 2, 10_000, 'the gateway online again');
      // c-2's ttl passes while the device is away.
      await new Promise((r) => setTimeout(r, Math.max(0, sentAt + 1_500 - Date.now())));

      const received: string[] = [];
      const back = await device(gateway, received);
      expect(back.connack.sessionPresent).toBe(true);
      await until('the delivered and expired statuses', () => statuses().length >= 5);
      expect(received).toEqual(['devices/dev-1/commands/reboot {"delayS":5}']);
      const outcomes = statuses().slice(3);
      expect(
        outcomes
          .map(({ id, status }) => ({ id, status }))
          .sort((a, b) => (a.id ?? '').localeCompare(b.id ?? '')),
      ).toEqual([
        { id: 'c-1', status: 'delivered' },
        { id: 'c-2', status: 'expired' },
      ]);
      for (const s of outcomes) expect(s.at).toBeGreaterThanOrEqual(sentAt);

      // Idempotent by id: c-1 again is not delivered again; c-6, sent after it, is.
      await send({ id: 'c-1', device: 'dev-1', command: 'reboot', data: { delayS: 5 }, ttl: '10m' });
      await send({ id: 'c-6', device: 'dev-1', command: 'ping', data: [1, 2], ttl: '10m' });
      await until('c-6 delivered', () => statuses().some((s) => s.id === 'c-6'));
      expect(received).toEqual([
        'devices/dev-1/commands/reboot {"delayS":5}',
        'devices/dev-1/commands/ping [1,2]',
      ]);
      expect(statuses().filter((s) => s.id === 'c-1')).toHaveLength(1);

      expect(await metrics(gateway)).toMatch(/^vigil_cloud_commands_duplicate_total 1$/m);
    });

    test('a command acknowledged to the cloud survives a kill -9 and is delivered once', async () => {
      const { args, seen, onlines, statuses, send } = await cloudScene();
      let gateway = await startGatewayProcess(args);
      cleanups.push(() => gateway.stop());
      await seen.waitFor(() => onlines() >= 1, 10_000, 'the gateway online');
      const first = await device(gateway);
      await first.client.subscribeAsync('devices/dev-1/commands/#', { qos: 1 });
      await first.client.publishAsync('devices/dev-1/events/heartbeat', '{}', { qos: 1 });
      await first.client.endAsync();

      await send({ id: 'k-1', device: 'dev-1', command: 'reboot', data: { n: 1 }, ttl: '10m' });
      // Queued is counted once the command is synced to the command outbox; the cloud's PUBACK may follow or not.
      const deadline = Date.now() + 10_000;
      while (!/^vigil_device_commands_queued_total 1$/m.test(await metrics(gateway))) {
        if (Date.now() > deadline) throw new Error('k-1 was never queued');
        await new Promise((r) => setTimeout(r, 20));
      }
      await gateway.kill();
      gateway = await startGatewayProcess(args);
      await seen.waitFor(() => onlines() >= 2, 10_000, 'the gateway online again');

      const received: string[] = [];
      await device(gateway, received);
      await until('k-1 delivered', () => statuses().some((s) => s.id === 'k-1'));
      // mosquitto may deliver k-1 again (its PUBACK may not have left before the kill): still one delivery.
      await send({ id: 'k-2', device: 'dev-1', command: 'ping', ttl: '10m' });
      await until('k-2 delivered', () => statuses().some((s) => s.id === 'k-2'));
      expect(received).toEqual(['devices/dev-1/commands/reboot {"n":1}', 'devices/dev-1/commands/ping {}']);
      expect(statuses().map(({ id, status }) => ({ id, status }))).toEqual([
        { id: 'k-1', status: 'delivered' },
        { id: 'k-2', status: 'delivered' },
      ]);
    });
  },
);
