import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterEach, describe, expect, test } from 'vitest';
import { parseConfig } from '../../src/config/index.js';
import { startGateway, type Gateway } from '../../src/app/index.js';
import { clockNotBefore, encodeRecord, graceMs, Journal } from '../../src/runtime/index.js';
import type { Action } from '../../src/shared/index.js';
import { waitUntil, writeRules } from '../e2e/crash-harness.js';
import { tempDir } from '../helpers/temp.js';
import { captureLogs } from './durability-faults.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const third = `id: third
description: Every third reading of a device.
priority: 60
category: maintenance
when:
  event: telemetry
  count: 3
then:
  action: third-reading
  to: [upstream]
  payload:
    n: data.n
`;
const silence = (id: string, period: string) => `id: ${id}
description: Nothing from the device for ${period}.
priority: 90
category: support
when:
  absent: any
  for: ${period}
then:
  action: ${id}
  to: [upstream]
  payload:
    lastSeen: last.at
`;
const hot = `id: hot
description: A hot reading.
priority: 70
category: maintenance
when:
  event: telemetry
  count: 2
  where: data.hot
then:
  action: hot
  to: [upstream]
`;

describe('rules changed across a restart', () => {
  test('unchanged scenarios keep their state, changed and removed ones lose it (and say so), new absent scenarios start from last-seen times', async () => {
    const dir = await tempDir();
    cleanups.push(() => dir.remove());
    const rules = join(dir.path, 'rules');
    await writeRules(rules, {
      'third.yaml': third,
      'hot.yaml': hot,
      'offline.yaml': silence('offline', '1h'),
    });
    const decided: Action[] = [];
    const start = async (): Promise<{ gateway: Gateway; lines: Array<Record<string, unknown>> }> => {
      const { logger, lines } = captureLogs();
      const gateway = await startGateway(
        parseConfig({
          gatewayId: 'gw1',
          data: join(dir.path, 'data'),
          rules,
          mqtt: { host: '127.0.0.1', port: 0, allowAnonymous: true },
          http: { port: 0 },
        }),
        { logger, onAction: (action, suppressed) => suppressed === undefined && decided.push(action) },
      );
      await gateway.recovered;
      return { gateway, lines };
    };
    const publish = async (gateway: Gateway, device: string, data: Record<string, unknown>[]) => {
      const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${gateway.mqtt.port}`, {
        clientId: device,
        reconnectPeriod: 0,
      });
      for (const d of data) {
        await client.publishAsync(`devices/${device}/events/telemetry`, JSON.stringify(d), { qos: 1 });
      }
      await client.endAsync();
    };

    const first = await start();
    await publish(first.gateway, 'dev-1', [{ n: 1, hot: true }, { n: 2 }]);
    await publish(first.gateway, 'dev-2', [{ n: 1 }]);
    // Longer than `quiet` will wait: by the restart, dev-2 has been silent past its deadline.
    await new Promise((r) => setTimeout(r, 1_500));
    await first.gateway.stop();

    // `third` as it was; `hot` gone; `offline` with another period; `quiet` new.
    await rm(join(rules, 'hot.yaml'));
    await writeRules(rules, {
      'offline.yaml': silence('offline', '2s'),
      'quiet.yaml': silence('quiet', '1s'),
    });
    const second = await start();
    cleanups.push(() => second.gateway.stop());
    const said = (text: string, scenario?: string) =>
      second.lines.some(
        (l) => String(l.msg).includes(text) && (scenario === undefined || l.scenario === scenario),
      );
    expect(said('scenario removed from the rules', 'hot')).toBe(true);
    expect(said('scenario changed since the checkpoint', 'offline')).toBe(true);
    expect(said('scenario changed', 'third')).toBe(false);
    expect(said('new absent scenarios armed from last-seen times')).toBe(true);

    // `third` kept dev-1's two readings: the next one is its third.
    await publish(second.gateway, 'dev-1', [{ n: 3 }]);
    await waitUntil(() => decided.some((a) => a.scenario === 'third'), 5_000, 'the third reading');
    expect(decided.filter((a) => a.scenario === 'third').map((a) => [a.actor, a.payload.n])).toEqual([
      ['dev-1', 3],
    ]);

    // dev-2 last spoke (its disconnection) before the restart: `quiet` and the changed `offline` arm from
    // then, and fire after the grace period, late, with the deadline counted from its last-seen time.
    await waitUntil(
      () => decided.some((a) => a.scenario === 'quiet' && a.actor === 'dev-2'),
      5_000,
      'quiet for dev-2',
    );
    const quiet = decided.find((a) => a.scenario === 'quiet' && a.actor === 'dev-2') as Action;
    expect(quiet.late).toBe(true);
    expect(quiet.eventAt).toBe((quiet.payload.lastSeen as number) + 1_000);
    await waitUntil(
      () => decided.some((a) => a.scenario === 'offline' && a.actor === 'dev-2'),
      5_000,
      'offline for dev-2',
    );
    const offline = decided.find((a) => a.scenario === 'offline' && a.actor === 'dev-2') as Action;
    expect(offline.eventAt).toBe((offline.payload.lastSeen as number) + 2_000);
    expect(decided.filter((a) => a.scenario === 'hot')).toEqual([]);
  });
});

