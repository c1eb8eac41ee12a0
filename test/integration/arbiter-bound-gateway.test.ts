import { fileURLToPath } from 'node:url';
import mqtt from 'mqtt';
import { afterEach, describe, expect, test } from 'vitest';
import { startGateway, type Gateway } from '../../src/app/index.js';
import { parseConfig } from '../../src/config/index.js';
import { tempDir } from '../helpers/temp.js';
import { captureLogs } from './durability-faults.js';

/** A running gateway holds the arbiter's memory to `limits.arbiterEntries` and says in /metrics what it forgot. */
const RULES = fileURLToPath(new URL('../fixtures/rules/arbitration', import.meta.url));

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function metric(gw: Gateway, series: string): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${gw.http.port}/metrics`);
  const line = (await res.text()).split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? NaN : Number(line.slice(series.length + 1));
}

describe('the arbiter of a running gateway', () => {
  test('past limits.arbiterEntries it forgets the entries that end soonest, counted in /metrics', async () => {
    const dir = await tempDir();
    cleanups.push(() => dir.remove());
    let now = Date.UTC(2025, 5, 1, 8, 0);
    const logs = captureLogs('warn');
    const gw = await startGateway(
      parseConfig({
        gatewayId: 'gw1',
        data: dir.path,
        rules: RULES,
        mqtt: { host: '127.0.0.1', port: 0, allowAnonymous: true },
        http: { port: 0 },
        limits: { arbiterEntries: 4 },
        log: { level: 'silent' },
      }),
      { clock: { now: () => now }, logger: logs.logger },
    );
    cleanups.push(() => gw.stop());
    await gw.recovered;
    expect(await metric(gw, 'vigil_arbiter_evicted_total')).toBe(0);

    const browse = async (device: string): Promise<void> => {
      const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${gw.mqtt.port}`, {
        clientId: device,
        reconnectPeriod: 0,
      });
      await client.publishAsync(`devices/${device}/events/browse`, JSON.stringify({ page: 'plans' }), {
        qos: 1,
      });
      await client.endAsync();
    };
    const decided = async (offers: number): Promise<void> => {
      const deadline = Date.now() + 5_000;
      while ((await metric(gw, 'vigil_actions_decided_total{scenario="upgrade-offer"}')) < offers) {
        if (Date.now() > deadline) throw new Error('the offers were not decided');
        await new Promise((r) => setTimeout(r, 10));
      }
    };
    const full = () => logs.lines.filter((l) => String(l.msg).startsWith('arbiter memory full'));

    // Each device's offer is sent: a cooldown and a contact count each, 12 entries for a memory of 4.
    for (let i = 0; i < 6; i++) await browse(`d${String(i)}`);
    await decided(6);
    const entries = await metric(gw, 'vigil_arbiter_entries');
    expect(entries).toBeLessThanOrEqual(4);
    expect(await metric(gw, 'vigil_arbiter_evicted_total')).toBe(12 - entries);
    // Said once in the minute, however often it happened.
    expect(full()).toHaveLength(1);
    expect(full()[0]).toMatchObject({ level: 40, limit: 4 });

    // A minute later it is said again, with what went since.
    now += 60_000;
    for (let i = 6; i < 9; i++) await browse(`d${String(i)}`);
    await decided(9);
    expect(full()).toHaveLength(2);
    const evicted = await metric(gw, 'vigil_arbiter_evicted_total');
    expect(full().reduce((n, l) => n + Number(l.evicted), 0)).toBeLessThanOrEqual(evicted);
    expect(evicted).toBe(18 - (await metric(gw, 'vigil_arbiter_entries')));
  });
});
