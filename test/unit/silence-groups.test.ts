import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { SilenceGroups } from '../../src/engine/kinds/silence-groups.js';
import type { SilenceState } from '../../src/engine/kinds/silence.js';
import { timerKey } from '../../src/engine/step.js';
import type { Scenario } from '../../src/rules/types.js';

const group = fc.constantFrom('d1', 'd2', 'd3', 'site-1', 'a-device-id-longer-than-thirteen');
const state: fc.Arbitrary<SilenceState> = fc
  .record({
    dueAt: fc.double({ noNaN: true, min: 0, max: 1e15 }),
    actor: fc.constantFrom('d1', 'd2', 'd9'),
    type: fc.constantFrom('telemetry', 'heartbeat', 'connected'),
    at: fc.integer({ min: 0, max: 2 ** 50 }),
    source: fc.constantFrom('device' as const, 'broker' as const, 'cloud' as const),
    data: fc.option(fc.dictionary(fc.constantFrom('temp', 'bat'), fc.integer()), { nil: undefined }),
  })
  .map(({ dueAt, actor, type, at, source, data }) => ({
    dueAt,
    last: { actor, type, at, source, ...(data !== undefined ? { data } : {}) },
  }));

type Op = { op: 'set'; group: string; st: SilenceState } | { op: 'delete'; group: string } | { op: 'clear' };
const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ op: fc.constant('set' as const), group, st: state }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('delete' as const), group }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('clear' as const) }) },
);

describe('SilenceGroups', () => {
  test('reads, writes and iterates like a Map of the plain states, in the same order', () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 80 }), (ops) => {
        const groups = new SilenceGroups();
        const model = new Map<string, SilenceState>();
        for (const o of ops) {
          if (o.op === 'set') {
            groups.set(o.group, o.st);
            model.set(o.group, structuredClone(o.st));
          } else if (o.op === 'delete') expect(groups.delete(o.group)).toBe(model.delete(o.group));
          else {
            groups.clear();
            model.clear();
          }
          expect(groups.size).toBe(model.size);
          expect([...groups]).toEqual([...model]);
          for (const g of ['d1', 'd2', 'nobody']) {
            expect(groups.get(g)).toEqual(model.get(g));
            expect(groups.has(g)).toBe(model.has(g));
          }
        }
        expect([...groups.keys()]).toEqual([...model.keys()]);
        expect([...groups.values()]).toEqual([...model.values()]);
        expect(structuredClone([...groups.entries()])).toEqual([...model.entries()]);
      }),
      { numRuns: 300 },
    );
  });

  test('gives back its room once most groups have gone, in the same order, a checkpoint view read as it was', () => {
    type ChurnOp =
      | { op: 'burst'; from: number; n: number; seed: number }
      | { op: 'drop'; from: number; n: number }
      | { op: 'view' }
      | { op: 'read' };
    const churnOp: fc.Arbitrary<ChurnOp> = fc.oneof(
      {
        weight: 3,
        arbitrary: fc.record({
          op: fc.constant('burst' as const),
          from: fc.integer({ min: 0, max: 1_000 }),
          n: fc.integer({ min: 1, max: 400 }),
          seed: fc.integer({ min: 0, max: 1_000 }),
        }),
      },
      {
        weight: 3,
        arbitrary: fc.record({
          op: fc.constant('drop' as const),
          from: fc.integer({ min: 0, max: 1_000 }),
          n: fc.integer({ min: 1, max: 1_400 }),
        }),
      },
      { weight: 1, arbitrary: fc.constant({ op: 'view' as const }) },
      { weight: 1, arbitrary: fc.constant({ op: 'read' as const }) },
    );
    const st = (i: number, seed: number): SilenceState => ({
      dueAt: 1e12 + i + seed,
      last: {
        actor: `d${i}`,
        type: seed % 2 === 0 ? 'telemetry' : 'heartbeat',
        at: seed,
        source: 'device',
        ...(seed % 3 === 0 ? { data: { temp: seed } } : {}),
      },
    });
    fc.assert(
      fc.property(fc.array(churnOp, { maxLength: 25 }), (ops) => {
        const groups = new SilenceGroups();
        const model = new Map<string, SilenceState>();
        let view: { read: () => unknown[]; then: unknown[] } | undefined;
        for (const o of ops) {
          if (o.op === 'burst') {
            for (let i = o.from; i < o.from + o.n; i++) {
              groups.set(`g${i}`, st(i, o.seed));
              model.set(`g${i}`, st(i, o.seed));
            }
          } else if (o.op === 'drop') {
            let deleted = false;
            for (let i = o.from; i < o.from + o.n; i++) {
              const gone = groups.delete(`g${i}`);
              expect(gone).toBe(model.delete(`g${i}`));
              deleted ||= gone;
            }
            if (deleted && view === undefined)
              expect(groups.capacity).toBeLessThanOrEqual(Math.max(64, groups.size * 4));
          } else if (o.op === 'view' && view === undefined) {
            const v = groups.view();
            view = { read: () => [...v], then: structuredClone([...model]) };
          } else if (o.op === 'read' && view !== undefined) {
            expect(structuredClone(view.read())).toEqual(view.then);
            view = undefined;
          }
          expect(groups.size).toBe(model.size);
        }
        if (view !== undefined) expect(structuredClone(view.read())).toEqual(view.then);
        expect(structuredClone([...groups])).toEqual([...model]);
      }),
      { numRuns: 150 },
    );
  });

  test('grows past its first capacity and reuses the slots of deleted groups', () => {
    const groups = new SilenceGroups();
    const st = (i: number): SilenceState => ({
      dueAt: 1e12 + i,
      last: { actor: `d${i}`, type: 'telemetry', at: i, source: 'device' },
    });
    for (let i = 0; i < 1_000; i++) groups.set(`d${i}`, st(i));
    for (let i = 0; i < 1_000; i += 2) groups.delete(`d${i}`);
    for (let i = 1_000; i < 1_500; i++) groups.set(`d${i}`, st(i));
    expect(groups.size).toBe(1_000);
    expect(groups.get('d999')).toEqual(st(999));
    expect(groups.get('d1499')).toEqual(st(1_499));
    expect(groups.get('d0')).toBeUndefined();
  });

  test('restart hands out the timer key made for its group, as timerKey makes it, through deletes and reused slots', () => {
    const scenarios = [{ id: 'device-offline' }, { id: 'quiet' }] as Scenario[];
    const restart = fc.record({
      op: fc.constant('restart' as const),
      group,
      actor: fc.constantFrom('d1', 'd2', 'd9'),
      at: fc.integer({ min: 0, max: 2 ** 40 }),
    });
    fc.assert(
      fc.property(
        fc.array(fc.oneof({ weight: 4, arbitrary: restart }, { weight: 3, arbitrary: op }), {
          maxLength: 80,
        }),
        fc.constantFrom(...scenarios),
        (ops, sc) => {
          const groups = new SilenceGroups();
          for (const o of ops) {
            if (o.op === 'restart') {
              const ev = { actor: o.actor, type: 'telemetry', at: o.at, data: {}, source: 'device' as const };
              // The old way: a key made for every event.
              expect(groups.restart(o.group, o.at + 300_000, ev, false, sc)).toBe(timerKey(sc, o.group));
              expect(groups.get(o.group)?.dueAt).toBe(o.at + 300_000);
            } else if (o.op === 'set') groups.set(o.group, o.st);
            else if (o.op === 'delete') groups.delete(o.group);
            else groups.clear();
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});
