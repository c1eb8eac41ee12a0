import { join } from 'node:path';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, test } from 'vitest';
import { isExpired } from '../../src/actions/index.js';
import { compileRuleFiles, type Policy } from '../../src/rules/index.js';
import {
  CLOCK_FLOOR_MS,
  DecisionLoop,
  DurableInputs,
  observeWall,
  replayJournal,
  RulesInForce,
  rulesRecordOf,
  VirtualScheduler,
  type WallState,
} from '../../src/runtime/index.js';
import type { Action } from '../../src/shared/index.js';
import { tempDir } from '../helpers/temp.js';
import { captureLogs } from './durability-faults.js';

/**
 * A gateway without a hardware clock boots in 1976; NTP then steps the wall clock 50 years forward, and later a
 * day back. Timers run on gateway (monotonic) time and fire at their deadlines whatever the wall clock does; the
 * times stamped on actions follow the wall clock as the journal recorded its steps, live and in recovery alike.
 */
const loaded = compileRuleFiles([
  {
    path: 'offline.yaml',
    text: 'id: offline\nwhen: { absent: any, for: 10m }\nthen: { action: offline, to: [upstream] }\n',
  },
  {
    path: 'alarm.yaml',
    text: 'id: alarm\nwhen: { event: alarm }\nthen: { action: alarm, to: [upstream] }\n',
  },
  {
    path: 'today.yaml',
    text:
      'id: today\nwhen:\n  event: reset\n  window: { every: 1d, at: "00:00", tz: Europe/Berlin }\n' +
      '  aggregate: { n: count() }\nthen: { action: count, to: [upstream], payload: { n: n } }\n',
  },
]);
if (!loaded.ok) throw new Error(JSON.stringify(loaded.problems));
const rules = loaded.rules;
const record = rulesRecordOf(rules, 'dir', 0);

const MIN = 60_000;
const DAY = 24 * 60 * MIN;
const BOOT = Date.UTC(1976, 11, 5);
const FIFTY_YEARS = Date.UTC(2026, 11, 5) - BOOT;

interface Decided {
  action: Action;
  /** Gateway time it was decided at. */
  at: number;
  replay: boolean;
}

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function start(dir: string, now: () => number, decided: Decided[]) {
  const durable = await DurableInputs.open({
    dir,
    logger: captureLogs().logger,
    registry: new Registry(),
    settings: { checkpointIntervalMs: 3_600_000, checkpointRecords: 1_000_000_000 },
  });
  const restored = durable.restore(rules, { gateway: 'gw1' }, record);
  const scheduler = new VirtualScheduler(now());
  const loop = new DecisionLoop({
    rules: new RulesInForce(restored.rules, restored.engine, restored.arbiter),
    scheduler,
    outputs: {
      verdict: (v, at, replay) =>
        void decided.push({ action: structuredClone(v.candidate.action), at, replay }),
    },
  });
  await durable.recover({
    loop,
    clock: { now },
    profiles: { peek: () => ({ hit: true, profile: undefined }), get: () => Promise.resolve(undefined) },
    pendingWrites: () => new Set(),
    forward: () => undefined,
  });
  return { durable, loop, scheduler };
}

describe('observeWall', () => {
  test('drift under a second is not a step; a wall clock before the floor is not synchronised', () => {
    const synced: WallState = { offsetMs: 0, synced: true };
    const now = CLOCK_FLOOR_MS + DAY;
    expect(observeWall(synced, now, now + 900)).toBeUndefined();
    expect(observeWall(synced, now, now - 900)).toBeUndefined();
    expect(observeWall(synced, now, now + 1_500)).toEqual({
      at: now,
      offsetMs: 1_500,
      synced: true,
      stepMs: 1_500,
    });
    expect(observeWall(synced, BOOT, BOOT)).toEqual({ at: BOOT, offsetMs: 0, synced: false, stepMs: 0 });
    expect(observeWall({ offsetMs: 0, synced: false }, BOOT, BOOT + 10)).toBeUndefined();
  });
});

