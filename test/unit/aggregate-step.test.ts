import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { Engine } from '../../src/engine/index.js';
import type { Effect } from '../../src/engine/index.js';
import { AggregateGroups } from '../../src/engine/kinds/aggregate-groups.js';
import type { AggregateState } from '../../src/engine/kinds/aggregate.js';
import { rulesFrom } from './engine-harness.js';

const NO_VALUES: unknown[] = Object.freeze([]) as unknown as unknown[];
const COLUMNS = [true, false];
const MAX_PACKED = 4;

/** A window of `n` entries from `seed`; with running sums when `sums`. */
function windowOf(seed: number, n: number, sums: boolean): AggregateState {
  const st: AggregateState = {
    ats: Array.from({ length: n }, (_, k) => seed + k),
    values: [Array.from({ length: n }, (_, k) => (seed + k) / 4), NO_VALUES],
    start: 0,
  };
  if (sums) st.sums = [[n], null];
  return st;
}

const plain = (st: AggregateState | undefined): unknown => structuredClone(st);

describe('AggregateGroups: a state read for update and set again', () => {
  test('whatever happens to the groups in between, they hold what a Map would', () => {
    const group = fc.constantFrom('a', 'b');
    const between = fc.oneof(
      fc.constant({ op: 'none' as const }),
      fc.record({ op: fc.constant('delete' as const), group }),
      fc.record({
        op: fc.constant('set' as const),
        group,
        seed: fc.nat(100),
        n: fc.nat(8),
        sums: fc.boolean(),
      }),
      fc.record({ op: fc.constant('forUpdate' as const), group }),
    );
    const round = fc.record({
      group,
      between,
      at: fc.nat(1_000),
      start: fc.nat(3),
      sums: fc.boolean(),
    });
    const initial = fc.array(fc.tuple(group, fc.nat(100), fc.nat(8), fc.boolean()), { maxLength: 3 });
    fc.assert(
      fc.property(initial, fc.array(round, { maxLength: 12 }), (init, rounds) => {
        const groups = new AggregateGroups(COLUMNS, NO_VALUES, MAX_PACKED);
        const model = new Map<string, AggregateState>();
        for (const [g, seed, n, sums] of init) {
          groups.set(g, windowOf(seed, n, sums));
          model.set(g, windowOf(seed, n, sums));
        }
        for (const r of rounds) {
          const st = groups.forUpdate(r.group) ?? windowOf(0, 0, false);
          const b = r.between;
          if (b.op === 'delete') {
            groups.delete(b.group);
            model.delete(b.group);
          } else if (b.op === 'set') {
            groups.set(b.group, windowOf(b.seed, b.n, b.sums));
            model.set(b.group, windowOf(b.seed, b.n, b.sums));
          } else if (b.op === 'forUpdate' && b.group !== r.group) {
            // Read for update and set back unchanged.
            const other = groups.forUpdate(b.group);
            if (other !== undefined) groups.set(b.group, other);
          }
          // Changed in place as the kind changes it, then set: the group holds it, whatever happened between.
          st.ats.push(r.at);
          (st.values[0] as number[]).push(r.at / 8);
          st.start = Math.min(r.start, st.ats.length);
          if (r.sums) st.sums = [[r.at], null];
          const expected = plain(st) as AggregateState;
          groups.set(r.group, st);
          model.set(r.group, expected);
          expect(groups.size).toBe(model.size);
          for (const [k, m] of model) expect(plain(groups.get(k))).toEqual(m);
        }
      }),
      { numRuns: 1_000 },
    );
  });
});

const rulesWith = (having: string) =>
  rulesFrom({
    'avg.yaml': `id: avg
when:
  event: reading
  window: 10s
  aggregate:
    avgV: avg(data.v)
    n: count()
    newest: last(data.label)
  having: ${having}
then:
  action: report
  to: [upstream]
  payload: { avgV: avgV, n: n }
`,
  });

interface Reading {
  actor: string;
  stepMs: number;
  v: number;
  label: string | number;
}

function effectsOf(having: string, readings: readonly Reading[]): Effect[] {
  const engine = new Engine(rulesWith(having), { gateway: 'gw-test' });
  const effects: Effect[] = [];
  let at = 0;
  for (const r of readings) {
    at += r.stepMs;
    const data = { v: r.v, label: r.label };
    effects.push(
      ...engine.onEvent({ actor: r.actor, type: 'reading', at, data, source: 'device' }, undefined),
    );
  }
  return effects;
}

