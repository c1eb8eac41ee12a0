import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { joinKey, KeyedTimes } from '../../src/actions/keyed-times.js';

const part = fc.constantFrom('actor', 'group', 'device-offline', 'd1', 'd"2', 'd\\3', '', 'é', '[,]');
// Keys as the arbiter writes them (JSON lists of strings), and others a state could hold.
const key = fc.oneof(
  fc.array(part, { minLength: 1, maxLength: 4 }).map((parts) => JSON.stringify(parts)),
  fc.constantFrom('[]', '[ "actor", "d1" ]', '["actor",1]', 'not json', '{"a":"b"}', '"d1"'),
);
const time = fc.integer({ min: 0, max: 2 ** 45 });

describe('KeyedTimes', () => {
  test('holds and gives back every key whole, like a map of the keys', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(key, time, fc.boolean())), time, (writes, cutoff) => {
        const times = new KeyedTimes();
        const model = new Map<string, number>();
        for (const [k, at, latest] of writes) {
          times.setKey(k, at, latest);
          const before = model.get(k);
          model.set(k, latest && before !== undefined ? Math.max(before, at) : at);
        }
        const sorted = (m: Iterable<[string, number]>): Array<[string, number]> =>
          [...m].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
        expect(sorted(times.entries())).toEqual(sorted(model));
        expect(times.size).toBe(model.size);
        expect([...times.times()]).toEqual([...times.entries()].map(([, at]) => at));
        times.prune((at) => at <= cutoff);
        expect(sorted(times.entries())).toEqual(sorted([...model].filter(([, at]) => at > cutoff)));
      }),
      { numRuns: 500 },
    );
  });

  test('a key set by its parts reads back by its parts and whole', () => {
    const times = new KeyedTimes();
    times.set(JSON.stringify(['actor', 'device-offline']), 'd1', 5);
    expect(times.get(JSON.stringify(['actor', 'device-offline']), 'd1')).toBe(5);
    expect([...times.entries()]).toEqual([[JSON.stringify(['actor', 'device-offline', 'd1']), 5]]);
    expect(joinKey('[]', 'x')).toBe('["x"]');
  });
});
