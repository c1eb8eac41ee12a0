import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import {
  decodeRecord,
  encodeRecord,
  encodeRecordInPlace,
  type InputRecord,
} from '../../src/runtime/index.js';

/** The in-place encoding, copied out (the next encoding overwrites it). */
function inPlace(record: InputRecord): Buffer {
  const { bytes, start, end } = encodeRecordInPlace(record);
  return Buffer.from(bytes.subarray(start, end));
}

// Numbers at the edges of each CBOR width, and beyond 32 bits (written as doubles, as cbor-x writes them).
const edgeNumber = fc.constantFrom(
  0,
  -0,
  23,
  24,
  255,
  256,
  65_535,
  65_536,
  2 ** 31 - 1,
  2 ** 31,
  2 ** 32 - 1,
  2 ** 32,
  -1,
  -24,
  -25,
  -256,
  -257,
  -65_536,
  -65_537,
  -(2 ** 31),
  -(2 ** 31) - 1,
  -(2 ** 32),
  -(2 ** 32) - 1,
  1.5,
  -0.1,
  1_764_150_000_123,
  Number.MAX_SAFE_INTEGER,
  Number.MAX_VALUE,
  Number.EPSILON,
);
// Strings of every length class, with multi-byte characters, surrogate pairs and lone surrogates.
const text = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.string({ unit: 'grapheme', maxLength: 70 }),
  fc.string({ unit: fc.constantFrom('a', 'é', '€', '😀', '\ud800', '\udc00'), maxLength: 120 }),
  fc.string({ minLength: 60, maxLength: 400 }),
);
const { data } = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    text,
    fc.double(),
    fc.integer({ min: -(2 ** 33), max: 2 ** 33 }),
    edgeNumber,
    fc.boolean(),
    fc.constant(null),
    fc.constant(undefined),
    fc.array(tie('value'), { maxLength: 30 }),
    tie('data'),
  ),
  data: fc.dictionary(text, tie('value'), { maxKeys: 30 }),
}));

const eventRecord = fc.record({
  actor: text,
  type: text,
  at: fc.oneof(edgeNumber, fc.double({ min: 0, max: 4e12, noNaN: true })),
  data,
  source: fc.constantFrom('device', 'broker', 'cloud', 'engine' as const),
  deviceAt: fc.option(fc.oneof(edgeNumber, fc.double()), { nil: undefined }),
  origin: fc.option(
    fc.record({
      clientId: text,
      messageId: fc.integer({ min: 1, max: 65_535 }),
      hash: fc.integer({ min: 0, max: 2 ** 32 - 1 }),
    }),
    { nil: undefined },
  ),
});

describe('journal records encoded in place', () => {
  test('an event is the same bytes cbor-x writes for it', () => {
    fc.assert(
      fc.property(eventRecord, ({ origin, deviceAt, ...event }) => {
        const record: InputRecord = {
          kind: 'event',
          event: deviceAt === undefined ? event : { ...event, deviceAt },
          ...(origin ? { origin } : {}),
        };
        expect(inPlace(record).equals(encodeRecord(record))).toBe(true);
      }),
      { numRuns: 400 },
    );
  });

  test('the other kinds of record are the same bytes cbor-x writes for them', () => {
    const records: InputRecord[] = [
      { kind: 'timer', timer: 'device-offline:dev-1', at: 1_764_150_000_123, actor: undefined },
      { kind: 'prune', at: 5, forget: ['a', 'b'] },
      { kind: 'prune', at: 5 },
      { kind: 'clock', at: 10, offsetMs: -5.5, synced: true, stepMs: 3 },
      {
        kind: 'profiles',
        at: 1,
        changes: [{ id: 'c1', before: null, after: { site: 's', limits: { max: 2 ** 40 }, tags: ['x'] } }],
      },
      {
        kind: 'rules',
        at: 7,
        rules: {
          source: 'dir',
          version: 0,
          hash: 'h'.repeat(64),
          files: [{ path: 'a.yaml', text: 'é'.repeat(50_000) }],
        },
      },
      {
        kind: 'emitted',
        input: {
          id: 'x',
          event: { actor: 'c', type: 't', at: 3, data: { n: -1e-9 }, source: 'engine' },
          depth: 1,
        },
      },
    ];
    for (const record of records) expect(inPlace(record).equals(encodeRecord(record))).toBe(true);
  });

  test('data it leaves to cbor-x (a date, bytes, a bigint, a class) still comes out as cbor-x writes it', () => {
    class Reading {
      constructor(readonly value: number) {}
    }
    for (const value of [new Date(5), Buffer.from([1, 2]), 2n ** 70n, new Reading(3), { constructor: 1 }]) {
      const record: InputRecord = {
        kind: 'event',
        event: { actor: 'd', type: 't', at: 1, data: { before: 'x'.repeat(100), value }, source: 'device' },
      };
      expect(inPlace(record).equals(encodeRecord(record))).toBe(true);
    }
    // And the next record, written in place again, is whole.
    const next: InputRecord = {
      kind: 'event',
      event: { actor: 'd', type: 't', at: 2, data: {}, source: 'device' },
    };
    expect(decodeRecord(inPlace(next))).toEqual(next);
  });
});
