import { describe, expect, test } from 'vitest';
import {
  EventSchedule,
  generateProfiles,
  HEAT_THRESHOLD,
  HUMID_THRESHOLD,
  LOW_BATTERY_V,
  planFleet,
  type PlanOptions,
  type PlannedEvent,
  type Telemetry,
} from '../../firmware-sim/index.js';

function eventsOf(opts: PlanOptions): PlannedEvent[] {
  const schedule = new EventSchedule(planFleet(opts));
  const events: PlannedEvent[] = [];
  for (let e = schedule.next(); e; e = schedule.next()) events.push(e);
  return events;
}

const telemetryOf = (events: readonly PlannedEvent[], id?: string) =>
  events.filter(
    (e): e is PlannedEvent & { type: 'telemetry'; data: Telemetry } =>
      e.type === 'telemetry' && (id === undefined || e.device.id === id),
  );

const base: PlanOptions = { devices: 50, rate: 500, durationMs: 10_000, seed: 7 };

describe('determinism', () => {
  test('the same seed gives the same profiles and the same event sequence', () => {
    const flat = (events: PlannedEvent[]) => events.map((e) => [e.atMs, e.device.id, e.type, e.data]);
    expect(flat(eventsOf(base))).toEqual(flat(eventsOf({ ...base })));
    expect([...generateProfiles(base)]).toEqual([...generateProfiles({ ...base })]);
    expect(planFleet({ ...base, silentShare: 0.2, neverRegistered: 3 })).toEqual(
      planFleet({ ...base, silentShare: 0.2, neverRegistered: 3 }),
    );
  });

  test('another seed gives other readings and other profiles', () => {
    const readings = (seed: number) => telemetryOf(eventsOf({ ...base, seed })).map((e) => e.data);
    expect(readings(8)).not.toEqual(readings(7));
    expect([...generateProfiles({ ...base, seed: 8 })]).not.toEqual([...generateProfiles(base)]);
  });

  test("a device's profile does not depend on how many devices the fleet has", () => {
    const small = [...generateProfiles({ devices: 100, sites: 10, customers: 30, seed: 3 })];
    const large = [...generateProfiles({ devices: 10_000, sites: 10, customers: 30, seed: 3 })];
    expect(large.slice(0, 100)).toEqual(small);
  });
});

