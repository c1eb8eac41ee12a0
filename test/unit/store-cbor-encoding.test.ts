import { Encoder } from 'cbor-x';
import fc from 'fast-check';
import { expect, test } from 'vitest';
import { decodeCbor, encodeCbor } from '../../src/store/index.js';

// cbor-x as the store configured it before: what is on disk.
const cborX = new Encoder({ useRecords: false, mapsAsObjects: true });

// Numbers at the edges of each CBOR width, beyond 32 bits, and fractions.
const edgeNumber = fc.constantFrom(
  0,
  -0,
  23,
  24,
  255,
  256,
  65_535,
  65_536,
  2 ** 32 - 1,
  2 ** 32,
  -1,
  -24,
  -25,
  -(2 ** 32),
  -(2 ** 32) - 1,
  1.5,
  -0.1,
  1_764_150_000_123,
  Number.MAX_VALUE,
  Number.NaN,
  Number.POSITIVE_INFINITY,
);
// Strings of every length class, with multi-byte characters, surrogate pairs and lone surrogates.
const text = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.string({ unit: fc.constantFrom('a', 'é', '€', '😀', '\ud800', '\udc00'), maxLength: 120 }),
  fc.string({ minLength: 60, maxLength: 300 }),
);
const { value } = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    text,
    fc.double(),
    fc.integer({ min: -(2 ** 33), max: 2 ** 33 }),
    edgeNumber,
    fc.boolean(),
    fc.constant(null),
    fc.constant(undefined),
    // Left to cbor-x wherever they are.
    fc.constantFrom(Buffer.from([1, 2, 3]), new Date(1_764_150_000_123), 2n ** 70n),
    fc.array(tie('value'), { maxLength: 20 }),
    tie('object'),
  ),
  object: fc.dictionary(text, tie('value'), { maxKeys: 20 }),
}));

test("every value is stored as the bytes cbor-x wrote for it, and read back as cbor-x's", () => {
  fc.assert(
    fc.property(value, (v) => {
      const bytes = encodeCbor(v);
      expect(bytes.equals(cborX.encode(v))).toBe(true);
      expect(decodeCbor(bytes)).toEqual(cborX.decode(cborX.encode(v)));
    }),
    { numRuns: 1_000 },
  );
});

test('an action and an outbox entry are the bytes cbor-x wrote for them, each in a buffer of its own', () => {
  const action = {
    id: 'a1b2c3d4e5f60718',
    scenario: 'hot-average',
    actor: 'dev-417',
    decidedAt: 1_764_150_000_123,
    priority: 'high',
    to: ['cloud', 'device'],
    payload: { average: 31.25, samples: 12, unit: '°C', message: 'x'.repeat(80) },
    expiresAt: undefined,
  };
  const first = encodeCbor(action);
  const second = encodeCbor({ ...action, id: 'other' });
  expect(first.equals(cborX.encode(action))).toBe(true);
  expect(decodeCbor(first)).toEqual(action);
  expect(second.equals(cborX.encode({ ...action, id: 'other' }))).toBe(true);
});
