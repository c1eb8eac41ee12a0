import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, test, vi } from 'vitest';
import {
  describeScenario,
  DeviceActivity,
  DirSizeSampler,
  formatDuration,
  openMatchesOf,
  RecentActions,
  ScenarioRates,
  timersOf,
  withParams,
} from '../../src/dashboard/index.js';
import { Engine } from '../../src/engine/index.js';
import { loadRulesDir, shippedRulesDir, type RuleSet, type Scenario } from '../../src/rules/index.js';
import type { Action, Event } from '../../src/shared/index.js';
import { tempDir } from '../helpers/temp.js';

// The dashboard's parts on their own: pure, or on virtual time.

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  vi.useRealTimers();
  for (const c of cleanups.splice(0).reverse()) await c();
});

function action(n: number, scenario = 'overheat'): Action {
  return {
    id: `a${n}`,
    gateway: 'gw1',
    scenario,
    action: 'inspect-device',
    actor: `dev-${n}`,
    priority: 70,
    category: 'maintenance',
    decidedAt: n,
    eventAt: n,
    payload: {},
  };
}

function ev(actor: string, at: number, source: Event['source'] = 'device', type = 'telemetry'): Event {
  return { actor, type, at, data: {}, source };
}

async function shippedRules(): Promise<RuleSet> {
  const loaded = await loadRulesDir(shippedRulesDir());
  if (!loaded.ok) throw new Error('the shipped rules do not load');
  return loaded.rules;
}

function scenario(rules: RuleSet, id: string): Scenario {
  const sc = rules.scenarios.find((s) => s.id === id);
  if (!sc) throw new Error(`no shipped scenario ${id}`);
  return sc;
}

describe('RecentActions', () => {
  test('keeps the latest entries in a fixed ring, newest first, and totals everything it saw', () => {
    const recent = new RecentActions(3);
    recent.decided(action(0), undefined);
    recent.decided(action(1), 'cooldown');
    recent.decided(action(2), undefined);
    recent.decided(action(3, 'low-battery'), 'contact');
    recent.dropped(action(2), 'outbox-full');

    expect(recent.latest(10).map((e) => [e.seq, e.verdict, e.reason ?? null])).toEqual([
      [4, 'dropped', 'outbox-full'],
      [3, 'suppressed', 'contact'],
      [2, 'sent', null],
    ]);
    expect(recent.latest(1).map((e) => e.seq)).toEqual([4]);
    // A stream that fell behind the ring gets what is left, oldest first.
    expect(recent.since(0).map((e) => e.seq)).toEqual([2, 3, 4]);
    expect(recent.since(4).map((e) => e.seq)).toEqual([4]);
    expect(recent.since(5)).toEqual([]);
    expect(recent.tally('overheat')).toEqual({
      sent: 2,
      suppressed: 1,
      dropped: 1,
      reasons: { cooldown: 1, 'outbox-full': 1 },
    });
    expect(recent.tally('nope')).toEqual({ sent: 0, suppressed: 0, dropped: 0, reasons: {} });
    expect(recent.reasonTotals()).toEqual({ cooldown: 1, contact: 1, 'outbox-full': 1 });
  });
});

describe('DeviceActivity on virtual time', () => {
  test('a device is online while connected or heard from within the window, offline after', () => {
    let now = 0;
    const devices = new DeviceActivity({ now: () => now, onlineWithinMs: 60_000 });
    devices.observe(ev('quiet', 0)); // publishes over short connections: never seen connected
    devices.observe(ev('idle', 0, 'broker', 'connected')); // stays connected, sends nothing
    devices.observe(ev('cloud-only', 0, 'cloud', 'provisioned'));
    expect(devices.counts()).toEqual({ known: 2, online: 2, offline: 0 });
    expect(devices.lastSeenAt('cloud-only')).toBeUndefined();

    now = 60_000;
    expect(devices.isOnline('quiet')).toBe(true);
    now = 60_001;
    expect(devices.isOnline('quiet')).toBe(false);
    expect(devices.isOnline('idle')).toBe(true);
    now = 61_001; // past the one-second reuse of a count
    expect(devices.counts()).toEqual({ known: 2, online: 1, offline: 1 });

    devices.observe(ev('quiet', now));
    expect(devices.counts()).toEqual({ known: 2, online: 2, offline: 0 });
    // Silent for long and now disconnected: offline at once, not at the next recount.
    devices.observe(ev('idle', now, 'broker', 'disconnected'));
    expect(devices.isConnected('idle')).toBe(false);
    expect(devices.counts()).toEqual({ known: 2, online: 1, offline: 1 });
  });

  test('a takeover (a second connection, then the first one closing) leaves the device connected', () => {
    const devices = new DeviceActivity({ now: () => 0 });
    devices.observe(ev('d1', 0, 'broker', 'connected'));
    devices.observe(ev('d1', 1, 'broker', 'connected'));
    devices.observe(ev('d1', 2, 'broker', 'disconnected'));
    expect(devices.isConnected('d1')).toBe(true);
    devices.observe(ev('d1', 3, 'broker', 'disconnected'));
    expect(devices.isConnected('d1')).toBe(false);
    expect(devices.connectedCount).toBe(0);
  });

  test('past its limit it forgets the device silent longest', () => {
    const devices = new DeviceActivity({ now: () => 20_000, maxDevices: 2 });
    devices.observe(ev('a', 0));
    devices.observe(ev('b', 1_000));
    expect(devices.counts()).toEqual({ known: 2, online: 2, offline: 0 });
    devices.observe(ev('a', 10_000));
    devices.observe(ev('c', 11_000));
    expect(devices.lastSeenAt('b')).toBeUndefined();
    expect(devices.lastSeenAt('a')).toBe(10_000);
    expect(devices.counts()).toEqual({ known: 2, online: 2, offline: 0 });
  });
});

