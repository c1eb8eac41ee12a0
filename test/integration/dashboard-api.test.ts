import mqtt, { type MqttClient } from 'mqtt';
import { afterEach, describe, expect, test } from 'vitest';
import { startLocalBroker, type Broker } from '../../src/broker/index.js';
import { parseConfig } from '../../src/config/index.js';
import type { ActionEntry, ScenarioRow, Summary } from '../../src/dashboard/index.js';
import { startGateway, type Gateway } from '../../src/app/index.js';
import { tempDir } from '../helpers/temp.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function cloudBroker(): Promise<Broker> {
  const broker = await startLocalBroker();
  cleanups.push(() => broker.close());
  return broker;
}

async function gatewayWith(upstream?: string): Promise<Gateway> {
  const dir = await tempDir();
  cleanups.push(() => dir.remove());
  const gateway = await startGateway(
    parseConfig({
      gatewayId: 'gw1',
      data: dir.path,
      // Authentication is not what this test is about: devices connect anonymously.
      mqtt: { host: '127.0.0.1', port: 0, allowAnonymous: true },
      http: { port: 0 },
      upstream: upstream ? { url: upstream, reconnect: '200ms' } : {},
      log: { level: 'silent' },
    }),
  );
  cleanups.push(() => gateway.stop());
  return gateway;
}

async function device(gateway: Gateway, id: string): Promise<MqttClient> {
  const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${gateway.mqtt.port}`, {
    clientId: id,
    reconnectPeriod: 0,
  });
  cleanups.push(() => client.endAsync());
  return client;
}

async function get<T>(gateway: Gateway, path: string): Promise<{ status: number; body: T }> {
  const res = await fetch(`http://127.0.0.1:${gateway.http.port}${path}`);
  return { status: res.status, body: (await res.json()) as T };
}

async function telemetry(client: MqttClient, id: string, data: Record<string, number>): Promise<void> {
  await client.publishAsync(`devices/${id}/events/telemetry`, JSON.stringify(data), { qos: 1 });
}

