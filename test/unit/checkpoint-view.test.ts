import fc from 'fast-check';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { Arbiter } from '../../src/actions/index.js';
import { Engine, type Effect, type EngineState, type GroupState } from '../../src/engine/index.js';
import { AggregateGroups } from '../../src/engine/kinds/aggregate-groups.js';
import type { AggregateState } from '../../src/engine/kinds/aggregate.js';
import { SilenceGroups } from '../../src/engine/kinds/silence-groups.js';
import { PlainGroups } from '../../src/engine/plain-groups.js';
import type { ViewableGroups } from '../../src/engine/state.js';
import { CheckpointEncoder, Checkpoints, fileJournalStorage } from '../../src/runtime/index.js';
import type { Event, Profile } from '../../src/shared/index.js';
import { tempDir } from '../helpers/temp.js';
import { rulesFrom } from './engine-harness.js';
import type { Scenario } from '../../src/rules/types.js';

/** A silence scenario as far as its groups' timer keys need one. */
const SILENCE_SCENARIO = { id: 'quiet' } as Scenario;

const SEC = 1_000;

/**
 * A scenario of every kind that keeps state, each kind's groups kept their own way: plain maps (count, all,
 * sequence), a silence's columns, and aggregate windows both packed (small) and pushed into (past 16 entries, with
 * running sums).
 */
const rules = rulesFrom({
  'hot-count.yaml': `
id: hot-count
when: { event: telemetry, where: data.temp > 80, count: 3, within: 30s }
then: { action: check-fan, to: [upstream] }
`,
  'site-count.yaml': `
id: site-count
when: { event: offline, by: profile.site, distinct: actor, count: 2, within: 20s }
then: { action: site-outage, to: [upstream] }
`,
  'hot-average.yaml': `
id: hot-average
when:
  event: telemetry
  window: 40s
  aggregate: { avgTemp: avg(data.temp), n: count(), low: min(data.temp) }
  having: avgTemp > 75 && n >= 2
then: { action: maintenance, to: [upstream], payload: { avgTemp: avgTemp } }
`,
  'long-average.yaml': `
id: long-average
when:
  event: telemetry
  window: 30m
  aggregate: { total: sum(data.temp), mean: avg(data.temp), top: max(data.temp) }
  having: mean > 90
then: { action: hot-for-long, to: [upstream] }
`,
  'together.yaml': `
id: together
when: { all: [account, contract, assigned], by: profile.site, within: 20s }
then: { action: onboard, to: [upstream] }
`,
  'quiet.yaml': `
id: quiet
when:
  sequence:
    - event: contract
    - absent: assigned
      within: 20s
    - event: telemetry
      within: 15s
then: { action: quiet-then-telemetry, to: [upstream] }
`,
  'silent.yaml': `
id: silent
when: { absent: telemetry, for: 30s }
then: { action: offline, to: [upstream] }
`,
});

const profiles: Record<string, Profile> = {
  d1: { site: 's1' },
  d2: { site: 's1' },
  d3: { site: 's2' },
  d4: { site: 's2' },
};

/** An input: an event, or time passing (the timers due by then fire in order), or a housekeeping pass. */
type Input =
  | { kind: 'event'; gapMs: number; actor: string; type: string; temp: number }
  | { kind: 'tick'; gapMs: number }
  | { kind: 'prune' };

const input: fc.Arbitrary<Input> = fc.oneof(
  {
    weight: 8,
    arbitrary: fc.record({
      kind: fc.constant('event' as const),
      gapMs: fc.integer({ min: 0, max: 5 }).map((n) => n * 2 * SEC),
      actor: fc.constantFrom('d1', 'd1', 'd1', 'd2', 'd3', 'd4'),
      type: fc.constantFrom(
        'telemetry',
        'telemetry',
        'telemetry',
        'offline',
        'account',
        'contract',
        'assigned',
      ),
      temp: fc.integer({ min: 240, max: 400 }).map((n) => n / 4),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('tick' as const),
      gapMs: fc.integer({ min: 1, max: 40 }).map((n) => n * SEC),
    }),
  },
  { weight: 1, arbitrary: fc.constant({ kind: 'prune' as const }) },
);