describe('a wall clock that steps', () => {
  test('+50 years and −1 day: timers fire at their deadlines, actions carry the wall time, recovery stamps the same', async () => {
    const tmp = await tempDir();
    cleanups.push(() => tmp.remove());
    const dir = join(tmp.path, 'journal');
    let now = BOOT;
    let skew = 0;
    const decided: Decided[] = [];
    const gw = await start(dir, () => now, decided);
    // What the gateway's watch does every second: compare, and record what changed.
    let recorded = gw.loop.wall.state();
    const watch = async () => {
      const change = observeWall(recorded, now, now + skew);
      if (change === undefined) return;
      recorded = change;
      await gw.durable.submitClock(change);
    };
    const advance = async (to: number) => {
      const fired: Array<Promise<void>> = [];
      gw.scheduler.advance(to, true, (timer, who, dueAt) => {
        now = Math.max(now, dueAt);
        fired.push(gw.durable.submitTimer(timer, dueAt, who, undefined));
      });
      now = to;
      await Promise.all(fired);
    };
    const event = (actor: string, type: string) =>
      gw.durable.submitEvent({ actor, type, at: now, data: {}, source: 'device' }, undefined, 'sync');

    await watch(); // booted in 1976: not synchronised
    await event('d1', 'alarm');
    await advance(BOOT + 2 * MIN);
    skew = FIFTY_YEARS; // NTP steps the clock to 2026
    await watch();
    await event('d2', 'heartbeat');
    await advance(BOOT + 11 * MIN);
    skew = FIFTY_YEARS - DAY; // and a day back
    await watch();
    await advance(BOOT + 13 * MIN);

    const live = decided.filter((d) => !d.replay);
    expect(live.map((d) => [d.action.scenario, d.action.actor, d.at])).toEqual([
      ['alarm', 'd1', BOOT],
      // d1 went silent at BOOT, d2 at BOOT + 2 min: each fires 10 min later on gateway time, not at a step.
      ['offline', 'd1', BOOT + 10 * MIN],
      ['offline', 'd2', BOOT + 12 * MIN],
    ]);
    const [alarm, first, second] = live.map((d) => d.action);
    // Decided before the clock was synchronised: its 1976 time says so.
    expect(alarm).toMatchObject({ decidedAt: BOOT, eventAt: BOOT, clockSynced: false });
    expect(first).toMatchObject({ eventAt: BOOT + 10 * MIN + FIFTY_YEARS });
    expect(first?.decidedAt).toBe(BOOT + 10 * MIN + FIFTY_YEARS);
    expect(first).not.toHaveProperty('clockSynced');
    expect(second).toMatchObject({
      decidedAt: BOOT + 12 * MIN + FIFTY_YEARS - DAY,
      eventAt: BOOT + 12 * MIN + FIFTY_YEARS - DAY,
    });
    expect(new Date(second?.decidedAt ?? 0).toISOString()).toBe('2026-12-04T00:12:00.000Z');
    expect(second?.clockOffsetMs).toBe(FIFTY_YEARS - DAY);
    expect(alarm).not.toHaveProperty('clockOffsetMs');
    // A ttl is counted on gateway time: the steps move neither action's expiry.
    const categories = [alarm?.category, second?.category].map((c) => [c, 10 * MIN] as const);
    const ttl = { ttlMs: new Map(categories) } as unknown as Policy;
    expect(isExpired(alarm as Action, BOOT + 9 * MIN, ttl)).toBe(false);
    expect(isExpired(alarm as Action, BOOT + 10 * MIN, ttl)).toBe(true);
    expect(isExpired(second as Action, BOOT + 21 * MIN, ttl)).toBe(false);
    expect(isExpired(second as Action, BOOT + 22 * MIN, ttl)).toBe(true);

    // The process dies: recovery replays the journal, clock records included, and stamps every action the same.
    const again: Decided[] = [];
    const recovered = await start(dir, () => now, again);
    cleanups.push(() => gw.durable.close().catch(() => undefined));
    expect(again.map((d) => d.action)).toEqual(live.map((d) => d.action));
    expect(recovered.loop.wall.state()).toEqual({ offsetMs: FIFTY_YEARS - DAY, synced: true });
    expect(recovered.durable.recordedWall).toEqual(expect.objectContaining({ offsetMs: FIFTY_YEARS - DAY }));

    // A checkpoint keeps the offset once the journal before it is gone.
    await recovered.durable.checkpoint();
    await recovered.durable.close();
    const third = await start(dir, () => now, []);
    expect(third.loop.wall.state()).toEqual({ offsetMs: FIFTY_YEARS - DAY, synced: true });
    await third.durable.close();
  });
});