/** Polls `read` until `done` holds: decisions are made just after the PUBACK, not before it. */
async function until<T>(read: () => Promise<T>, done: (v: T) => boolean, what: string): Promise<T> {
  const deadline = Date.now() + 5_000;
  for (;;) {
    const value = await read();
    if (done(value)) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(value)}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

function row(rows: ScenarioRow[], id: string): ScenarioRow {
  const found = rows.find((r) => r.id === id);
  if (!found) throw new Error(`no scenario ${id} in ${rows.map((r) => r.id).join(', ')}`);
  return found;
}

/** Reads a server-sent event stream into a list, for as long as the test runs. */
class EventStreamReader {
  readonly events: Array<{ event: string; data: unknown }> = [];
  private readonly abort = new AbortController();
  private buffer = '';

  static async open(url: string): Promise<EventStreamReader> {
    const reader = new EventStreamReader();
    const res = await fetch(url, { signal: reader.abort.signal });
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    if (!res.body) throw new Error('no body');
    const stream = res.body.pipeThrough(new TextDecoderStream()).getReader();
    void (async () => {
      try {
        for (;;) {
          const { value, done } = await stream.read();
          if (done) return;
          reader.take(value);
        }
      } catch {
        // Aborted at the end of the test.
      }
    })();
    return reader;
  }

  close(): void {
    this.abort.abort();
  }

  async waitFor(pred: (e: { event: string; data: unknown }) => boolean, what: string): Promise<unknown> {
    const deadline = Date.now() + 5_000;
    for (;;) {
      const found = this.events.find(pred);
      if (found) return found.data;
      if (Date.now() > deadline)
        throw new Error(`no ${what} on the stream; got ${this.events.length} events`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  private take(chunk: string): void {
    this.buffer += chunk;
    let end: number;
    while ((end = this.buffer.indexOf('\n\n')) >= 0) {
      const frame = this.buffer.slice(0, end);
      this.buffer = this.buffer.slice(end + 2);
      const event = /^event: (.*)$/m.exec(frame)?.[1];
      const data = /^data: (.*)$/m.exec(frame)?.[1];
      if (event !== undefined && data !== undefined) this.events.push({ event, data: JSON.parse(data) });
    }
  }
}

describe('dashboard JSON API', () => {
  test('scenarios report their counters, decisions with reasons, and last firing', async () => {
    const gateway = await gatewayWith();
    await gateway.store.profiles.put('dev-1', { id: 'dev-1', maxTemp: 50, site: 'north' });
    const dev = await device(gateway, 'dev-1');

    const before = await get<{ scenarios: ScenarioRow[] }>(gateway, '/api/scenarios');
    expect(before.status).toBe(200);
    expect(before.body.scenarios.map((s) => s.id)).toEqual(gateway.rules.scenarios.map((s) => s.id));
    expect(row(before.body.scenarios, 'overheat')).toMatchObject({
      description: 'A device reports a temperature above the limit in its profile.',
      priority: 70,
      category: 'maintenance',
      kind: 'trigger',
      action: 'inspect-device',
      detections: 0,
      sent: 0,
      lastFiredAt: null,
    });

    // The second reading within the shipped 10-minute cooldown is detected but suppressed.
    await telemetry(dev, 'dev-1', { temp: 61, bat: 3.9 });
    await telemetry(dev, 'dev-1', { temp: 63, bat: 3.9 });
    const after = await until(
      () => get<{ scenarios: ScenarioRow[] }>(gateway, '/api/scenarios'),
      (r) => row(r.body.scenarios, 'overheat').suppressed === 1,
      'the suppressed overheat',
    );
    const overheat = row(after.body.scenarios, 'overheat');
    expect(overheat).toMatchObject({
      evaluations: 2,
      detections: 2,
      sent: 1,
      suppressed: 1,
      dropped: 0,
      reasons: { cooldown: 1 },
    });
    expect(overheat.lastFiredAt).toBeGreaterThan(0);
    expect(row(after.body.scenarios, 'low-battery')).toMatchObject({ evaluations: 2, detections: 0 });
  });

  test('actions lists recent decisions newest first with their reasons, and refuses a bad limit', async () => {
    const gateway = await gatewayWith();
    await gateway.store.profiles.put('dev-1', { id: 'dev-1', maxTemp: 50, site: 'north' });
    const dev = await device(gateway, 'dev-1');
    await telemetry(dev, 'dev-1', { temp: 61, bat: 3.9 });
    await telemetry(dev, 'dev-1', { temp: 62, bat: 3.9 });
    await telemetry(dev, 'dev-1', { temp: 30, bat: 3.0 });

    const all = await until(
      () => get<{ actions: ActionEntry[] }>(gateway, '/api/actions'),
      (r) => r.body.actions.length === 3,
      'three decisions',
    );
    expect(
      all.body.actions.map((e) => [e.action.scenario, e.verdict, e.reason ?? null, e.action.payload]),
    ).toEqual([
      ['low-battery', 'sent', null, { bat: 3 }],
      ['overheat', 'suppressed', 'cooldown', { temp: 62, site: 'north' }],
      ['overheat', 'sent', null, { temp: 61, site: 'north' }],
    ]);

    const one = await get<{ actions: ActionEntry[] }>(gateway, '/api/actions?limit=1');
    expect(one.body.actions.map((e) => e.action.scenario)).toEqual(['low-battery']);
    // More than the ring holds is all of it.
    expect(
      (await get<{ actions: ActionEntry[] }>(gateway, '/api/actions?limit=100000')).body.actions,
    ).toHaveLength(3);
    for (const bad of ['abc', '0', '-1', '2.5']) {
      const res = await get<{ error: { code: string; message: string } }>(
        gateway,
        `/api/actions?limit=${bad}`,
      );
      expect(res.status, bad).toBe(400);
      expect(res.body.error.code).toBe('VIGIL_HTTP_BAD_QUERY');
      expect(res.body.error.message).toMatch(/limit must be a positive integer/);
    }
  });

  test('a device shows its profile, last seen, open matches and timers; an unknown device is 404', async () => {
    const gateway = await gatewayWith();
    await gateway.store.profiles.put('dev-1', { id: 'dev-1', maxTemp: 90, site: 'north' });
    const dev = await device(gateway, 'dev-1');
    const sentAt = Date.now();
    await telemetry(dev, 'dev-1', { temp: 85, bat: 3.9 });
    await telemetry(dev, 'dev-1', { temp: 86, bat: 3.9 });

    interface DeviceBody {
      profile: unknown;
      lastSeenAt: number | null;
      connected: boolean;
      online: boolean;
      matches: Array<{ scenario: string; progress: string; dueAt?: number }>;
      timers: Array<{ scenario: string; dueAt: number }>;
    }
    const res = await until(
      () => get<DeviceBody>(gateway, '/api/devices/dev-1'),
      (r) =>
        r.body.matches.some((m) => m.scenario === 'overheat-sustained' && m.progress.startsWith('2 of 3')),
      'two of three sustained readings',
    );
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      profile: { id: 'dev-1', maxTemp: 90, site: 'north' },
      connected: true,
      online: true,
    });
    expect(res.body.lastSeenAt).toBeGreaterThanOrEqual(sentAt - 1_000);
    const progress = Object.fromEntries(res.body.matches.map((m) => [m.scenario, m.progress]));
    expect(progress).toMatchObject({
      'overheat-sustained': '2 of 3 within 2m',
      'hot-average': '2 events in the 10m window',
      'device-offline': 'waiting for any event',
    });
    // device-offline waits 5 minutes from the last event.
    const offline = res.body.timers.find((t) => t.scenario === 'device-offline');
    expect(offline?.dueAt).toBe((res.body.lastSeenAt ?? 0) + 5 * 60_000);

    await dev.endAsync();
    const gone = await until(
      () => get<DeviceBody>(gateway, '/api/devices/dev-1'),
      (r) => !r.body.connected,
      'the disconnect',
    );
    // Heard from a moment ago: still online, though not connected.
    expect(gone.body.online).toBe(true);

    const unknown = await get<{ error: { code: string; message: string } }>(gateway, '/api/devices/nobody');
    expect(unknown.status).toBe(404);
    expect(unknown.body.error.message).toMatch(/unknown device: nobody/);
    // A device with a profile that never showed up is known.
    await gateway.store.profiles.put('dev-2', { id: 'dev-2' });
    const quiet2 = await get<DeviceBody>(gateway, '/api/devices/dev-2');
    expect(quiet2.status).toBe(200);
    expect(quiet2.body).toMatchObject({ lastSeenAt: null, connected: false, online: false, matches: [] });
  });

  test('a scenario detail carries its definition as a diagram; an unknown scenario is 404', async () => {
    const gateway = await gatewayWith();
    const res = await get<{
      file: string;
      line: number;
      diagram: { summary: string; per: string; flow: Array<{ role: string; title: string; arrow?: string }> };
    }>(gateway, '/api/scenarios/provisioned-not-registered');
    expect(res.status).toBe(200);
    expect(res.body.file).toMatch(/not-registered\.yaml$/);
    expect(res.body.diagram.summary).toBe(
      'Fires on the sequence: provisioned, then no connected within 24h.',
    );
    expect(res.body.diagram.per).toBe('each device');
    expect(res.body.diagram.flow.map((b) => [b.role, b.title, b.arrow ?? null])).toEqual([
      ['event', 'provisioned', null],
      ['absent', 'no connected', 'then'],
      ['action', 'escalate-activation', null],
    ]);

    const site = await get<{ diagram: { per: string } }>(gateway, '/api/scenarios/site-outage');
    expect(site.body.diagram.per).toBe('each value of profile.site');

    const missing = await get<{ error: string }>(gateway, '/api/scenarios/nope');
    expect(missing.status).toBe(404);
  });

  test('health reports the uplink, the outbox and the devices; a lost uplink degrades it', async () => {
    const cloud = await cloudBroker();
    const gateway = await gatewayWith(`mqtt://127.0.0.1:${cloud.address.port}`);
    interface Health {
      status: string;
      upstream: string;
      outbox: { depth: number };
      devices: { connected: number; online: number };
    }
    const up = await until(
      () => get<Health>(gateway, '/api/health'),
      (r) => r.body.upstream === 'connected',
      'the uplink',
    );
    expect(up.body).toMatchObject({ status: 'ok', gateway: 'gw1', outbox: { depth: 0 } });
    await device(gateway, 'dev-1');
    const withDevice = await until(
      () => get<Health>(gateway, '/api/health'),
      (r) => r.body.devices.online === 1,
      'the device online',
    );
    expect(withDevice.body.devices.connected).toBe(1);

    await cloud.close();
    const down = await until(
      () => get<Health>(gateway, '/api/health'),
      (r) => r.body.upstream === 'disconnected',
      'the uplink lost',
    );
    expect(down.status).toBe(200);
    expect(down.body.status).toBe('degraded');
  });

  test('the live stream starts from history and recent actions, then sends each new action in a batch', async () => {
    const gateway = await gatewayWith();
    await gateway.store.profiles.put('dev-1', { id: 'dev-1', maxTemp: 50, site: 'north' });
    await gateway.store.profiles.put('dev-2', { id: 'dev-2', maxTemp: 50, site: 'north' });
    const dev = await device(gateway, 'dev-1');
    await telemetry(dev, 'dev-1', { temp: 61, bat: 3.9 });
    await until(
      () => get<{ actions: ActionEntry[] }>(gateway, '/api/actions'),
      (r) => r.body.actions.length === 1,
      'the first action',
    );

    const stream = await EventStreamReader.open(`http://127.0.0.1:${gateway.http.port}/api/live`);
    cleanups.push(() => Promise.resolve(stream.close()));
    const hello = (await stream.waitFor((e) => e.event === 'hello', 'hello')) as {
      actions: ActionEntry[];
      summary: Summary;
      history: { stepMs: number; matches: Record<string, number[]> };
    };
    expect(hello.actions.map((e) => e.action.actor)).toEqual(['dev-1']);
    expect(hello.summary.scenarios.map((s) => s.id)).toContain('overheat');
    expect(hello.history.stepMs).toBe(1_000);

    const dev2 = await device(gateway, 'dev-2');
    await telemetry(dev2, 'dev-2', { temp: 70, bat: 3.9 });
    const batch = (await stream.waitFor(
      (e) => e.event === 'actions' && (e.data as ActionEntry[]).some((a) => a.action.actor === 'dev-2'),
      'the dev-2 action',
    )) as ActionEntry[];
    expect(batch.find((a) => a.action.actor === 'dev-2')).toMatchObject({
      verdict: 'sent',
      action: { scenario: 'overheat', payload: { temp: 70 } },
    });
    const summary = (await stream.waitFor(
      (e) => e.event === 'summary' && row((e.data as Summary).scenarios, 'overheat').sent === 2,
      'a summary with both actions',
    )) as Summary;
    expect(summary.devices.connected).toBe(2);
    expect(summary.outbox.depth).toBe(2); // no upstream configured: the actions wait in the outbox
    expect(summary.upstream).toBe('none');
    // The rate charts get one point per second for each scenario.
    expect(Object.keys(summary.step).sort()).toEqual(gateway.rules.scenarios.map((s) => s.id).sort());
  });

  test('the page and its assets come from the gateway itself, with a strict CSP and ETags', async () => {
    const gateway = await gatewayWith();
    const base = `http://127.0.0.1:${gateway.http.port}`;
    const page = await fetch(`${base}/`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(page.headers.get('content-security-policy')).toMatch(/script-src 'self'/);
    const html = await page.text();
    const refs = [...html.matchAll(/(?:src|href)="(\/assets\/[^"]+)"/g)].map((m) => m[1] ?? '');
    expect(refs.sort()).toEqual(
      [
        '/assets/dashboard.css',
        '/assets/dashboard.js',
        '/assets/uPlot.iife.min.js',
        '/assets/uPlot.min.css',
      ].sort(),
    );
    for (const ref of refs) {
      const res = await fetch(`${base}${ref}`);
      expect(res.status, ref).toBe(200);
      expect((await res.arrayBuffer()).byteLength, ref).toBeGreaterThan(100);
    }
    expect(html).not.toMatch(/https?:\/\//);

    const etag = page.headers.get('etag') ?? '';
    const again = await fetch(`${base}/`, { headers: { 'if-none-match': etag } });
    expect(again.status).toBe(304);

    expect((await fetch(`${base}/assets/nope.js`)).status).toBe(404);
    expect((await fetch(`${base}/assets/..%2Fapi.ts`)).status).toBe(404);
  });
});