describe('plain telemetry', () => {
  test('profiles carry id, maxTemp, site, customer and model, spread over the sites asked for', () => {
    const profiles = [...generateProfiles({ devices: 200, sites: 5, seed: 1 })];
    expect(profiles).toHaveLength(200);
    expect(profiles[0]).toEqual({
      id: 'dev-1',
      maxTemp: expect.any(Number) as number,
      site: expect.stringMatching(/^site-[1-5]$/) as string,
      customer: expect.stringMatching(/^cust-\d+$/) as string,
      model: expect.any(String) as string,
    });
    expect(profiles.map((p) => p.id)).toEqual(Array.from({ length: 200 }, (_, i) => `dev-${i + 1}`));
    expect(new Set(profiles.map((p) => p.site)).size).toBe(5);
    for (const p of profiles) expect(p.maxTemp).toBeLessThan(HEAT_THRESHOLD);
  });

  test('the fleet publishes `rate` events per second in total, each device at an even period', () => {
    const events = eventsOf({ devices: 40, rate: 400, durationMs: 5_000, seed: 2 });
    expect(events).toHaveLength(2_000);
    expect(new Set(events.map((e) => e.device.id)).size).toBe(40);
    for (const id of ['dev-1', 'dev-17', 'dev-40']) {
      const times = telemetryOf(events, id).map((e) => e.atMs);
      expect(times).toHaveLength(50);
      const gaps = times.slice(1).map((t, i) => t - (times[i] ?? 0));
      for (const gap of gaps) expect(gap).toBeCloseTo(100, 6); // 40 devices / 400 per second
    }
  });

  test('about hotShare of readings exceed the device maxTemp, never 80; low battery and humidity likewise', () => {
    const events = telemetryOf(eventsOf({ devices: 100, rate: 1_000, durationMs: 40_000, seed: 11 }));
    const hot = events.filter((e) => e.data.temp > e.device.profile.maxTemp);
    const low = events.filter((e) => e.data.bat < LOW_BATTERY_V);
    expect(events).toHaveLength(40_000);
    expect(hot.length / events.length).toBeGreaterThan(0.045);
    expect(hot.length / events.length).toBeLessThan(0.055);
    expect(low.length / events.length).toBeGreaterThan(0.016);
    expect(low.length / events.length).toBeLessThan(0.024);
    expect(events.filter((e) => e.data.temp > HEAT_THRESHOLD)).toEqual([]);
    expect(events.filter((e) => e.data.hum > HUMID_THRESHOLD)).toEqual([]);
  });

  test('hotShare 0 and humidShare 0.1 change the readings as asked', () => {
    const events = telemetryOf(eventsOf({ ...base, hotShare: 0, humidShare: 0.1 }));
    expect(events.filter((e) => e.data.temp > e.device.profile.maxTemp)).toEqual([]);
    const humid = events.filter((e) => e.data.hum > HUMID_THRESHOLD).length / events.length;
    expect(humid).toBeGreaterThan(0.08);
    expect(humid).toBeLessThan(0.12);
  });

  test('no demo behaviour unless asked: everyone connects and keeps publishing, no bursts, no heartbeats', () => {
    const plan = planFleet(base);
    expect(plan).toMatchObject({
      neverRegistered: [],
      silent: [],
      outages: [],
      heatBursts: [],
      humidBursts: [],
    });
    const events = eventsOf(base);
    expect(events.every((e) => e.type === 'telemetry')).toBe(true);
    const last = telemetryOf(events).filter((e) => e.atMs >= 9_000);
    expect(new Set(last.map((e) => e.device.id)).size).toBe(50);
  });

  test('heartbeats: each device publishes one every heartbeatMs besides its telemetry', () => {
    const events = eventsOf({ ...base, heartbeatMs: 2_000 });
    const beats = events.filter((e) => e.type === 'heartbeat');
    expect(beats).toHaveLength(250);
    const times = beats.filter((e) => e.device.id === 'dev-3').map((e) => e.atMs);
    expect(times.slice(1).map((t, i) => t - (times[i] ?? 0))).toEqual([2_000, 2_000, 2_000, 2_000]);
    expect(telemetryOf(events)).toHaveLength(5_000);
  });
});

