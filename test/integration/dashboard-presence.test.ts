import { pino } from 'pino';
import { afterEach, describe, expect, test } from 'vitest';
import { startGateway } from '../../src/app/index.js';
import { parseConfig } from '../../src/config/index.js';
import { DeviceActivity, PresenceCounter, type Presence } from '../../src/dashboard/index.js';
import type { Action, Event } from '../../src/shared/index.js';
import { openStore } from '../../src/store/index.js';
import { tempDir } from '../helpers/temp.js';

// Presence and the outbox's oldest entry on a real LevelDB; the history's route on a running gateway.

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function ev(actor: string, at: number, source: Event['source'] = 'device', type = 'telemetry'): Event {
  return { actor, type, at, data: {}, source };
}

function action(id: string, priority: number, decidedAt: number): Action {
  return {
    id,
    gateway: 'gw1',
    scenario: 'overheat',
    action: 'inspect-device',
    actor: 'dev-1',
    priority,
    category: 'maintenance',
    decidedAt,
    eventAt: decidedAt,
    payload: {},
  };
}

async function store() {
  const dir = await tempDir();
  cleanups.push(() => dir.remove());
  const s = await openStore(dir.path);
  cleanups.push(() => s.close());
  return s;
}

describe('presence', () => {
  test('connected, away, silent and never seen: one place each, adding up to the total', async () => {
    const s = await store();
    for (const id of ['plug', 'walker', 'sleeper', 'ghost-1', 'ghost-2'])
      await s.profiles.put(id, { id, site: 'north' });
    let now = 0;
    const devices = new DeviceActivity({ now: () => now, onlineWithinMs: 60_000 });
    const presence = new PresenceCounter({
      devices,
      countProfiles: (where) => s.profiles.count(where),
      now: () => now,
      logger: pino({ level: 'silent' }),
    });
    devices.observe(ev('sleeper', 0));
    now = 30_000;
    devices.observe(ev('plug', now, 'broker', 'connected'));
    devices.observe(ev('walker', now));
    devices.observe(ev('stranger', now)); // heard from, no profile: counted where it stands
    now = 90_000; // sleeper's last word was 90 s ago, past the 60 s deadline
    await presence.countNeverSeen();
    const p: Presence = presence.presence();
    expect(p).toMatchObject({
      connected: 1,
      away: 2,
      silent: 1,
      neverSeen: 2,
      total: 6,
      silentAfterMs: 60_000,
      neverSeenAt: 90_000,
    });
    expect(p.connected + p.away + p.silent + p.neverSeen).toBe(p.total);

    // A ghost turns up: it leaves never seen at the next count.
    devices.observe(ev('ghost-1', now, 'broker', 'connected'));
    await presence.countNeverSeen();
    expect(presence.presence()).toMatchObject({ connected: 2, away: 2, silent: 1, neverSeen: 1, total: 6 });
    // Time passes: the devices heard from at 30 s fall silent, the connected ones stay connected.
    now = 100_000;
    expect(presence.presence()).toMatchObject({ connected: 2, away: 0, silent: 3, neverSeen: 1, total: 6 });
  });

  test('the outbox tells when its oldest action was decided, across priorities', async () => {
    const s = await store();
    expect(s.outbox.oldestDecidedAt).toBeUndefined();
    await s.outbox.add(action('high-late', 90, 5_000));
    await s.outbox.add(action('low-early', 10, 2_000));
    await s.outbox.add(action('low-later', 10, 3_000));
    expect(s.outbox.oldestDecidedAt).toBe(2_000);
    await s.outbox.remove('low-early');
    expect(s.outbox.oldestDecidedAt).toBe(3_000);
  });
});

describe('the history and presence on a running gateway', () => {
  test('/api/history answers the three ranges and refuses others; /api/health carries presence', async () => {
    const dir = await tempDir();
    cleanups.push(() => dir.remove());
    const gateway = await startGateway(
      parseConfig({
        gatewayId: 'gw1',
        data: dir.path,
        mqtt: { host: '127.0.0.1', port: 0, allowAnonymous: true },
        http: { port: 0 },
        log: { level: 'silent' },
      }),
    );
    cleanups.push(() => gateway.stop());
    const base = `http://127.0.0.1:${gateway.http.port}`;
    for (const [range, stepMs] of [
      ['15m', 5_000],
      ['1h', 5_000],
      ['24h', 60_000],
    ] as const) {
      const res = await fetch(`${base}/api/history?range=${range}`);
      expect(res.status).toBe(200);
      const body = (await res.json()) as { range: string; stepMs: number; at: number[]; series: object };
      expect(body).toMatchObject({ range, stepMs });
      expect(Object.keys(body.series)).toContain('p99Ms');
    }
    const bad = await fetch(`${base}/api/history?range=2d`);
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { code: string } }).error.code).toBe('VIGIL_HTTP_BAD_QUERY');

    await gateway.store.profiles.put('dev-1', { id: 'dev-1' });
    const health = (await (await fetch(`${base}/api/health`)).json()) as { presence: Presence };
    expect(health.presence).toMatchObject({ connected: 0, away: 0, silent: 0, silentAfterMs: 300_000 });
    expect(health.presence.total).toBe(health.presence.neverSeen);
  });
});