describe('a gateway with a long journal to replay', () => {
  test('accepts and acknowledges devices while it recovers, and processes what they sent after the replay', async () => {
    const dir = await tempDir();
    cleanups.push(() => dir.remove());
    const rules = join(dir.path, 'rules');
    await writeRules(rules, { 'third.yaml': third });
    // 250,000 readings recorded by a gateway that died before any checkpoint: more than recovery keeps decoded from
    // its first read of the journal (125,000 records), so the replay reads the rest again.
    const records = 250_000;
    const journal = await Journal.open({
      dir: join(dir.path, 'data', 'journal'),
      logger: captureLogs().logger,
    });
    for (let i = 0; i < records; i++) {
      const event = {
        actor: `old-${i % 1000}`,
        type: 'telemetry',
        at: 1_000 + i,
        data: { n: i },
        source: 'device' as const,
      };
      journal.append(encodeRecord({ kind: 'event', event }), 'write');
    }
    await journal.recorded();
    await journal.close();

    const decided: Action[] = [];
    const gateway = await startGateway(
      parseConfig({
        gatewayId: 'gw1',
        data: join(dir.path, 'data'),
        rules,
        mqtt: { host: '127.0.0.1', port: 0, allowAnonymous: true },
        http: { port: 0 },
        log: { level: 'silent' },
      }),
      { onAction: (action) => decided.push(action) },
    );
    cleanups.push(() => gateway.stop());
    let recovered = false;
    void gateway.recovered.then(() => (recovered = true));
    const device = await mqtt.connectAsync(`mqtt://127.0.0.1:${gateway.mqtt.port}`, {
      clientId: 'dev-new',
      reconnectPeriod: 0,
    });
    cleanups.push(() => device.endAsync());
    for (const n of [1, 2, 3]) {
      await device.publishAsync('devices/dev-new/events/telemetry', JSON.stringify({ n }), { qos: 1 });
    }
    const health = (await (await fetch(`http://127.0.0.1:${gateway.http.port}/healthz`)).json()) as {
      durability: { state: string };
    };
    expect(recovered).toBe(false);
    expect(health.durability.state).toBe('recovering');

    const report = await gateway.recovered;
    expect(report.replayed).toBe(records);
    await waitUntil(() => decided.some((a) => a.actor === 'dev-new'), 5_000, 'the action of dev-new');
    expect(decided.filter((a) => a.actor === 'dev-new').map((a) => a.payload.n)).toEqual([3]);
  }, 60_000);
});

describe('time across a restart', () => {
  test('the grace period of an overdue timer is the scenario period, capped', () => {
    const sc = (forMs: number) =>
      ({
        horizonMs: forMs,
        when: { kind: 'silence', absent: 'x', any: true, forMs },
      }) as unknown as Parameters<typeof graceMs>[0];
    expect(graceMs(sc(3_000), 300_000)).toBe(3_000);
    expect(graceMs(sc(3_600_000), 300_000)).toBe(300_000);
  });

  test('a wall clock behind the last recorded time carries on from that time', () => {
    let wall = 1_000;
    const base = { now: () => wall };
    const clock = clockNotBefore(base, 60_000, captureLogs().logger);
    expect(clock.now()).toBe(60_000);
    wall += 500;
    expect(clock.now()).toBe(60_500);
    expect(clockNotBefore(base, 10, captureLogs().logger)).toBe(base);
  });
});
