import { join } from 'node:path';
import type mqtt from 'mqtt';
import { afterEach, describe, expect, test } from 'vitest';
import { startGatewayProcess, type GatewayProcess } from '../helpers/gateway-process.js';
import { connectWithConnack, until } from '../helpers/mqtt.js';
import { tempDir } from '../helpers/temp.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** Connects to the gateway's broker and resolves with the CONNACK. */
function connect(gateway: GatewayProcess, opts: mqtt.IClientOptions, received: string[] = []) {
  return connectWithConnack(gateway.mqttPort, opts, received, (c) => cleanups.push(c));
}

// With two threads the broker runs on the edge thread, the sessions in the main thread's store.
describe.each([1, 2])(
  'the built gateway keeps MQTT sessions and retained messages across a restart, threads: %i',
  (threads) => {
    test('a device offline during a SIGTERM and restart finds its session, its subscription and its QoS 1 messages', async () => {
      const dir = await tempDir();
      cleanups.push(() => dir.remove());
      const args = [
        '--allow-anonymous',
        '--mqtt-port',
        '0',
        '--http-port',
        '0',
        '--data',
        join(dir.path, 'data'),
        '--threads',
        String(threads),
      ];
      let gateway = await startGatewayProcess(args);
      cleanups.push(() => gateway.stop());

      const persistent = { clientId: 'dev-1', clean: false } as const;
      const first = await connect(gateway, persistent);
      expect(first.connack.sessionPresent).toBe(false);
      await first.client.subscribeAsync('devices/dev-1/commands/#', { qos: 1 });
      await first.client.endAsync();

      // While the device is away: two QoS 1 commands for it, and a retained status of another device.
      const console1 = await connect(gateway, { clientId: 'console' });
      await console1.client.publishAsync('devices/dev-1/commands/reboot', 'one', { qos: 1 });
      await console1.client.publishAsync('devices/dev-1/commands/reboot', 'two', { qos: 1 });
      await console1.client.publishAsync('devices/dev-2/status', 'online', { qos: 1, retain: true });
      await console1.client.endAsync();

      expect(await gateway.stop()).toBe(0);
      gateway = await startGatewayProcess(args);

      const received: string[] = [];
      const back = await connect(gateway, persistent, received);
      expect(back.connack.sessionPresent).toBe(true);
      await until('the two queued commands', () => received.length >= 2);
      expect(received).toEqual(['devices/dev-1/commands/reboot one', 'devices/dev-1/commands/reboot two']);

      // Its subscription came back with the session: a new command reaches it without a SUBSCRIBE.
      const console2 = await connect(gateway, { clientId: 'console' });
      await console2.client.publishAsync('devices/dev-1/commands/reboot', 'three', { qos: 1 });
      await until('the new command', () => received.length >= 3);
      expect(received[2]).toBe('devices/dev-1/commands/reboot three');

      // The retained message came back too.
      const statuses: string[] = [];
      const watcher = await connect(gateway, { clientId: 'watcher' }, statuses);
      await watcher.client.subscribeAsync('devices/+/status', { qos: 1 });
      await until('the retained status', () => statuses.length >= 1);
      expect(statuses).toEqual(['devices/dev-2/status online']);
    });
  },
);
