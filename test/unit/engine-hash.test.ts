import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { canonicalJson, fnv1a64, fnv1a64Reference } from '../../src/shared/hash.js';

describe('fnv1a64', () => {
  test('matches the published FNV-1a 64 test vectors', () => {
    expect(fnv1a64('')).toBe('cbf29ce484222325');
    expect(fnv1a64('a')).toBe('af63dc4c8601ec8c');
    expect(fnv1a64('foobar')).toBe('85944171f73967e8');
  });

  test('agrees with the BigInt reference on any text', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 200 }), (s) => {
        expect(fnv1a64(s)).toBe(fnv1a64Reference(s));
      }),
      { numRuns: 2_000 },
    );
  });
});

describe('canonicalJson', () => {
  test('is independent of key order at every level and writes bigints as numbers', () => {
    expect(canonicalJson({ b: 1, a: { d: [1, { y: 2, x: 1n }], c: null } })).toBe(
      '{"a":{"c":null,"d":[1,{"x":1,"y":2}]},"b":1}',
    );
    expect(
      canonicalJson(
        new Map([
          ['b', 1],
          ['a', 2],
        ]),
      ),
    ).toBe('{"a":2,"b":1}');
    expect(canonicalJson({ u: undefined, n: Number.NaN })).toBe('{"n":null,"u":null}');
  });
});

test('canonicalJson orders keys as sort() does, and writes what JSON.stringify writes of them', () => {
  // The text every action id and emitted event id is hashed from: it must not change.
  const reference = (value: unknown): string => {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return canonicalJson(value);
    const rec = value as Record<string, unknown>;
    const keys = Object.keys(rec).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${reference(rec[k])}`).join(',')}}`;
  };
  fc.assert(
    fc.property(fc.dictionary(fc.string({ unit: 'binary' }), fc.jsonValue(), { maxKeys: 12 }), (rec) => {
      expect(canonicalJson(rec)).toBe(reference(rec));
    }),
    { numRuns: 1_000 },
  );
});