describe('ScenarioRates', () => {
  test('turns running totals into detections per step, over a bounded history', () => {
    const rates = new ScenarioRates(1_000, 4);
    expect(rates.sample(1_000, [{ scenario: 's', evaluations: 10, matches: 5 }])).toEqual([
      { scenario: 's', evaluations: 0, matches: 0 },
    ]);
    rates.sample(2_000, [{ scenario: 's', evaluations: 12, matches: 7 }]);
    rates.sample(3_000, [{ scenario: 's', evaluations: 12, matches: 7 }]);
    // Reloaded with new rules: its totals start again; what it counted since is the step's.
    expect(rates.sample(4_000, [{ scenario: 's', evaluations: 3, matches: 1 }])).toEqual([
      { scenario: 's', evaluations: 3, matches: 1 },
    ]);
    rates.sample(5_000, [{ scenario: 's', evaluations: 3, matches: 4 }]);
    expect(rates.history()).toEqual({ stepMs: 1_000, endAt: 5_000, matches: { s: [2, 0, 1, 3] } });
    expect(rates.recent('s', 2)).toBe(4);
    expect(rates.recent('s', 60)).toBe(6);
    // A scenario gone from the rules is gone from the charts.
    rates.sample(6_000, [{ scenario: 't', evaluations: 0, matches: 0 }]);
    expect(Object.keys(rates.history().matches)).toEqual(['t']);
  });
});

test('ScenarioRates counts suppressed actions per step beside the detections', () => {
  const rates = new ScenarioRates(1_000, 4);
  rates.sample(1_000, [{ scenario: 's', evaluations: 1, matches: 1, suppressed: 2 }]);
  rates.sample(2_000, [{ scenario: 's', evaluations: 5, matches: 4, suppressed: 5 }]);
  rates.sample(3_000, [{ scenario: 's', evaluations: 9, matches: 6, suppressed: 9 }]);
  expect(rates.recent('s', 60, 'suppressed')).toBe(7);
  expect(rates.recent('s', 1, 'suppressed')).toBe(4);
  expect(rates.recent('s', 60)).toBe(5);
});

