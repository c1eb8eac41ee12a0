import { Encoder } from 'cbor-x';
import { expect, test } from 'vitest';
import { encodeCheckpoint, type CheckpointSource } from '../../src/runtime/index.js';

/** How checkpoints configure cbor-x: each item of a checkpoint is what it writes for `[path, entries]`. */
const cborX = new Encoder({ useRecords: false, mapsAsObjects: true });

function source(lastSeen: Array<[string, number]>, groups: Array<[string, unknown]>): CheckpointSource {
  return {
    version: 1,
    seq: 7,
    at: 1_000,
    engine: {
      version: 1,
      scenarios: [
        { id: 's', fingerprint: 'f', stats: { evaluations: 0, matches: 0, errors: 0 }, groups } as never,
      ],
    },
    arbiter: { version: 2, contact: [], cooldowns: [], active: [] },
    lastSeen,
    duplicates: [],
  };
}

test('each item is, byte for byte, what cbor-x writes for its path and entries, whatever their count', () => {
  for (const count of [1, 23, 24, 255, 256, 65_535, 65_536, 70_000]) {
    const lastSeen = Array.from({ length: count }, (_, i): [string, number] => [`dev-é-${i}`, i * 1.5 - 3]);
    const encoded = encodeCheckpoint(source(lastSeen, []));
    // The header, the first item (the state with its lists empty), then the one item of the list.
    expect(encoded.chunks).toHaveLength(3);
    expect(Buffer.compare(encoded.chunks[2] as Buffer, cborX.encode([['lastSeen'], lastSeen]))).toBe(0);
  }
});

test('an entry the plain writer leaves to cbor-x is written by cbor-x, in its place', () => {
  const groups: Array<[string, unknown]> = [
    ['a', { n: 1, seen: [1, 2] }],
    ['b', { at: new Date(5_000), bytes: new Uint8Array([1, 2, 3]) }],
    ['c', { big: 12n, n: -0 }],
    ['d', { n: 2 }],
  ];
  const encoded = encodeCheckpoint(source([], groups));
  const path = ['engine', 'scenarios', 0, 'groups'];
  expect(Buffer.compare(encoded.chunks[2] as Buffer, cborX.encode([path, groups]))).toBe(0);
});