describe('demo behaviours', () => {
  test('silent devices publish nothing from their silent time on; the others go on', () => {
    const opts: PlanOptions = { ...base, silentShare: 0.2, silentAfterMs: 3_000, silentSpreadMs: 2_000 };
    const plan = planFleet(opts);
    expect(plan.silent).toHaveLength(10);
    const events = eventsOf(opts);
    for (const d of plan.devices) {
      const times = events.filter((e) => e.device.id === d.id).map((e) => e.atMs);
      if (plan.silent.includes(d.id)) {
        expect(d.silentAtMs).toBeGreaterThanOrEqual(3_000);
        expect(d.silentAtMs).toBeLessThan(5_000);
        expect(Math.max(...times)).toBeLessThan(d.silentAtMs);
        expect(Math.max(...times)).toBeGreaterThanOrEqual(d.silentAtMs - 100); // it was publishing until then
      } else {
        expect(d.silentAtMs).toBe(Infinity);
        expect(Math.max(...times)).toBeGreaterThanOrEqual(9_900);
      }
    }
  });

  test('silentMode mixed: some stay connected, some disconnect, some drop the connection', () => {
    const plan = planFleet({ ...base, silentShare: 0.3, silentMode: 'mixed' });
    const how = plan.devices.filter((d) => plan.silent.includes(d.id)).map((d) => d.silentHow);
    expect(new Set(how)).toEqual(new Set(['stay', 'disconnect', 'drop']));
  });

  test('outage sites each lose three of their own devices, within the spread', () => {
    const opts: PlanOptions = {
      devices: 200,
      sites: 10,
      rate: 100,
      durationMs: 60_000,
      seed: 4,
      outageSites: 2,
    };
    const plan = planFleet({ ...opts, outageAfterMs: 10_000, outageSpreadMs: 3_000 });
    expect(plan.outages).toHaveLength(2);
    expect(new Set(plan.outages.map((o) => o.site)).size).toBe(2);
    for (const outage of plan.outages) {
      expect(outage.devices).toHaveLength(3);
      const devices = plan.devices.filter((d) => outage.devices.includes(d.id));
      for (const d of devices) {
        expect(d.profile.site).toBe(outage.site);
        expect(d.registered).toBe(true);
        expect(d.silentAtMs).toBeGreaterThanOrEqual(10_000);
        expect(d.silentAtMs).toBeLessThan(13_000);
      }
    }
  });

  test('more outage sites than the fleet can provide is refused', () => {
    expect(() => planFleet({ devices: 6, sites: 3, rate: 10, durationMs: 1_000, outageSites: 2 })).toThrow(
      expect.objectContaining({
        code: 'VIGIL_CONFIG',
        message: expect.stringContaining('outageSites') as string,
      }),
    );
  });

  test('a heat burst: three consecutive readings above 80 from the burst time, plain ones before and after', () => {
    const opts: PlanOptions = { ...base, hotShare: 0, heatBursts: 2, heatBurstAfterMs: 4_000 };
    const plan = planFleet(opts);
    expect(plan.heatBursts).toHaveLength(2);
    const events = eventsOf(opts);
    for (const id of plan.heatBursts) {
      const readings = telemetryOf(events, id);
      const hot = readings.filter((e) => e.data.temp > HEAT_THRESHOLD);
      expect(hot).toHaveLength(3);
      const first = readings.findIndex((e) => e.atMs >= 4_000);
      expect(readings.slice(first, first + 3)).toEqual(hot);
    }
    const others = telemetryOf(events).filter((e) => !plan.heatBursts.includes(e.device.id));
    expect(others.filter((e) => e.data.temp > HEAT_THRESHOLD)).toEqual([]);
  });

  test('a humid burst: two readings above 85 (more when asked)', () => {
    const opts: PlanOptions = { ...base, humidBursts: 3, humidBurstReadings: 4 };
    const plan = planFleet(opts);
    const events = eventsOf(opts);
    for (const id of plan.humidBursts) {
      const readings = telemetryOf(events, id);
      expect(readings.slice(0, 4).every((e) => e.data.hum > HUMID_THRESHOLD)).toBe(true);
      expect(readings.slice(4).some((e) => e.data.hum > HUMID_THRESHOLD)).toBe(false);
    }
    expect(planFleet({ ...base, humidBursts: 1 }).options.humidBurstReadings).toBe(2);
  });

  test('devices provisioned but never registered have profiles, are listed, and never publish', () => {
    const opts: PlanOptions = { ...base, neverRegistered: 4 };
    const plan = planFleet(opts);
    expect(plan.neverRegistered).toHaveLength(4);
    const profiles = new Set([...generateProfiles(opts)].map((p) => p.id));
    for (const id of plan.neverRegistered) expect(profiles.has(id)).toBe(true);
    const publishers = new Set(eventsOf(opts).map((e) => e.device.id));
    expect(publishers.size).toBe(46);
    for (const id of plan.neverRegistered) expect(publishers.has(id)).toBe(false);
  });

  test('an endless run ends when every device has gone silent', () => {
    const events = eventsOf({
      devices: 10,
      rate: 100,
      durationMs: Infinity,
      silentShare: 1,
      silentAfterMs: 2_000,
    });
    expect(events).toHaveLength(200);
  });
});

describe('options', () => {
  test.each([
    [{ rate: 0 }, 'rate'],
    [{ devices: 0 }, 'devices'],
    [{ devices: 2.5 }, 'devices'],
    [{ hotShare: 1.5 }, 'hotShare'],
    [{ silentMode: 'sleep' }, 'silentMode'],
    [{ neverRegistered: 51 }, 'neverRegistered'],
    [{ heatBursts: 60 }, 'heatBursts'],
    [{ idPrefix: 'a/b' }, 'idPrefix'],
    [{ durationMs: -1 }, 'durationMs'],
  ])('%o is refused, naming the option', (bad, key) => {
    expect(() => planFleet({ ...base, ...(bad as Partial<PlanOptions>) })).toThrow(
      expect.objectContaining({ code: 'VIGIL_CONFIG', message: expect.stringContaining(key) as string }),
    );
  });
});
