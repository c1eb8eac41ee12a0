import { fileURLToPath } from 'node:url';
import mqtt from 'mqtt';
import { afterEach, describe, expect, test } from 'vitest';
import { startGateway, type Gateway } from '../../src/app/index.js';
import { parseConfig } from '../../src/config/index.js';
import { tempDir } from '../helpers/temp.js';

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
    const now = Date.UTC(2025, 5, 1, 8, 0);
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
      { clock: { now: () => now } },
    );
    cleanups.push(() => gw.stop());
    await gw.recovered;
    expect(await metric(gw, 'vigil_arbiter_evicted_total')).toBe(0);

    // Each device's offer is sent: a cooldown and a contact count each, 12 entries for a memory of 4.
    for (let i = 0; i < 6; i++) {
      const device = `d${String(i)}`;
      const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${gw.mqtt.port}`, {
        clientId: device,
        reconnectPeriod: 0,
      });
      await client.publishAsync(`devices/${device}/events/browse`, JSON.stringify({ page: 'plans' }), {
        qos: 1,
      });
      await client.endAsync();
    }
    const deadline = Date.now() + 5_000;
    while ((await metric(gw, 'vigil_actions_decided_total{scenario="upgrade-offer"}')) < 6) {
      if (Date.now() > deadline) throw new Error('the offers were not decided');
      await new Promise((r) => setTimeout(r, 10));
    }
    expect(await metric(gw, 'vigil_arbiter_entries')).toBeLessThanOrEqual(4);
    expect(await metric(gw, 'vigil_arbiter_evicted_total')).toBe(
      12 - (await metric(gw, 'vigil_arbiter_entries')),
    );
  });
});