describe('a calendar window on a wall clock that steps', () => {
  test('live, recovery, a replay of the journal and a restart from a checkpoint count the same days', async () => {
    const tmp = await tempDir();
    cleanups.push(() => tmp.remove());
    const dir = join(tmp.path, 'journal');
    // Booted in 1976 at 19:00Z; NTP steps the wall clock at 22:00Z to 02:00 in Berlin on 10 December 2026, whose
    // midnight was at 20:00Z gateway time. Later the clock falls back to 1976 (not synchronised).
    const G = (hhmm: string, day = 5) =>
      Date.UTC(1976, 11, day, Number(hhmm.slice(0, 2)), Number(hhmm.slice(3)));
    const STEP = Date.UTC(2026, 11, 10, 1, 0) - G('22:00');
    let now = G('19:00');
    let skew = 0;
    const decided: Decided[] = [];
    const gw = await start(dir, () => now, decided);
    let recorded = gw.loop.wall.state();
    const watch = async () => {
      const change = observeWall(recorded, now, now + skew);
      if (change === undefined) return;
      recorded = change;
      await gw.durable.submitClock(change);
    };
    const reset = async (t: number) => {
      now = t;
      await gw.durable.submitEvent(
        { actor: 'd1', type: 'reset', at: t, data: {}, source: 'cloud' },
        undefined,
        'sync',
      );
    };
    const counts = (list: readonly Decided[]) =>
      list.filter((d) => d.action.scenario === 'today').map((d) => [d.at, d.action.payload.n]);

    await watch();
    await reset(G('19:30'));
    await reset(G('21:00'));
    now = G('22:00');
    skew = STEP;
    await watch();
    await reset(G('22:10'));
    now = G('23:00');
    skew = 0;
    await watch();
    await reset(G('23:30'));

    const live = decided.filter((d) => !d.replay);
    expect(counts(live)).toEqual([
      [G('19:30'), 1],
      [G('21:00'), 2],
      // Since midnight in Berlin by the stepped wall clock: the reset at 19:30 was the day before.
      [G('22:10'), 2],
      // The wall clock is no longer synchronised: the window stays on the days of the last synchronised one.
      [G('23:30'), 3],
    ]);
    expect(live[3]?.action).toMatchObject({ decidedAt: G('23:30'), clockSynced: false });

    // `vigil replay --journal` applies the clock records where the live gateway did, and decides the same.
    const replayed = await replayJournal({ dir, gateway: 'gw1', logger: captureLogs().logger });
    const ofToday = (actions: readonly Action[]) =>
      actions.filter((a) => a.scenario === 'today').map((a) => [a.id, a.payload, a.decidedAt, a.clockSynced]);
    expect(ofToday(replayed?.actions ?? [])).toEqual(ofToday(live.map((d) => d.action)));

    // The process dies: recovery replays the journal and decides the same.
    const again: Decided[] = [];
    const recovered = await start(dir, () => now, again);
    cleanups.push(() => gw.durable.close().catch(() => undefined));
    expect(again.map((d) => d.action)).toEqual(live.map((d) => d.action));
    expect(recovered.loop.wall.state()).toEqual({ offsetMs: 0, synced: false, syncedOffsetMs: STEP });

    // A checkpoint keeps the offset the windows follow once the journal before it is gone.
    await recovered.durable.checkpoint();
    await recovered.durable.close();
    const after: Decided[] = [];
    const third = await start(dir, () => now, after);
    expect(third.loop.wall.state()).toEqual({ offsetMs: 0, synced: false, syncedOffsetMs: STEP });
    const submit = (t: number) =>
      third.durable.submitEvent(
        { actor: 'd1', type: 'reset', at: t, data: {}, source: 'cloud' },
        undefined,
        'sync',
      );
    await submit(G('19:59', 6));
    await submit(G('20:00', 6));
    expect(counts(after)).toEqual([
      [G('19:59', 6), 4],
      // Midnight of 11 December in Berlin.
      [G('20:00', 6), 1],
    ]);
    await third.durable.close();
  });
});