/** What an input became once applied: the engine call, to apply again elsewhere (recovery, the plain run). */
type Applied =
  | { kind: 'event'; ev: Event }
  | { kind: 'timer'; timer: string; now: number }
  | { kind: 'prune'; now: number };

/** Runs `inputs` through `engine` from time `at`; returns the calls made and the time reached. */
function drive(engine: Engine, inputs: readonly Input[], at: number): { applied: Applied[]; at: number } {
  const applied: Applied[] = [];
  for (const i of inputs) {
    if (i.kind === 'prune') {
      applied.push({ kind: 'prune', now: at });
      continue;
    }
    at += i.gapMs;
    if (i.kind === 'event') {
      const ev: Event = { actor: i.actor, type: i.type, at, data: { temp: i.temp }, source: 'device' };
      applied.push({ kind: 'event', ev });
      continue;
    }
    const due = engine
      .pendingTimers()
      .filter((t) => t.dueAt <= at)
      .sort((a, b) => a.dueAt - b.dueAt || (a.timer < b.timer ? -1 : 1));
    for (const t of due) applied.push({ kind: 'timer', timer: t.timer, now: t.dueAt });
  }
  return { applied, at };
}

function apply(engine: Engine, a: Applied): Effect[] {
  if (a.kind === 'event') return engine.onEvent(a.ev, profiles[a.ev.actor]);
  if (a.kind === 'timer') return engine.onTimer(a.timer, a.now, undefined);
  engine.prune(a.now);
  return [];
}

/** Applies each input as it comes: what a tick fires is read from the engine's state at that moment. */
function feed(engine: Engine, inputs: readonly Input[], from: { at: number }, log: Applied[]): Effect[] {
  const effects: Effect[] = [];
  for (const i of inputs) {
    const { applied, at } = drive(engine, [i], from.at);
    from.at = at;
    for (const a of applied) {
      log.push(a);
      effects.push(...apply(engine, a));
    }
  }
  return effects;
}

interface Case {
  before: Input[];
  /** Inputs applied while the checkpoint is encoded: `[encoder steps taken first, inputs]`. */
  during: Array<[steps: number, inputs: Input[]]>;
  entriesPerChunk: number;
}

const aCase: fc.Arbitrary<Case> = fc.record({
  before: fc.array(input, { minLength: 1, maxLength: 150, size: 'max' }),
  during: fc.array(fc.tuple(fc.integer({ min: 0, max: 12 }), fc.array(input, { maxLength: 6 })), {
    maxLength: 12,
  }),
  entriesPerChunk: fc.integer({ min: 1, max: 3 }),
});

let dir: { path: string; remove: () => Promise<void> };
let checkpoints: Checkpoints;
let seq = 0;
beforeAll(async () => {
  dir = await tempDir();
  checkpoints = new Checkpoints(dir.path, fileJournalStorage(), pino({ level: 'silent' }));
});
afterAll(() => dir.remove());

/**
 * Takes a checkpoint after `c.before`, applying `c.during` between the encoder's steps (the slow encode of a live
 * gateway), writes it and reads it back. Returns the state at the checkpoint's instant, the one written, the engine
 * that went on, what it applied and decided after the instant.
 */