describe('scenario diagrams', () => {
  test('every shipped scenario reads as a sentence and a flow ending in what it does', async () => {
    const rules = await shippedRules();
    for (const sc of rules.scenarios) {
      const d = describeScenario(sc);
      expect(d.summary, sc.id).toMatch(/^(Fires|On every) .+\.$/);
      const last = d.flow[d.flow.length - 1];
      expect(['action', 'emit'], sc.id).toContain(last?.role);
    }
  });

  test('each kind shows its steps, windows and timers', async () => {
    const rules = await shippedRules();
    const flow = (id: string) =>
      describeScenario(scenario(rules, id)).flow.map((b) => [b.role, b.title, b.lines]);

    expect(flow('device-offline').slice(0, 2)).toEqual([
      ['event', 'any event from the device', ['each one restarts the clock']],
      ['timer', 'nothing for 5m', ['fires once per silence']],
    ]);
    expect(flow('overheat-sustained').slice(0, 2)).toEqual([
      ['event', 'telemetry', ['where data.temp > 80']],
      ['window', '3 times within 2m', []],
    ]);
    expect(flow('hot-average').slice(0, 3)).toEqual([
      ['event', 'telemetry', []],
      ['window', 'over the last 10m', ['avgTemp = avg(data.temp)', 'readings = count()']],
      ['condition', 'only if', ['avgTemp > 70 && readings >= 5']],
    ]);
    expect(flow('customer-created')).toEqual([
      ['event', 'all of, in any order', ['account-created', 'contract-created', 'device-assigned']],
      ['window', 'within 1m', ['of each other']],
      ['emit', 'emits customer-created', ['plan = last.data.plan']],
    ]);
    expect(flow('overheat')[2]).toEqual([
      'action',
      'inspect-device',
      [
        'to upstream and device',
        'priority 70 · maintenance',
        'temp = data.temp',
        'site = has(profile.site) ? profile.site : "unknown"',
      ],
    ]);
    // A template instance reads with its parameters filled in.
    const humidity = describeScenario(scenario(rules, 'humidity-high'));
    expect(humidity.summary).toBe(
      'Fires when 2 telemetry events where data.hum > 85 come within 5m; then it counts again from zero.',
    );
    expect(humidity.params).toContainEqual({ name: 'metric', value: 'hum' });
  });

  test('parameters are shown by value; anything else is left as written', () => {
    const params = { metric: 'hum', limit: 85, label: 'a b' };
    expect(withParams('data[params.metric] > params.limit', params)).toBe('data.hum > 85');
    expect(withParams('data[params.label] == params.label', params)).toBe('data["a b"] == "a b"');
    expect(withParams('params.other + myparams.limit', params)).toBe('params.other + myparams.limit');
  });

  test('durations read as rule authors write them', () => {
    expect(formatDuration(500)).toBe('500ms');
    expect(formatDuration(90_000)).toBe('1m 30s');
    expect(formatDuration(24 * 3_600_000)).toBe('24h');
    expect(formatDuration(2 * 86_400_000 + 3_600_000)).toBe('2d 1h');
    expect(formatDuration(0)).toBe('0s');
  });
});

describe("a device's open matches, read from the engine's state", () => {
  test('shows where each scenario stands for the device, and its timers', async () => {
    const rules = await shippedRules();
    const engine = new Engine(rules, { gateway: 'gw1' });
    const profile = { maxTemp: 200, site: 'north' };
    engine.onEvent({ ...ev('d1', 1_000, 'cloud', 'provisioned') }, profile);
    engine.onEvent({ ...ev('d1', 2_000), data: { temp: 90 } }, profile);
    engine.onEvent({ ...ev('d2', 2_500), data: { temp: 90 } }, profile);

    const matches = openMatchesOf('d1', engine.scenarios, engine.snapshot());
    const by = Object.fromEntries(matches.map((m) => [m.scenario, m]));
    expect(by['provisioned-not-registered']).toMatchObject({
      progress: 'step 2 of 2: no connected',
      sinceAt: 1_000,
      dueAt: 1_000 + 24 * 3_600_000,
    });
    expect(by['overheat-sustained']).toMatchObject({ progress: '1 of 3 within 2m', sinceAt: 2_000 });
    expect(by['device-offline']).toMatchObject({ progress: 'waiting for any event', dueAt: 2_000 + 300_000 });
    expect(matches.every((m) => m.group === 'd1')).toBe(true);

    expect(timersOf('d1', engine.pendingTimers())).toEqual([
      { scenario: 'device-offline', dueAt: 302_000 },
      { scenario: 'provisioned-not-registered', dueAt: 1_000 + 24 * 3_600_000 },
    ]);
    expect(openMatchesOf('d3', engine.scenarios, engine.snapshot())).toEqual([]);
  });
});

describe('DirSizeSampler on virtual time', () => {
  test('samples at start and then every period, not in between', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    const dir = await tempDir();
    cleanups.push(() => dir.remove());
    await writeFile(join(dir.path, 'a.ldb'), Buffer.alloc(1_000));
    const samples: number[] = [];
    let arrived: () => void = () => undefined;
    const next = () => new Promise<void>((r) => (arrived = r));
    let wait = next();
    const sampler = new DirSizeSampler(
      dir.path,
      (bytes) => {
        samples.push(bytes);
        arrived();
      },
      pino({ level: 'silent' }),
      10_000,
    );
    cleanups.push(() => Promise.resolve(sampler.stop()));
    sampler.start();
    await wait;
    expect(samples).toEqual([1_000]);

    await writeFile(join(dir.path, 'b.log'), Buffer.alloc(500));
    wait = next();
    await vi.advanceTimersByTimeAsync(9_999);
    expect(samples).toEqual([1_000]);
    await vi.advanceTimersByTimeAsync(1);
    await wait;
    expect(samples).toEqual([1_000, 1_500]);
    expect(sampler.bytes).toBe(1_500);
  });
});
