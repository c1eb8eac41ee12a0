import { Decoder, Encoder } from 'cbor-x';
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { Engine } from '../../src/engine/index.js';
import type { Effect, EngineState } from '../../src/engine/index.js';
import { SMALL_WINDOW, type AggregateState } from '../../src/engine/kinds/aggregate.js';
import { addExact, exactPartials, exactSum, exactTotal } from '../../src/engine/kinds/exact-sum.js';
import { rulesFrom } from './engine-harness.js';

const WINDOW_MS = 10_000;
const rules = rulesFrom({
  'window.yaml': `id: window
when:
  event: reading
  window: 10s
  aggregate:
    total: sum(data.v)
    mean: avg(data.v)
    low: min(data.v)
    high: max(data.v)
    oldest: first(data.v)
    newest: last(data.v)
    n: count()
then:
  action: report
  to: [upstream]
  payload: { total: total, mean: mean, low: low, high: high, oldest: oldest, newest: newest, n: n }
`,
});
const opts = { gateway: 'gw-test' };
// As checkpoints are written (src/runtime/checkpoint.ts).
const encoder = new Encoder({ useRecords: false, mapsAsObjects: true });
const decoder = new Decoder({ useRecords: false, mapsAsObjects: true });

interface Reading {
  actor: string;
  stepMs: number;
  v: number;
}

function feed(
  engine: Engine,
  readings: readonly Reading[],
  atStart: number,
): { effects: Effect[]; at: number } {
  const effects: Effect[] = [];
  let at = atStart;
  for (const r of readings) {
    at += r.stepMs;
    const ev = { actor: r.actor, type: 'reading', at, data: { v: r.v }, source: 'device' as const };
    effects.push(...engine.onEvent(ev, undefined));
  }
  return { effects, at };
}

const ev = (actor: string, at: number) => ({ actor, type: 'reading', at, source: 'device' as const });

/** Through a checkpoint's bytes and back. */
function throughCheckpoint(state: EngineState): EngineState {
  return decoder.decode(encoder.encode(state)) as EngineState;
}

/** The state as checkpoints held it before running sums: the window's entries only, nothing else. */
function asBefore(state: EngineState): EngineState {
  for (const sc of state.scenarios) {
    sc.groups = sc.groups.map(([group, s]) => {
      const { ats, values, start = 0 } = s as AggregateState;
      return [group, { ats: ats.slice(start), values: values.map((col) => col.slice(start)) }];
    });
  }
  return state;
}

const reading = (v: fc.Arbitrary<number>): fc.Arbitrary<Reading> =>
  fc.record({ actor: fc.constantFrom('d1', 'd2'), stepMs: fc.integer({ min: 0, max: 1_500 }), v });

function liveAgainstRestored(
  readings: Reading[],
  cut: number,
  restore: (s: EngineState) => EngineState,
): void {
  const live = new Engine(rules, opts);
  const whole = feed(live, readings, 0).effects;
  const first = new Engine(rules, opts);
  const before = feed(first, readings.slice(0, cut), 0);
  const restored = Engine.restore(rules, opts, restore(first.snapshot()));
  const after = feed(restored, readings.slice(cut), before.at).effects;
  expect([...before.effects, ...after]).toEqual(whole);
}

