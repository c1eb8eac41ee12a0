import { Decoder, Encoder } from 'cbor-x';
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { Engine } from '../../src/engine/index.js';
import type { EngineState } from '../../src/engine/index.js';
import { rulesFrom } from './engine-harness.js';

// The same aggregates twice: over `window: 10s`, whose long windows are kept in rings, and over one named window of
// the same length, which reads its window's arrays (`windows` never uses a ring): both must give the same figures.
const AGGREGATES = `
  aggregate:
    total: sum(data.v)
    mean: avg(data.v)
    low: min(data.v)
    high: max(data.v)
    oldest: first(data.v)
    newest: last(data.label)
    n: count()`;
const rules = rulesFrom({
  'ring.yaml': `id: ring
when:
  event: reading
  window: 10s${AGGREGATES}
then:
  action: report
  to: [upstream]
  payload: { total: total, mean: mean, low: low, high: high, oldest: oldest, newest: newest, n: n }
`,
  'arrays.yaml': `id: arrays
when:
  event: reading
  windows: { w: 10s }${AGGREGATES}
then:
  action: report
  to: [upstream]
  payload: { total: w.total, mean: w.mean, low: w.low, high: w.high, oldest: w.oldest, newest: w.newest, n: w.n }
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
  /** `last(data.label)`: a string keeps the window out of a ring until it has left. */
  label: number | string;
  prune: boolean;
}

const SCALE = 2 ** 20;
const value = fc.oneof(
  fc.bigInt({ min: -(2n ** 60n), max: 2n ** 60n }).map((k) => Number(k) / SCALE),
  // Values of every magnitude: running sums of many partials, and sums that overflow.
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.constantFrom(1.7e308, -1.7e308, 1e-300, 2 ** -1074, 2 ** 53 + 2, 0.1),
);
// Bursts fill a window with hundreds of entries (rings grow); pauses empty it again (rings shrink).
const reading: fc.Arbitrary<Reading> = fc.record({
  actor: fc.constantFrom('d1', 'd2'),
  stepMs: fc.oneof(
    { weight: 40, arbitrary: fc.constantFrom(0, 20, 50) },
    { weight: 1, arbitrary: fc.integer({ min: 2_000, max: 12_000 }) },
  ),
  v: value,
  label: fc.oneof({ weight: 20, arbitrary: fc.integer() }, { weight: 1, arbitrary: fc.constant('x') }),
  prune: fc.boolean().map((b) => b && Math.random() < 0.1),
});

const payloadsOf = (effects: ReturnType<Engine['onEvent']>): Record<string, unknown> => {
  const out: Record<string, unknown> = {};
  for (const e of effects)
    if (e.kind === 'decide') out[e.candidate.action.scenario] = e.candidate.action.payload;
  return out;
};

describe('a window kept in a ring', () => {
  test('gives what the window read from its arrays gives, whatever its values, restored from a checkpoint anywhere', () => {
    let longest = 0;
    fc.assert(
      fc.property(fc.array(reading, { minLength: 300, maxLength: 600 }), fc.nat(), (list, cutAt) => {
        const cut = cutAt % list.length;
        let engine = new Engine(rules, opts);
        const counts = { d1: 0, d2: 0 };
        let at = 0;
        list.forEach((r, i) => {
          if (i === cut) {
            const bytes = encoder.encode(engine.snapshot());
            engine = Engine.restore(rules, opts, decoder.decode(bytes) as EngineState);
          }
          at += r.stepMs;
          if (r.prune) engine.prune(at);
          const data = { v: r.v, label: r.label };
          const payloads = payloadsOf(
            engine.onEvent({ actor: r.actor, type: 'reading', at, data, source: 'device' }, undefined),
          );
          expect(payloads.ring).toBeDefined();
          expect(payloads.ring).toEqual(payloads.arrays);
          counts[r.actor as 'd1' | 'd2'] = (payloads.ring as { n: number }).n;
          longest = Math.max(longest, counts.d1, counts.d2);
        });
        // The state both keep is the same window.
        const groups = (id: string) =>
          engine
            .snapshot()
            .scenarios.find((s) => s.id === id)
            ?.groups.map(([g, s]) => {
              const { ats, values, start = 0 } = s as { ats: number[]; values: unknown[][]; start?: number };
              return [g, ats.slice(start), values.map((col) => col.slice(start))];
            });
        expect(groups('ring')).toEqual(groups('arrays'));
      }),
      { numRuns: 60 },
    );
    // Windows past a ring's first sizes were run.
    expect(longest).toBeGreaterThan(100);
  });

  test("a checkpoint's view holds the windows as they were while the rings go on changing", () => {
    fc.assert(
      fc.property(fc.array(reading, { minLength: 100, maxLength: 300 }), fc.nat(), (list, cutAt) => {
        const cut = 1 + (cutAt % (list.length - 1));
        const engine = new Engine(rules, opts);
        let at = 0;
        const feed = (r: Reading): void => {
          at += r.stepMs;
          if (r.prune) engine.prune(at);
          const data = { v: r.v, label: r.label };
          engine.onEvent({ actor: r.actor, type: 'reading', at, data, source: 'device' }, undefined);
        };
        list.slice(0, cut).forEach(feed);
        const atInstant = engine.snapshot();
        const view = engine.checkpointView();
        list.slice(cut).forEach(feed);
        const read = view.state.scenarios.map((s) => ({ ...s, groups: [...s.groups] }));
        view.release();
        expect(structuredClone(read)).toEqual(atInstant.scenarios);
      }),
      { numRuns: 60 },
    );
  });

  test('a running sum that needs more room than the ring has for part of a step, and fits again by its end, stays exact', () => {
    // Six partials, the most a ring keeps: 2^500 + 2^400 + 2^300 + 2^200 + 2^120 + 2^60, its oldest entry 1. Taking
    // the 1 off leaves 2^60 - 1 as two partials (seven in all) until the step's new 1 makes it 2^60 again.
    const engine = new Engine(rules, opts);
    const entries = [1, 2 ** 500, 2 ** 400, 2 ** 300, 2 ** 200, 2 ** 120, 2 ** 60 - 2 ** 8, 2 ** 8 - 1];
    const totals: unknown[] = [];
    const send = (at: number, v: number): void => {
      const payloads = payloadsOf(
        engine.onEvent(
          { actor: 'd1', type: 'reading', at, data: { v, label: 1 }, source: 'device' },
          undefined,
        ),
      );
      expect(payloads.ring).toEqual(payloads.arrays);
      totals.push((payloads.ring as { total: number }).total);
    };
    // Past the packed size, so the window is in a ring with its running sum.
    entries.forEach((v, k) => send(k === 0 ? 0 : 5_000 + k, v));
    for (let k = 0; k < 12; k++) send(6_000 + k, 0);
    // The 1 leaves (it is 10 s old) as the new 1 comes: then a 0, to read the sum the step left.
    send(10_001, 1);
    send(10_002, 0);
    const exact = 2 ** 500 + 2 ** 400 + 2 ** 300 + 2 ** 200 + 2 ** 120 + 2 ** 60;
    expect(totals.slice(-2)).toEqual([exact, exact]);
    const restored = Engine.restore(
      rules,
      opts,
      decoder.decode(encoder.encode(engine.snapshot())) as EngineState,
    );
    const payloads = payloadsOf(
      restored.onEvent(
        { actor: 'd1', type: 'reading', at: 10_003, data: { v: 0, label: 1 }, source: 'device' },
        undefined,
      ),
    );
    expect(payloads.ring).toEqual(payloads.arrays);
    expect((payloads.ring as { total: number }).total).toBe(exact);
  });
});