async function checkpointWhileRunning(c: Case) {
  const engine = new Engine(rules, { gateway: 'gw' });
  const clock = { at: 0 };
  const log: Applied[] = [];
  feed(engine, c.before, clock, log);
  const atInstant = engine.snapshot();
  const view = engine.checkpointView();
  const encoder = new CheckpointEncoder(
    {
      version: 1,
      seq: ++seq,
      at: clock.at,
      engine: view.state,
      arbiter: new Arbiter(rules.policy).snapshot(),
      lastSeen: [],
      duplicates: [],
    },
    c.entriesPerChunk,
  );
  const tail: Applied[] = [];
  const effects: Effect[] = [];
  const pending = [...c.during].sort((a, b) => a[0] - b[0]);
  let steps = 0;
  const groups = encoder.engineGroups();
  for (;;) {
    while (pending[0] !== undefined && pending[0][0] <= steps) {
      effects.push(...feed(engine, (pending.shift() as [number, Input[]])[1], clock, tail));
    }
    if (groups.next().done === true) break;
    steps++;
  }
  view.release();
  for (const [, inputs] of pending) effects.push(...feed(engine, inputs, clock, tail));
  const copies = encoder.copies();
  while (copies.next().done !== true);
  await checkpoints.write(encoder.finish());
  const written = (await checkpoints.read(seq))?.engine as EngineState;
  return { atInstant, written, engine, tail, effects, log };
}

describe('a checkpoint encoded while the engine takes inputs', () => {
  test('writes the state at its instant, and recovery from it plus the inputs after it is the run without it', async () => {
    await fc.assert(
      fc.asyncProperty(aCase, async (c) => {
        const { atInstant, written, engine, tail, effects, log } = await checkpointWhileRunning(c);
        expect(written).toEqual(atInstant);

        // Recovery: the checkpoint, then the journal after it.
        const recovered = Engine.adopt(rules, { gateway: 'gw' }, written);
        const replayed = tail.flatMap((a) => apply(recovered, a));
        expect(recovered.snapshot()).toEqual(engine.snapshot());
        expect(replayed).toEqual(effects);

        // The same inputs, no checkpoint: the view changed nothing the engine decides.
        const plain = new Engine(rules, { gateway: 'gw' });
        for (const a of log) apply(plain, a);
        expect(tail.flatMap((a) => apply(plain, a))).toEqual(effects);
        expect(plain.snapshot()).toEqual(engine.snapshot());
      }),
      { numRuns: 200 },
    );
  }, 120_000);

  test('the view holds windows past the packed size, changed in place, as they were', async () => {
    // One device with a long window (pushed into, running sums) and silences, changed while both are encoded.
    const before: Input[] = Array.from({ length: 40 }, (_, k) => ({
      kind: 'event' as const,
      gapMs: SEC,
      actor: k % 2 === 0 ? 'd1' : 'd2',
      type: 'telemetry',
      temp: 90 + (k % 7) / 4,
    }));
    const later: Input[] = [
      { kind: 'event', gapMs: SEC, actor: 'd1', type: 'telemetry', temp: 99.75 },
      { kind: 'event', gapMs: SEC, actor: 'd2', type: 'telemetry', temp: 60 },
      { kind: 'tick', gapMs: 40 * SEC },
      { kind: 'prune' },
    ];
    const { atInstant, written, engine } = await checkpointWhileRunning({
      before,
      during: [[0, later]],
      entriesPerChunk: 1,
    });
    const long = (s: EngineState) => s.scenarios.find((sc) => sc.id === 'long-average')?.groups;
    expect((long(written)?.[0]?.[1] as { ats: number[] }).ats.length).toBe(20);
    expect(written).toEqual(atInstant);
    expect(engine.snapshot()).not.toEqual(atInstant);
  });
});

/** Groups as a kind uses them: stores a state, changes the one it reads and stores it again, deletes, iterates. */
interface Container {
  groups: Map<string, GroupState> & ViewableGroups;
  state: (seed: number) => GroupState;
  change: (group: string, seed: number) => void;
}

