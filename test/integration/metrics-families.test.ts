import mqtt, { type MqttClient } from 'mqtt';
import { afterEach, describe, expect, test } from 'vitest';
import { parseConfig } from '../../src/config/index.js';
import { startGateway, type Gateway } from '../../src/app/index.js';
import { tempDir } from '../helpers/temp.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function gateway(): Promise<Gateway> {
  const dir = await tempDir();
  cleanups.push(() => dir.remove());
  const gw = await startGateway(
    parseConfig({
      gatewayId: 'gw1',
      data: dir.path,
      // Authentication is not what this test is about: devices connect anonymously.
      mqtt: { host: '127.0.0.1', port: 0, allowAnonymous: true },
      http: { port: 0 },
      log: { level: 'silent' },
    }),
  );
  cleanups.push(() => gw.stop());
  return gw;
}

async function device(gw: Gateway, id: string): Promise<MqttClient> {
  const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${gw.mqtt.port}`, {
    clientId: id,
    reconnectPeriod: 0,
  });
  cleanups.push(() => client.endAsync());
  return client;
}

async function scrape(gw: Gateway): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${gw.http.port}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
  return res.text();
}

/** The value of one sample, `name{labels}` exactly as exposed (labels in the order they were declared). */
function sample(text: string, series: string): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith(`${series} `)) return Number(line.slice(series.length + 1));
  }
  return undefined;
}

async function scrapeUntil(gw: Gateway, series: string, expected: number): Promise<string> {
  const deadline = Date.now() + 5_000;
  for (;;) {
    const text = await scrape(gw);
    if (sample(text, series) === expected) return text;
    if (Date.now() > deadline) throw new Error(`${series} never reached ${expected}; last:\n${text}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('GET /metrics', () => {
  test('every family of the issue is exposed, with the values the test drove', async () => {
    const gw = await gateway();
    await gw.store.profiles.put('dev-1', { id: 'dev-1', maxTemp: 50, site: 'north' });
    const dev = await device(gw, 'dev-1');
    await dev.publishAsync('devices/dev-1/events/telemetry', JSON.stringify({ temp: 61, bat: 3.9 }), {
      qos: 1,
    });
    await dev.publishAsync('devices/dev-1/events/telemetry', JSON.stringify({ temp: 62, bat: 3.9 }), {
      qos: 1,
    });
    await dev.publishAsync('devices/dev-1/events/telemetry', '{"temp": 6', { qos: 1 });

    await scrapeUntil(gw, 'vigil_actions_suppressed_total{scenario="overheat",reason="cooldown"}', 1);
    // The outbox gauges follow the write, which completes just after the decision.
    const text = await scrapeUntil(gw, 'vigil_outbox_depth', 1);

    // Ingest: events in by type and source, rejects by reason.
    expect(sample(text, 'vigil_events_in_total{type="telemetry",source="device"}')).toBe(2);
    expect(sample(text, 'vigil_events_in_total{type="connected",source="broker"}')).toBe(1);
    expect(sample(text, 'vigil_ingest_rejects_total{reason="json"}')).toBe(1);
    // Scenarios: evaluations and detections, read from the engine's own totals.
    expect(sample(text, 'vigil_scenario_evaluations_total{scenario="overheat"}')).toBe(2);
    expect(sample(text, 'vigil_scenario_detections_total{scenario="overheat"}')).toBe(2);
    expect(sample(text, 'vigil_scenario_detections_total{scenario="low-battery"}')).toBe(0);
    // humidity-high reads data.hum, which these readings lack: an evaluation error each.
    expect(sample(text, 'vigil_scenario_errors_total{scenario="humidity-high",stage="where"}')).toBe(2);
    // Arbitration.
    expect(sample(text, 'vigil_actions_decided_total{scenario="overheat"}')).toBe(1);
    expect(sample(text, 'vigil_event_to_action_seconds_count')).toBe(1);
    // No upstream configured: the action waits in the outbox.
    expect(sample(text, 'vigil_outbox_depth')).toBe(1);
    expect(sample(text, 'vigil_outbox_bytes')).toBeGreaterThan(100);
    expect(sample(text, 'vigil_upstream_connected')).toBe(0);
    // Devices and timers.
    expect(sample(text, 'vigil_devices_connected')).toBe(1);
    expect(sample(text, 'vigil_devices_online')).toBe(1);
    expect(sample(text, 'vigil_devices_offline')).toBe(0);
    expect(sample(text, 'vigil_pending_timers')).toBe(1); // device-offline's silence timer
    // Engine state: the groups held (device-offline's silence among them); housekeeping has not run yet.
    expect(sample(text, 'vigil_engine_groups')).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'vigil_engine_groups_pruned_total')).toBe(0);
    // The process.
    expect(sample(text, 'vigil_process_resident_memory_bytes')).toBeGreaterThan(1024 * 1024);
    expect(sample(text, 'vigil_nodejs_eventloop_lag_seconds')).toBeGreaterThanOrEqual(0);
    expect(sample(text, 'vigil_leveldb_bytes')).toBeGreaterThan(0);
    // Counted by the broker's authentication and ACL hooks; declared so dashboards can rely on them.
    expect(text).toMatch(/^# TYPE vigil_auth_refusals_total counter$/m);
    expect(text).toMatch(/^# TYPE vigil_acl_refusals_total counter$/m);
  });

  test('the scrape-time families follow the engine and the devices from one scrape to the next', async () => {
    const gw = await gateway();
    await gw.store.profiles.put('dev-1', { id: 'dev-1', maxTemp: 50, site: 'north' });
    const dev = await device(gw, 'dev-1');
    await dev.publishAsync('devices/dev-1/events/telemetry', JSON.stringify({ temp: 20, bat: 3.0 }), {
      qos: 1,
    });
    await scrapeUntil(gw, 'vigil_scenario_detections_total{scenario="low-battery"}', 1);
    const dev2 = await device(gw, 'dev-2');
    await dev2.publishAsync('devices/dev-2/events/telemetry', JSON.stringify({ temp: 20, bat: 3.0 }), {
      qos: 1,
    });
    const text = await scrapeUntil(gw, 'vigil_scenario_detections_total{scenario="low-battery"}', 2);
    expect(sample(text, 'vigil_devices_online')).toBe(2);
    expect(sample(text, 'vigil_devices_connected')).toBe(2);
  });
});
