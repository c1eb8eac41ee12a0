import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { runSim, type SimSummary } from '../../firmware-sim/index.js';
import { parseConfig } from '../../src/config/index.js';
import { startGateway } from '../../src/app/index.js';
import type { Action } from '../../src/shared/index.js';
import { startCloud, waitUntil, writeRules, type Cloud, type Received } from '../e2e/crash-harness.js';
import { tempDir } from '../helpers/temp.js';
import { captureLogs } from './durability-faults.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** How long the cloud is down: 60 s as the issue says; shorter runs set VIGIL_OUTAGE_MS. */
const OUTAGE_MS = Number(process.env.VIGIL_OUTAGE_MS ?? 60_000);
const BEFORE_MS = 2_000;
const AFTER_MS = 3_000;

/** Three scenarios of different priorities, each fired by a share of the simulator's readings. */
const RULES = {
  'hot.yaml': `id: hot
priority: 70
category: maintenance
when:
  event: telemetry
  where: data.temp > 45.0
then:
  action: inspect-device
  to: [upstream]
  payload:
    temp: data.temp
`,
  'battery.yaml': `id: battery
priority: 40
category: maintenance
when:
  event: telemetry
  where: data.bat < 3.3
then:
  action: replace-battery
  to: [upstream]
`,
  'humid.yaml': `id: humid
priority: 20
category: maintenance
when:
  event: telemetry
  where: data.hum > 85.0
then:
  action: check-enclosure
  to: [upstream]
`,
};

describe('the cloud down for a while under load', () => {
  test(
    `${OUTAGE_MS / 1000} s outage: every action decided meanwhile is delivered afterwards, highest priority first`,
    async () => {
      const dir = await tempDir();
      cleanups.push(() => dir.remove());
      const rules = await writeRules(join(dir.path, 'rules'), RULES);
      const clouds: Cloud[] = [await startCloud()];
      cleanups.push(() => Promise.all(clouds.map((c) => c.stop())));
      const port = (clouds[0] as Cloud).port;
      const decided: Action[] = [];
      const gateway = await startGateway(
        parseConfig({
          gatewayId: 'gw1',
          data: join(dir.path, 'data'),
          rules,
          mqtt: { host: '127.0.0.1', port: 0, allowAnonymous: true },
          http: { port: 0 },
          upstream: { url: `mqtt://127.0.0.1:${port}`, reconnect: '200ms' },
        }),
        {
          logger: captureLogs('warn').logger,
          onAction: (action, suppressed) => {
            if (suppressed === undefined) decided.push(action);
          },
        },
      );
      cleanups.push(() => gateway.stop());
      await gateway.recovered;
      const metric = async (name: string): Promise<number> => {
        const text = await (await fetch(`http://127.0.0.1:${gateway.http.port}/metrics`)).text();
        return Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? 0);
      };

      const sim: Promise<SimSummary> = runSim({
        url: `mqtt://127.0.0.1:${gateway.mqtt.port}`,
        devices: 40,
        rate: 150,
        durationMs: BEFORE_MS + OUTAGE_MS + AFTER_MS,
        qos: 1,
        hotShare: 0.1,
        lowBatteryShare: 0.1,
        humidShare: 0.1,
        lingerMs: 0,
      });
      await new Promise((r) => setTimeout(r, BEFORE_MS));
      await (clouds[0] as Cloud).stop();
      await new Promise((r) => setTimeout(r, OUTAGE_MS / 2));
      expect(await metric('vigil_upstream_connected')).toBe(0);
      expect(await metric('vigil_outbox_depth')).toBeGreaterThan(0);
      await new Promise((r) => setTimeout(r, OUTAGE_MS / 2));

      // What waits in the outbox as the cloud comes back, in the order it must drain (most of it on disk only).
      const queued = gateway.store.outbox.waiting();
      clouds.push(await startCloud(port));
      const summary = await sim;
      expect(summary.acked).toBe(summary.published.telemetry);

      const received = (): Received[] => clouds.flatMap((c) => c.actions);
      await waitUntil(
        () => {
          const ids = new Set(received().map((r) => r.action.id));
          return decided.every((a) => ids.has(a.id));
        },
        30_000,
        'every decided action at the cloud',
      );
      expect(queued.length).toBeGreaterThan(100);
      const waiting = new Set(queued.map((a) => a.id));
      const order: number[] = [];
      const seen = new Set<string>();
      // The order they reached the cloud that came back in. One that reached the first cloud as it went down,
      // its PUBACK lost, was queued too and is sent again in its place: its first copy tells nothing of it.
      for (const r of (clouds[1] as Cloud).actions) {
        if (!waiting.has(r.action.id) || seen.has(r.action.id)) continue;
        seen.add(r.action.id);
        order.push(r.action.priority);
      }
      expect(order.length).toBe(queued.length);
      expect(order).toEqual([...order].sort((a, b) => b - a));
      expect(new Set(order)).toEqual(new Set([70, 40, 20]));

      expect(await metric('vigil_upstream_actions_sent_total')).toBeGreaterThanOrEqual(decided.length);
      expect(await metric('vigil_outbox_dropped_total')).toBe(0);
      await waitUntil(() => gateway.store.outbox.size === 0, 5_000, 'an empty outbox');
      expect(await metric('vigil_upstream_connected')).toBe(1);
    },
    OUTAGE_MS + 60_000,
  );
});