const containers: Record<string, () => Container> = {
  PlainGroups: () => {
    const groups = new PlainGroups<{ ats: number[] }>();
    return {
      groups,
      state: (seed) => ({ ats: Array.from({ length: seed % 5 }, (_, k) => seed + k) }),
      change: (group, seed) => {
        const st = groups.get(group) ?? { ats: [] };
        st.ats.push(seed);
        groups.set(group, st);
      },
    };
  },
  AggregateGroups: () => {
    const noValues = Object.freeze([]) as unknown as unknown[];
    const groups = new AggregateGroups([true, false], noValues, 4);
    return {
      groups,
      // Windows up to 7 entries: packed up to 4, kept as they are past that, some with running sums.
      state: (seed) => {
        const n = seed % 8;
        const st: AggregateState = {
          ats: Array.from({ length: n }, (_, k) => seed + k),
          values: [Array.from({ length: n }, (_, k) => k / 4), noValues],
          start: 0,
        };
        if (seed % 3 === 0) st.sums = [[n], null];
        return st;
      },
      // As the aggregate kind's event path does: read for update, changed in place, set again.
      change: (group, seed) => {
        const st = groups.forUpdate(group) ?? { ats: [], values: [[], noValues], start: 0 };
        st.ats.push(seed);
        (st.values[0] as number[]).push(seed / 8);
        const partials = st.sums?.[0];
        if (partials) partials[0] = (partials[0] ?? 0) + seed / 8;
        groups.set(group, st);
      },
    };
  },
  SilenceGroups: () => {
    const groups = new SilenceGroups();
    const ev = (seed: number): Event => ({
      actor: `d${seed % 3}`,
      type: seed % 2 === 0 ? 'telemetry' : 'status',
      at: seed,
      data: { seed },
      source: 'device',
    });
    return {
      groups,
      state: (seed) => ({ dueAt: seed + 30_000, last: { ...ev(seed), data: { seed } } }),
      change: (group, seed) => {
        groups.restart(group, seed + 30_000, ev(seed), seed % 2 === 0, SILENCE_SCENARIO);
      },
    };
  },
};

type Op =
  | { op: 'set' | 'change'; group: string; seed: number }
  | { op: 'delete'; group: string }
  | { op: 'prune'; seed: number }
  | { op: 'clear' }
  | { op: 'read'; n: number };

const groupName = fc.constantFrom('g0', 'g1', 'g2', 'g3', 'g4', 'g5', 'g6', 'g7');
const seed = fc.integer({ min: 0, max: 1_000 });
const op: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({ op: fc.constantFrom('set' as const, 'change' as const), group: groupName, seed }),
  },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('delete' as const), group: groupName }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('prune' as const), seed }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('clear' as const) }) },
  {
    weight: 4,
    arbitrary: fc.record({ op: fc.constant('read' as const), n: fc.integer({ min: 1, max: 3 }) }),
  },
);

describe('a view of the groups', () => {
  test.each(Object.keys(containers))(
    '%s: reads what the groups held when it was taken, whatever is done to them meanwhile',
    (name) => {
      fc.assert(
        fc.property(
          fc.array(fc.tuple(groupName, seed), { maxLength: 8 }),
          fc.array(op, { maxLength: 30 }),
          (initial, ops) => {
            const c = (containers[name] as () => Container)();
            for (const [group, s] of initial) c.groups.set(group, c.state(s));
            const expected = structuredClone([...c.groups]);
            const view = c.groups.view()[Symbol.iterator]();
            const read: Array<[string, GroupState]> = [];
            const readOne = (): void => {
              const next = view.next();
              // Encoded as soon as it is handed out, before anything else is done to the groups.
              if (next.done !== true) read.push(structuredClone(next.value));
            };
            for (const o of ops) {
              if (o.op === 'read') for (let k = 0; k < o.n; k++) readOne();
              else if (o.op === 'set') c.groups.set(o.group, c.state(o.seed));
              else if (o.op === 'change') c.change(o.group, o.seed);
              else if (o.op === 'delete') c.groups.delete(o.group);
              else if (o.op === 'clear') c.groups.clear();
              // A housekeeping pass: reads every group, deletes some.
              else
                for (const [group] of c.groups)
                  if ((group.charCodeAt(1) + o.seed) % 3 === 0) c.groups.delete(group);
            }
            for (;;) {
              const before = read.length;
              readOne();
              if (read.length === before) break;
            }
            expect(read).toEqual(expected);
          },
        ),
        { numRuns: 500 },
      );
    },
  );
});
