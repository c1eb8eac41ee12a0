import { execFileSync } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, test } from 'vitest';
import { startGatewayProcess } from '../helpers/gateway-process.js';
import { runCli } from '../helpers/cli.js';
import { connectWithConnack, until } from '../helpers/mqtt.js';
import { tempDir } from '../helpers/temp.js';
import { DATA_FORMATS } from '../../src/shared/index.js';
import { openStore, STORE_FORMAT_KEY } from '../../src/store/index.js';
import { connectDevice, gatewayArgs, startCloud, waitUntil, type Cloud } from './crash-harness.js';

const FIXTURES = fileURLToPath(new URL('../fixtures/upgrade/', import.meta.url));

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface About {
  tag: string;
  profiles: Array<{ id: string }>;
  stoppedAt: number;
}

/** The data directory the previous release wrote (scripts/make-upgrade-fixture.ts), unpacked in a temp dir. */
async function previousRelease(tag: string): Promise<{ data: string; rules: string; about: About }> {
  const dir = await tempDir();
  cleanups.push(() => dir.remove());
  execFileSync('tar', ['-xzf', join(FIXTURES, `${tag}-data.tar.gz`), '-C', dir.path]);
  const about = JSON.parse(await readFile(join(FIXTURES, `${tag}-data.json`), 'utf8')) as About;
  return { data: join(dir.path, 'data'), rules: join(dir.path, 'rules'), about };
}

function sent(cloud: Cloud, scenario: string): string[] {
  return cloud.actions
    .filter((r) => r.action.scenario === scenario)
    .map((r) => r.action.actor)
    .sort();
}

/** The format of every journal record on disk (the u16 after the sequence number of each frame; 0 before versions). */
async function journalFormats(data: string): Promise<Set<number>> {
  const formats = new Set<number>();
  const dir = join(data, 'journal');
  for (const name of (await readdir(dir)).filter((n) => n.endsWith('.wal'))) {
    const buf = await readFile(join(dir, name));
    for (let at = 0; at + 16 <= buf.length; at += 16 + buf.readUInt32LE(at))
      formats.add(buf.readUInt16LE(at + 14));
  }
  return formats;
}

describe('a data directory written by the previous release', () => {
  test('upgrades without losing anything: outboxes delivered, profiles kept, silence timers fire, the durable session is there', async () => {
    const { data, rules, about } = await previousRelease('v0.1.0');
    const cloud = await startCloud();
    cleanups.push(() => cloud.stop());
    const args = (port: number) => gatewayArgs({ port, data, rules, upstream: cloud.url });
    let gateway = await startGatewayProcess(args(0));
    cleanups.push(() => gateway.stop());

    // What the outbox held, and the silences that had not ended when the old gateway stopped (late now).
    await waitUntil(() => sent(cloud, 'device-offline').length >= 3, 15_000, 'the three offline actions');
    expect(sent(cloud, 'overheat')).toEqual(['dev-cmd', 'dev-hot']);
    expect(sent(cloud, 'device-offline')).toEqual(['dev-cmd', 'dev-hot', 'dev-quiet']);
    for (const r of cloud.actions.filter((a) => a.action.scenario === 'device-offline')) {
      expect(r.action).toMatchObject({ late: true });
      expect(r.action.eventAt).toBeLessThan(about.stoppedAt + 4_000);
    }

    // The durable session kept the subscription, and the command queued for the device is delivered.
    const received: string[] = [];
    const back = await connectWithConnack(
      gateway.mqttPort,
      { clientId: 'dev-cmd', clean: false },
      received,
      (c) => cleanups.push(c),
    );
    expect(back.connack.sessionPresent).toBe(true);
    await until('the queued command', () => received.length > 0, 10_000);
    expect(received[0]).toMatch(/^devices\/dev-cmd\/commands\/inspect-device \{.*"temp":61/);
    await back.client.endAsync();

    // Rollback within the same format: what the upgraded gateway writes, a gateway of that format reads whole.
    await cloud.stop();
    const quiet = await connectDevice(gateway.mqttPort, 'dev-new');
    await quiet.publishAsync('devices/dev-new/events/telemetry', '{"temp":99}', { qos: 1 });
    await quiet.endAsync();
    expect(await gateway.stop()).toBe(0);
    for (const p of about.profiles) {
      const got = await runCli(['profiles', 'get', p.id, '--data', data]);
      expect(JSON.parse(got.stdout)).toMatchObject(p);
    }
    expect([...(await journalFormats(data))].every((f) => f <= 1)).toBe(true);

    const cloud2 = await startCloud(cloud.port);
    cleanups.push(() => cloud2.stop());
    gateway = await startGatewayProcess(args(0));
    await waitUntil(() => sent(cloud2, 'device-offline').includes('dev-new'), 15_000, 'dev-new offline');
    expect(cloud2.actions.map((r) => r.action.actor)).not.toContain('dev-quiet');
  });

  test('a binary that meets a newer format refuses to start, saying which release wrote it and what to do', async () => {
    const { data, rules } = await previousRelease('v0.1.0');
    const store = await openStore(data);
    await store.sublevels.state.put(STORE_FORMAT_KEY, { format: DATA_FORMATS.store + 1, writtenBy: '9.4.0' });
    await store.close();
    const run = await runCli([
      'run',
      '--allow-anonymous',
      '--data',
      data,
      '--rules',
      rules,
      '--mqtt-port',
      '0',
    ]);
    expect(run.code).not.toBe(0);
    expect(run.out).toMatch(/^vigil: the database \(profiles, outboxes, sessions, bundles\) in /m);
    expect(run.out).toMatch(/in format 2, written by Vigil 9\.4\.0; this Vigil reads store formats up to 1/);
    expect(run.out).toMatch(
      /^hint: run Vigil 9\.4\.0 or a newer one .* restore the copy of it taken before the upgrade/m,
    );
  });
});
