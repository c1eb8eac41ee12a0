import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import mqtt from 'mqtt';
import { afterEach, describe, expect, test } from 'vitest';
import type { Action } from '../../src/shared/index.js';
import { startGatewayProcess } from '../helpers/gateway-process.js';
import { hasMosquitto, MOSQUITTO_MISSING, startMosquitto } from '../helpers/mosquitto.js';
import { tempDir } from '../helpers/temp.js';

const CLI = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));
const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

if (!hasMosquitto()) console.warn(MOSQUITTO_MISSING);

interface Health {
  outbox: number;
  durability: { state: string };
}

async function health(httpPort: number): Promise<Health> {
  const res = await fetch(`http://127.0.0.1:${httpPort}/healthz`);
  return (await res.json()) as Health;
}

describe.skipIf(!hasMosquitto())('the built gateway survives kill -9 with the cloud down', () => {
  test('actions queued during an outage, kill -9, restart, cloud back: every action arrives', async () => {
    const dir = await tempDir();
    cleanups.push(() => dir.remove());
    const data = join(dir.path, 'data');

    // The cloud consumer keeps a persistent session, so actions published while it is away wait for it.
    const cloud = await startMosquitto({ persistent: true });
    cleanups.push(() => cloud.stop());
    const consumerOpts = { clientId: 'cloud-consumer', clean: false, reconnectPeriod: 0 } as const;
    const first = await mqtt.connectAsync(cloud.url, consumerOpts);
    await first.subscribeAsync('vigil/gw1/actions', { qos: 1 });
    await first.endAsync();
    await cloud.halt(); // the cloud goes down; the consumer's session is saved on the way

    const profiles = join(dir.path, 'profiles.ndjson');
    const temps = [60, 61, 62, 63, 64, 65, 66, 67, 68, 69];
    // One device per event: the shipped policy caps contacts per device.
    await writeFile(
      profiles,
      temps.map((t) => JSON.stringify({ id: `dev-${t}`, maxTemp: 50, site: 'north' })).join('\n') + '\n',
    );
    const imported = await new Promise<number | null>((resolve) =>
      spawn(process.execPath, [CLI, 'profiles', 'import', profiles, '--data', data], {
        stdio: 'ignore',
      }).once('exit', resolve),
    );
    expect(imported).toBe(0);

    let gateway = await startGatewayProcess([
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
    const dev = await mqtt.connectAsync(`mqtt://127.0.0.1:${gateway.mqttPort}`, {
      clientId: 'feeder',
      reconnectPeriod: 0,
    });
    for (const temp of temps)
      await dev.publishAsync(`devices/dev-${temp}/events/telemetry`, JSON.stringify({ temp }), { qos: 1 });
    await dev.endAsync();
    const deadline = Date.now() + 10_000;
    while ((await health(gateway.httpPort)).outbox < temps.length) {
      if (Date.now() > deadline) throw new Error('actions did not reach the outbox');
      await new Promise((r) => setTimeout(r, 50));
    }
    await gateway.kill();

    gateway = await startGatewayProcess([
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
    // An action counts in the outbox from its decision; one not yet on disk at the kill is decided again by the
    // recovery, from the journaled event.
    const recovered = Date.now() + 10_000;
    while ((await health(gateway.httpPort)).durability.state !== 'ok') {
      if (Date.now() > recovered) throw new Error('the gateway did not recover');
      await new Promise((r) => setTimeout(r, 50));
    }
    expect((await health(gateway.httpPort)).outbox).toBe(temps.length);

    await cloud.resume(); // the cloud is back, with the consumer's session
    const received = new Map<string, Action>();
    const consumer = await mqtt.connectAsync(cloud.url, consumerOpts);
    cleanups.push(() => consumer.endAsync());
    consumer.on('message', (_t, payload) => {
      const action = JSON.parse(payload.toString()) as Action;
      received.set(action.id, action);
    });
    const until = Date.now() + 15_000;
    while (received.size < temps.length && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    expect([...received.values()].map((a) => a.payload.temp).sort()).toEqual(temps);
    expect(
      [...received.values()].every(
        (a) => a.scenario === 'overheat' && a.actor === `dev-${String(a.payload.temp)}`,
      ),
    ).toBe(true);
  });
});
