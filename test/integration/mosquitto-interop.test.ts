import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { encode as encodeCbor } from 'cbor-x';
import { afterEach, describe, expect, test } from 'vitest';
import type { Action } from '../../src/shared/index.js';
import { runCli } from '../helpers/cli.js';
import { startGatewayProcess } from '../helpers/gateway-process.js';
import { hasMosquitto, MOSQUITTO_MISSING, mosquittoPub, startMosquitto } from '../helpers/mosquitto.js';
import { Collector } from '../helpers/mqtt.js';
import { tempDir } from '../helpers/temp.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

if (!hasMosquitto()) console.warn(MOSQUITTO_MISSING);

describe.skipIf(!hasMosquitto())(
  'interoperability: mosquitto as the cloud, mosquitto_pub as the device',
  () => {
    test('overheat from mosquitto_pub reaches mosquitto as an action, JSON and CBOR; a malformed payload is dead-lettered', async () => {
      const dir = await tempDir();
      cleanups.push(() => dir.remove());
      const cloud = await startMosquitto();
      cleanups.push(() => cloud.stop());
      const atCloud = await Collector.connect(cloud.url, ['vigil/gw1/actions']);
      cleanups.push(() => atCloud.close());

      const data = join(dir.path, 'data');
      // Anonymous clients allowed so that the test can watch the dead letters and commands (a device may
      // only see its own commands); the devices themselves authenticate, with secrets from `vigil devices add`.
      const gateway = await startGatewayProcess([
        '--allow-anonymous',
        '--mqtt-port',
        '0',
        '--http-port',
        '0',
        '--data',
        data,
        '--upstream',
        cloud.url,
        '--gateway-id',
        'gw1',
      ]);
      cleanups.push(() => gateway.stop());

      // The gateway holds the LevelDB lock: the import goes through its HTTP API.
      const profiles = join(dir.path, 'profiles.ndjson');
      // Three devices: the shipped policy's 10-minute cooldown holds back a repeat for one device.
      await writeFile(
        profiles,
        ['dev-1', 'dev-2', 'dev-3']
          .map((id) => JSON.stringify({ id, maxTemp: 50, site: 'north' }))
          .join('\n') + '\n',
      );
      const imported = await runCli(['profiles', 'import', profiles, '--data', data]);
      expect(imported.out).toMatch(/importing through http/);
      expect(imported.out).toMatch(/imported 3 profiles/);
      expect(imported.code).toBe(0);

      const secrets = new Map<string, string>();
      for (const id of ['dev-1', 'dev-2', 'dev-3']) {
        const added = await runCli(['devices', 'add', id, '--data', data]);
        expect(added.code).toBe(0);
        secrets.set(id, added.out.trimEnd().split('\n').at(-1) ?? '');
      }
      const as = (id: string) => ['-i', id, '-u', id, '-P', secrets.get(id) ?? ''];

      const gwUrl = `mqtt://127.0.0.1:${gateway.mqttPort}`;
      const atGateway = await Collector.connect(gwUrl, ['devices/dev-1/commands/#', 'vigil/deadletter']);
      cleanups.push(() => atGateway.close());

      const port = String(gateway.mqttPort);
      const sentAt = Date.now();
      expect(
        await mosquittoPub([
          '-p',
          port,
          ...as('dev-1'),
          '-t',
          'devices/dev-1/events/telemetry',
          '-m',
          '{"temp":61,"bat":3.9}',
        ]),
      ).toBe(0);
      await atCloud.waitFor((m) => m.length === 1, 1_000, 'the action at mosquitto within a second');
      expect(Date.now() - sentAt).toBeLessThan(5_000);
      await atGateway.waitFor(
        (m) => m.some((x) => x.topic === 'devices/dev-1/commands/inspect-device'),
        1_000,
      );

      const cborFile = join(dir.path, 'event.cbor');
      await writeFile(cborFile, encodeCbor({ temp: 61, bat: 3.9 }));
      expect(
        await mosquittoPub([
          ...['-p', port, ...as('dev-2'), '-q', '1'],
          ...['-t', 'devices/dev-2/events/telemetry', '-f', cborFile],
        ]),
      ).toBe(0);
      await atCloud.waitFor((m) => m.length === 2, 2_000, 'the CBOR action');

      const [json, cbor] = atCloud.json<Action>();
      expect(json).toMatchObject({
        gateway: 'gw1',
        scenario: 'overheat',
        actor: 'dev-1',
        payload: { temp: 61, site: 'north' },
      });
      expect(cbor).toMatchObject({
        gateway: 'gw1',
        scenario: 'overheat',
        actor: 'dev-2',
        payload: { temp: 61, site: 'north' },
      });

      expect(
        await mosquittoPub([
          ...['-p', port, ...as('dev-3'), '-q', '1'],
          ...['-t', 'devices/dev-3/events/telemetry', '-m', 'temp=61'],
        ]),
      ).toBe(0);
      await atGateway.waitFor((m) => m.some((x) => x.topic === 'vigil/deadletter'), 2_000, 'the dead letter');
      const dead = atGateway.json<{ reason: string }>('vigil/deadletter');
      expect(dead[0]).toMatchObject({ reason: 'json', deviceId: 'dev-3' });

      expect(
        await mosquittoPub([
          ...['-p', port, ...as('dev-3')],
          ...['-t', 'devices/dev-3/events/telemetry', '-m', '{"temp":62}'],
        ]),
      ).toBe(0);
      await atCloud.waitFor((m) => m.length === 3, 2_000, 'the action after the malformed payload');
      expect(atCloud.json<Action>()[2]).toMatchObject({
        actor: 'dev-3',
        payload: { temp: 62, site: 'north' },
      });
    });
  },
);
