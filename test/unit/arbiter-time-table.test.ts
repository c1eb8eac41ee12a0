import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { TimeTable } from '../../src/actions/time-table.js';

// Device ids and the like: ASCII, other scripts, pairs and lone surrogates, empty.
const key = fc.oneof(
  fc.constantFrom('', 'd1', 'é', 'ü-7', '😀', '\ud800', '\udc00', '\ud800x', 'churn-0', 'churn-00'),
  fc.string({ unit: 'binary', maxLength: 6 }),
  fc.nat(300).map((n) => `churn-${n}`),
);
const time = fc.integer({ min: 0, max: 2 ** 45 });
const op = fc.oneof(
  { weight: 8, arbitrary: fc.record({ set: key, at: time }) },
  { weight: 1, arbitrary: fc.record({ pruneUpTo: time }) },
);

describe('TimeTable', () => {
  test('keeps, gives back and prunes like a map, in the map’s order', () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 400 }), (ops) => {
        const table = new TimeTable();
        const model = new Map<string, number>();
        for (const o of ops) {
          if ('set' in o) {
            table.set(o.set, o.at);
            model.set(o.set, o.at);
          } else {
            table.prune((at) => at <= o.pruneUpTo);
            for (const [k, at] of model) if (at <= o.pruneUpTo) model.delete(k);
          }
          expect(table.size).toBe(model.size);
        }
        for (const [k, at] of model) expect(table.get(k)).toBe(at);
        expect(table.get('never set')).toBeUndefined();
        // Keys that are well-formed UTF-16 in the order first set; the others after them, in theirs.
        const lone = (k: string): boolean => /\p{Cs}/u.test(k);
        const expected = [...model].filter(([k]) => !lone(k)).concat([...model].filter(([k]) => lone(k)));
        expect([...table.entries()]).toEqual(expected);
      }),
      { numRuns: 300 },
    );
  });

  test('grows to many entries and gives their room back once pruned', () => {
    const table = new TimeTable();
    for (let i = 0; i < 100_000; i++) table.set(`churn-${i}`, i);
    expect(table.size).toBe(100_000);
    expect(table.get('churn-99999')).toBe(99_999);
    table.prune((at) => at < 99_990);
    expect(table.size).toBe(10);
    expect([...table.entries()].map(([k]) => k)).toEqual(
      Array.from({ length: 10 }, (_, i) => `churn-${99_990 + i}`),
    );
    expect(table.get('churn-5')).toBeUndefined();
    table.set('churn-5', 1);
    expect(table.get('churn-5')).toBe(1);
    expect(table.size).toBe(11);
  });
});
