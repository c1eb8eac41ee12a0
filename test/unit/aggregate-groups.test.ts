import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { AggregateGroups } from '../../src/engine/kinds/aggregate-groups.js';
import type { AggregateState } from '../../src/engine/kinds/aggregate.js';

const NO_VALUES: unknown[] = Object.freeze([]) as unknown as unknown[];
// Two aggregates, as hot-average has: avg(data.temp) keeps values, count() does not.
const COLUMNS = [true, false];
const MAX_PACKED = 4;

const value = fc.oneof(
  fc.double({ noNaN: true }),
  fc.integer(),
  fc.constant(-0),
  fc.constant('text'),
  fc.constant(null),
  fc.constant({ a: 1 }),
);
/** States the aggregate kind makes (small windows, some past the packed size) and others a checkpoint may hold. */
const state: fc.Arbitrary<AggregateState> = fc.oneof(
  fc
    .array(fc.tuple(fc.integer({ min: 0, max: 2 ** 45 }), fc.double({ noNaN: true })), { maxLength: 6 })
    .map((rows) => ({
      ats: rows.map(([at]) => at),
      values: [rows.map(([, v]) => (v === 0 ? 0 : v)), NO_VALUES],
      start: 0,
    })),
  fc.array(fc.tuple(fc.integer({ min: 0, max: 2 ** 45 }), value), { maxLength: 6 }).chain((rows) =>
    fc
      .record({
        ats: fc.constant(rows.map(([at]) => at)),
        values: fc.constant<unknown[][]>([rows.map(([, v]) => v), []]),
        start: fc.integer({ min: 0, max: rows.length }),
        sums: fc.option(fc.constant<Array<number[] | null>>([[1.5], null]), { nil: undefined }),
      })
      .map(({ sums, ...rest }): AggregateState => (sums === undefined ? rest : { ...rest, sums })),
  ),
  fc.constant<AggregateState>({ ats: [5], values: [[1], []] }),
);

type Op = { op: 'set'; group: string; st: AggregateState } | { op: 'delete'; group: string };
const group = fc.constantFrom('d1', 'd2', 'd3');
const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ op: fc.constant('set' as const), group, st: state }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('delete' as const), group }) },
);

/** A state as the engine and checkpoints see it: `undefined` members left out, as CBOR leaves them. */
const plain = (st: AggregateState | undefined): unknown =>
  st === undefined
    ? undefined
    : JSON.parse(JSON.stringify(st, (_k, v: unknown) => (Object.is(v, -0) ? '-0' : v)));

describe('AggregateGroups', () => {
  test('reads, writes and iterates like a Map of the plain states, in the same order', () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 40 }), (ops) => {
        const groups = new AggregateGroups(COLUMNS, NO_VALUES, MAX_PACKED);
        const model = new Map<string, AggregateState>();
        for (const o of ops) {
          if (o.op === 'set') {
            groups.set(o.group, o.st);
            model.set(o.group, o.st);
          } else expect(groups.delete(o.group)).toBe(model.delete(o.group));
          expect(groups.size).toBe(model.size);
          expect([...groups.keys()]).toEqual([...model.keys()]);
          for (const g of ['d1', 'd2', 'nobody']) expect(plain(groups.get(g))).toEqual(plain(model.get(g)));
        }
        expect([...groups].map(([g, st]) => [g, plain(st)])).toEqual(
          [...model].map(([g, st]) => [g, plain(st)]),
        );
      }),
      { numRuns: 500 },
    );
  });

  test('a state read for update, changed in place and set again is what changing a copy from get gives', () => {
    // As the aggregate kind changes a window: entries cut off the front, one pushed, running sums perhaps made.
    const change = (st: AggregateState, cut: number, at: number, v: number, sums: boolean): void => {
      const n = Math.min(cut, st.ats.length);
      st.ats.splice(0, n);
      (st.values[0] as unknown[]).splice(0, n);
      st.ats.push(at);
      (st.values[0] as unknown[]).push(v);
      if (sums) st.sums = [[v], null];
    };
    const update = fc.tuple(
      group,
      fc.nat(3),
      fc.integer({ min: 0, max: 2 ** 45 }),
      fc.double(),
      fc.boolean(),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 20 }), fc.array(update, { maxLength: 20 }), (ops, updates) => {
        const groups = new AggregateGroups(COLUMNS, NO_VALUES, MAX_PACKED);
        const model = new Map<string, AggregateState>();
        for (const o of ops) {
          if (o.op === 'delete') {
            groups.delete(o.group);
            model.delete(o.group);
            continue;
          }
          groups.set(o.group, structuredClone(o.st));
          model.set(o.group, structuredClone(o.st));
        }
        for (const [g, cut, at, v, sums] of updates) {
          const st = groups.forUpdate(g);
          const copy = structuredClone(groups.get(g));
          expect(plain(st)).toEqual(plain(copy));
          if (st === undefined || copy === undefined) continue;
          change(st, cut, at, v, sums);
          change(copy, cut, at, v, sums);
          groups.set(g, st);
          model.set(g, copy);
          for (const [k, m] of model) {
            const kept = groups.get(k);
            expect(plain(kept)).toEqual(plain(m));
            expect(Object.keys(kept ?? {})).toEqual(Object.keys(m));
          }
        }
      }),
      { numRuns: 500 },
    );
  });

  test('a small window of numbers comes back as the state it was, its count() column the shared empty one', () => {
    const groups = new AggregateGroups(COLUMNS, NO_VALUES, MAX_PACKED);
    groups.set('d1', { ats: [1, 2, 3], values: [[20.5, 21, -3], NO_VALUES], start: 0 });
    const st = groups.get('d1');
    expect(st).toEqual({ ats: [1, 2, 3], values: [[20.5, 21, -3], []], start: 0 });
    expect(st?.values[1]).toBe(NO_VALUES);
  });
});
