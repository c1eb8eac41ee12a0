import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterEach, describe, expect, test } from 'vitest';
import { parseConfig } from '../../src/config/index.js';
import { startGateway } from '../../src/app/index.js';
import { startCloud, waitUntil, writeRules, READING_RULES } from '../e2e/crash-harness.js';
import { tempDir } from '../helpers/temp.js';
import { captureLogs, faultyStorage } from './durability-faults.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const RULES = READING_RULES;

interface Health {
  status: string;
  durability: { state: string; held: number; fault?: { error: string } };
}

describe('a disk that refuses writes', () => {
  test('stops QoS 1 acknowledgements and says so loudly; once it takes writes again, the held publishes are acknowledged and processed once', async () => {
    const dir = await tempDir();
    cleanups.push(() => dir.remove());
    const rules = await writeRules(join(dir.path, 'rules'), RULES);
    const cloud = await startCloud();
    cleanups.push(() => cloud.stop());
    const storage = faultyStorage();
    const { logger, lines } = captureLogs();
    const gateway = await startGateway(
      parseConfig({
        gatewayId: 'gw1',
        data: join(dir.path, 'data'),
        rules,
        mqtt: { host: '127.0.0.1', port: 0, allowAnonymous: true },
        http: { port: 0 },
        upstream: { url: cloud.url, reconnect: '200ms' },
      }),
      { logger, journalStorage: storage },
    );
    cleanups.push(() => gateway.stop());
    await gateway.recovered;
    const health = async (): Promise<Health> =>
      (await (await fetch(`http://127.0.0.1:${gateway.http.port}/healthz`)).json()) as Health;
    const metric = async (name: string): Promise<number> => {
      const text = await (await fetch(`http://127.0.0.1:${gateway.http.port}/metrics`)).text();
      return Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1]);
    };
    const readings = (n: number) => cloud.actions.filter((r) => r.action.payload.n === n).length;

    const device = await mqtt.connectAsync(`mqtt://127.0.0.1:${gateway.mqtt.port}`, {
      clientId: 'dev-1',
      reconnectPeriod: 0,
    });
    cleanups.push(() => device.endAsync(true));
    const publish = (n: number) =>
      device.publishAsync('devices/dev-1/events/telemetry', JSON.stringify({ n }), { qos: 1 });
    await publish(1);
    await waitUntil(() => readings(1) === 1, 5_000, 'the action of reading 1');
    expect((await health()).status).toBe('ok');

    storage.fail('ENOSPC');
    let acked = false;
    const held = publish(2).then(() => {
      acked = true;
    });
    await new Promise((r) => setTimeout(r, 800));
    expect(acked).toBe(false);
    expect(readings(2)).toBe(0);
    const during = await health();
    expect(during.status).toBe('degraded');
    expect(during.durability.state).toBe('storage-fault');
    expect(during.durability.fault?.error).toMatch(/ENOSPC/);
    expect(during.durability.held).toBeGreaterThanOrEqual(1);
    expect(await metric('vigil_storage_fault')).toBe(1);
    expect(await metric('vigil_journal_write_errors_total')).toBeGreaterThan(0);
    expect(lines.some((l) => l.level === 50 && String(l.msg).startsWith('STORAGE FAULT'))).toBe(true);
    // The device keeps its connection: the publish is held, not refused.
    expect(device.connected).toBe(true);

    storage.heal();
    await held;
    await waitUntil(() => readings(2) === 1, 5_000, 'the action of reading 2');
    expect((await health()).status).toBe('ok');
    expect(await metric('vigil_storage_fault')).toBe(0);
    expect(lines.some((l) => String(l.msg).startsWith('storage writable again'))).toBe(true);

    await publish(3);
    await waitUntil(() => readings(3) === 1, 5_000, 'the action of reading 3');
    await new Promise((r) => setTimeout(r, 200));
    expect([readings(1), readings(2), readings(3)]).toEqual([1, 1, 1]);
  });
});