describe("an aggregate's having, read from the aggregates alone", () => {
  // Parentheses keep a condition off every fast path: the interpreter judges it with all of `having`'s variables.
  const conditions = fc.oneof(
    fc.tuple(
      fc.constantFrom('avgV', 'n'),
      fc.constantFrom('>', '>=', '<', '<=', '==', '!='),
      fc.integer({ min: -3, max: 12 }),
    ),
  );
  test('decides what the interpreter decides, for every comparison of an aggregate with a number', () => {
    const reading = fc.record({
      actor: fc.constantFrom('d1', 'd2'),
      stepMs: fc.integer({ min: 0, max: 3_000 }),
      v: fc.oneof(fc.integer({ min: -5, max: 15 }), fc.double({ min: -5, max: 15, noNaN: true })),
      label: fc.oneof(fc.constant('x'), fc.integer()),
    });
    let fired = 0;
    fc.assert(
      fc.property(conditions, fc.array(reading, { maxLength: 40 }), ([name, op, k], readings) => {
        const fast = effectsOf(`${name} ${op} ${k}`, readings);
        expect(fast).toEqual(effectsOf(`(${name} ${op} ${k})`, readings));
        fired += fast.length;
      }),
      { numRuns: 300 },
    );
    expect(fired).toBeGreaterThan(0);
  });

  test('a condition on what is not an aggregate (an event field, a string aggregate) is judged as before', () => {
    const readings: Reading[] = [
      { actor: 'd1', stepMs: 0, v: 3, label: 'x' },
      { actor: 'd1', stepMs: 100, v: 9, label: 7 },
      { actor: 'd1', stepMs: 100, v: 1, label: 'x' },
    ];
    // An error names the condition as written: compared without its text.
    const judged = (having: string): unknown[] =>
      effectsOf(having, readings).map((e) => (e.kind === 'error' ? { ...e, message: '' } : e));
    for (const having of ['avgV > 2 && data.v > 2', 'newest > 5', 'avgV > 2 && n >= 2']) {
      expect(judged(having)).toEqual(judged(`(${having})`));
    }
    expect(judged('newest > 5').filter((e) => (e as Effect).kind === 'error')).toHaveLength(2);
    expect(effectsOf('avgV > 2 && data.v > 2', readings).filter((e) => e.kind === 'decide')).not.toEqual([]);
  });
});

describe('a long window, its left entries cut off a block at a time', () => {
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
  // Multiples of 2^-20: their exact sum is a BigInt count of 2^-20, rounded once by Number().
  const SCALE = 2 ** 20;
  const grid = fc.bigInt({ min: -(2n ** 60n), max: 2n ** 60n }).map((k) => Number(k) / SCALE);

  test('gives the aggregates of the window summed afresh, live and restored from a checkpoint anywhere', () => {
    // Readings 0–250 ms apart: windows of about 80 entries, hundreds of them leaving.
    const readings = fc.array(fc.record({ stepMs: fc.integer({ min: 0, max: 250 }), v: grid }), {
      minLength: 200,
      maxLength: 700,
    });
    fc.assert(
      fc.property(readings, fc.nat(), (list, cutAt) => {
        const cut = cutAt % list.length;
        let engine = new Engine(rules, opts);
        const kept: Array<{ at: number; v: number }> = [];
        let at = 0;
        list.forEach((r, i) => {
          if (i === cut) engine = Engine.restore(rules, opts, structuredClone(engine.snapshot()));
          at += r.stepMs;
          const data = { v: r.v };
          const [fired] = engine.onEvent(
            { actor: 'd1', type: 'reading', at, data, source: 'device' },
            undefined,
          );
          kept.push({ at, v: r.v });
          while ((kept[0]?.at ?? at) < at - 10_000) kept.shift();
          const exact = kept.reduce((s, e) => s + BigInt(e.v * SCALE), 0n);
          const vs = kept.map((e) => e.v);
          const payload = fired?.kind === 'decide' ? fired.candidate.action.payload : undefined;
          expect(payload).toEqual({
            total: Number(exact) / SCALE,
            mean: Number(exact) / SCALE / kept.length,
            low: Math.min(...vs),
            high: Math.max(...vs),
            oldest: vs[0],
            newest: r.v,
            n: kept.length,
          });
        });
      }),
      { numRuns: 60 },
    );
  });
});