describe('aggregate windows with running sums', () => {
  test('a restore from a checkpoint mid-run decides exactly what the live run decides', () => {
    const anyDouble = fc.double({ noNaN: true, noDefaultInfinity: true });
    const readings = fc.array(reading(anyDouble), { minLength: 1, maxLength: 200 });
    fc.assert(
      fc.property(readings, fc.nat(), (list, k) =>
        liveAgainstRestored(list, k % (list.length + 1), throughCheckpoint),
      ),
      { numRuns: 300 },
    );
  });

  test('a checkpoint written before running sums restores to the same results', () => {
    // Within ±1e300 a window of this size cannot overflow while it is summed afresh.
    const big = fc.double({ noNaN: true, min: -1e300, max: 1e300 });
    const readings = fc.array(reading(big), { minLength: 1, maxLength: 200 });
    fc.assert(
      fc.property(readings, fc.nat(), (list, k) =>
        liveAgainstRestored(list, k % (list.length + 1), (s) => asBefore(throughCheckpoint(s))),
      ),
      { numRuns: 300 },
    );
  });

  test('sum and avg are the exact sum of the window, rounded once', () => {
    // Multiples of 2^-20 up to 2^40: their exact sum is a BigInt count of 2^-20, rounded once by Number().
    const SCALE = 2 ** 20;
    const grid = fc.bigInt({ min: -(2n ** 60n), max: 2n ** 60n }).map((k) => Number(k) / SCALE);
    const readings = fc.array(reading(grid), { minLength: 1, maxLength: 150 });
    fc.assert(
      fc.property(readings, (list) => {
        const engine = new Engine(rules, opts);
        const window = new Map<string, Array<{ at: number; v: number }>>();
        let at = 0;
        for (const r of list) {
          at += r.stepMs;
          const ev = { actor: r.actor, type: 'reading', at, data: { v: r.v }, source: 'device' as const };
          const [fired] = engine.onEvent(ev, undefined);
          const kept = [...(window.get(r.actor) ?? []), { at, v: r.v }].filter((e) => e.at >= at - WINDOW_MS);
          window.set(r.actor, kept);
          const exact = kept.reduce((s, e) => s + BigInt(e.v * SCALE), 0n);
          const payload = fired?.kind === 'decide' ? fired.candidate.action.payload : undefined;
          expect(payload).toMatchObject({ total: Number(exact) / SCALE, n: kept.length });
          expect(payload).toMatchObject({ mean: Number(exact) / SCALE / kept.length });
          expect(payload).toMatchObject({ oldest: kept[0]?.v, newest: r.v });
        }
      }),
      { numRuns: 200 },
    );
  });

  test('a window that grows past the small size and shrinks back stays exact, live or restored', () => {
    // Bursts (many readings at once) fill the window past SMALL_WINDOW; pauses empty it again.
    const SCALE = 2 ** 20;
    const grid = fc.bigInt({ min: -(2n ** 60n), max: 2n ** 60n }).map((k) => Number(k) / SCALE);
    const bursty = fc.record({
      actor: fc.constant('d1'),
      stepMs: fc.oneof(fc.constant(0), fc.constant(100), fc.integer({ min: 2_000, max: 12_000 })),
      v: grid,
    });
    const readings = fc.array(bursty, { minLength: SMALL_WINDOW, maxLength: 120 });
    fc.assert(
      fc.property(readings, fc.nat(), (list, k) => {
        liveAgainstRestored(list, k % (list.length + 1), throughCheckpoint);
        const engine = new Engine(rules, opts);
        const kept: Array<{ at: number; v: number }> = [];
        let at = 0;
        for (const r of list) {
          at += r.stepMs;
          const [fired] = engine.onEvent({ ...ev(r.actor, at), data: { v: r.v } }, undefined);
          kept.push({ at, v: r.v });
          while ((kept[0]?.at ?? at) < at - WINDOW_MS) kept.shift();
          const exact = kept.reduce((s, e) => s + BigInt(e.v * SCALE), 0n);
          const payload = fired?.kind === 'decide' ? fired.candidate.action.payload : undefined;
          expect(payload).toMatchObject({ total: Number(exact) / SCALE, n: kept.length });
          const st = engine.snapshot().scenarios[0]?.groups[0]?.[1] as AggregateState;
          // A small window holds its entries and nothing else (nothing that has left it).
          if (kept.length <= SMALL_WINDOW) expect([st.ats.length, st.start]).toEqual([kept.length, 0]);
        }
      }),
      { numRuns: 200 },
    );
  });

  test('a running sum does not depend on the order values came and went in', () => {
    const values = fc.array(fc.double({ noNaN: true, min: -1e300, max: 1e300 }), {
      minLength: 1,
      maxLength: 60,
    });
    fc.assert(
      fc.property(values, values, (kept, gone) => {
        // Every value of `gone` added and taken away again, interleaved with `kept`, against `kept` alone.
        const churned: number[] = [];
        gone.forEach((g, i) => {
          addExact(churned, g);
          if (i < kept.length) addExact(churned, kept[i] as number);
        });
        for (const g of gone) addExact(churned, -g);
        for (const v of kept.slice(gone.length)) addExact(churned, v);
        const plain: number[] = [];
        for (const v of [...kept].reverse()) addExact(plain, v);
        expect(exactTotal(churned)).toBe(exactTotal(plain));
      }),
      { numRuns: 500 },
    );
  });
});

test('a small window summed in the reused buffer gives what its partials give, overflow included', () => {
  const values = fc.array(
    fc.oneof(fc.double({ noNaN: true, noDefaultInfinity: true }), fc.constant(1.7e308)),
    {
      maxLength: 20,
    },
  );
  fc.assert(
    fc.property(values, fc.nat(), (list, k) => {
      const from = k % (list.length + 1);
      const partials = exactPartials(list, from);
      expect(exactSum(list, from)).toBe(partials === undefined ? undefined : exactTotal(partials));
    }),
    { numRuns: 2_000 },
  );
});

test("what a firing hands on keeps its event's figures after the engine takes the next events", () => {
  // The aggregates, `having`'s variables and `last` are reused from event to event inside the engine.
  const engine = new Engine(
    rulesFrom({
      'hot.yaml': `id: hot
when:
  event: reading
  window: 10s
  aggregate:
    mean: avg(data.v)
    n: count()
  having: mean > 1 && n >= 1
then:
  action: report
  to: [upstream]
  payload: { mean: mean, n: n, at: last.at, v: last.data.v }
  forward: aggregates
`,
    }),
    opts,
  );
  const first = feed(engine, [{ actor: 'd1', stepMs: 1, v: 4 }], 0).effects;
  feed(
    engine,
    [
      { actor: 'd1', stepMs: 1, v: 8 },
      { actor: 'd2', stepMs: 1, v: 0 },
    ],
    1,
  );
  const decided = first.find((e) => e.kind === 'decide');
  const forwarded = first.find((e) => e.kind === 'forward');
  expect(decided?.kind === 'decide' && decided.candidate.action.payload).toEqual({
    mean: 4,
    n: 1,
    at: 1,
    v: 4,
  });
  expect(forwarded?.kind === 'forward' && forwarded.telemetry.data).toEqual({ mean: 4, n: 1 });
});
