import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterEach, describe, expect, test } from 'vitest';
import { startGateway, type Gateway } from '../../src/app/index.js';
import { parseConfig } from '../../src/config/index.js';
import type { Action } from '../../src/shared/index.js';
import { until } from '../helpers/mqtt.js';
import { tempDir } from '../helpers/temp.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const BOOT = Date.UTC(1976, 11, 5);
const FIFTY_YEARS = Date.UTC(2026, 11, 5) - BOOT;

function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

/**
 * The gateway's own watch of the wall clock (every second once live), with gateway time held still on a virtual
 * clock: a gateway booted in 1976 decides with `clockSynced: false`; once NTP steps the clock 50 years on, the step is
 * counted and actions carry the new wall time.
 */
describe('the gateway watches its wall clock', () => {
  test('unsynchronised at boot, then a step: metrics and the stamps on actions follow it', async () => {
    const dir = await tempDir();
    cleanups.push(() => dir.remove());
    const rules = join(dir.path, 'rules');
    await mkdir(rules);
    await writeFile(
      join(rules, 'alarm.yaml'),
      'id: alarm\nwhen: { event: alarm }\nthen: { action: alarm, to: [upstream] }\n',
    );
    const now = BOOT;
    let skew = 0;
    const actions: Action[] = [];
    const gw: Gateway = await startGateway(
      parseConfig({
        gatewayId: 'gw1',
        data: join(dir.path, 'data'),
        rules,
        mqtt: { host: '127.0.0.1', port: 0, allowAnonymous: true },
        http: { port: 0 },
        log: { level: 'silent' },
      }),
      { clock: { now: () => now }, wallNow: () => now + skew, onAction: (a) => void actions.push(a) },
    );
    cleanups.push(() => gw.stop());
    const metrics = async () => (await fetch(`http://127.0.0.1:${gw.http.port}/metrics`)).text();
    const alarm = async (device: string) => {
      const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${gw.mqtt.port}`, {
        clientId: device,
        reconnectPeriod: 0,
      });
      await client.publishAsync(`devices/${device}/events/alarm`, '{}', { qos: 1 });
      await client.endAsync();
      await until(`the action of ${device}`, () => actions.some((a) => a.actor === device), 5_000);
      return actions.find((a) => a.actor === device) as Action;
    };

    const metricReaches = async (series: string, value: number): Promise<string> => {
      const deadline = Date.now() + 5_000;
      for (;;) {
        const text = await metrics();
        if (sample(text, series) === value) return text;
        if (Date.now() > deadline) throw new Error(`${series} never reached ${value}:\n${text}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    };

    // Recorded before anything a device sends, even while the state is recovered.
    const before = await alarm('d1');
    expect(before).toMatchObject({ decidedAt: BOOT, eventAt: BOOT, clockSynced: false });
    await gw.recovered;
    await metricReaches('vigil_clock_synced', 0);

    skew = FIFTY_YEARS;
    const text = await metricReaches('vigil_clock_steps_total', 1);
    expect(sample(text, 'vigil_clock_synced')).toBe(1);
    expect(sample(text, 'vigil_clock_offset_seconds')).toBe(FIFTY_YEARS / 1_000);
    const after = await alarm('d2');
    expect(after).toMatchObject({ decidedAt: BOOT + FIFTY_YEARS, eventAt: BOOT + FIFTY_YEARS });
    expect(after).not.toHaveProperty('clockSynced');
  });
});
