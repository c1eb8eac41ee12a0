import fc from 'fast-check';
import { expect, test } from 'vitest';
import { CheckpointEncoder, encodeCheckpoint, type CheckpointSource } from '../../src/runtime/checkpoint.js';
import { DuplicateFilter, type DuplicateEntry } from '../../src/runtime/duplicate-filter.js';

function source(duplicates: CheckpointSource['duplicates']): CheckpointSource {
  return {
    version: 1,
    seq: 7,
    at: 0,
    engine: { version: 1, scenarios: [] },
    arbiter: {
      version: 1,
      active: [],
      cooldowns: [],
      contacts: [],
    } as unknown as CheckpointSource['arbiter'],
    lastSeen: [],
    duplicates,
  };
}

/** Every chunk of the checkpoint, `perChunk` entries to a chunk. */
function encoded(duplicates: CheckpointSource['duplicates'], perChunk: number): Buffer {
  const encoder = new CheckpointEncoder(source(duplicates), perChunk);
  for (const part of [encoder.engineGroups(), encoder.copies()]) while (part.next().done !== true);
  return Buffer.concat(encoder.finish().chunks);
}

const publishes = fc.array(
  fc.record({
    clientId: fc.oneof(fc.constantFrom('d1', 'd2', '$upstream', 'é-3', '😀'), fc.string({ maxLength: 70 })),
    connection: fc.integer({ min: 0, max: 3 }),
    messageId: fc.integer({ min: 1, max: 0xffff }),
    hash: fc.oneof(
      fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
      fc.integer({ min: 0, max: 2 ** 32 - 1 }),
    ),
    at: fc.oneof(fc.integer({ min: 0, max: 2 ** 45 }), fc.double({ min: 0, max: 2 ** 45, noNaN: true })),
  }),
  { maxLength: 300 },
);

test("a checkpoint writes the filter's compact copy byte for byte as the list of its entries", () => {
  fc.assert(
    fc.property(publishes, fc.integer({ min: 1, max: 50 }), (list, perChunk) => {
      const filter = new DuplicateFilter({ perClient: 40 });
      for (const p of list) filter.remember(p.clientId, p.connection, p.messageId, p.hash, p.at);
      const columns = filter.snapshot();
      const entries: DuplicateEntry[] = [...columns];
      expect(columns).toHaveLength(entries.length);
      expect(encoded(columns, perChunk).equals(encoded(entries, perChunk))).toBe(true);
      expect(Buffer.concat(encodeCheckpoint(source(columns)).chunks)).toEqual(
        Buffer.concat(encodeCheckpoint(source(entries)).chunks),
      );
      // What is remembered, as the filter holds it: every client's publishes, oldest first.
      const expected = new Map<string, DuplicateEntry>();
      for (const p of list) {
        const key = `${p.clientId}\0${p.messageId}\0${p.hash >>> 0}`;
        expected.delete(key);
        expected.set(key, [p.clientId, p.messageId, p.hash, p.at]);
      }
      const byClient = (e: DuplicateEntry[]): string[] => e.map((x) => JSON.stringify(x)).sort();
      expect(byClient(entries)).toEqual(
        byClient(
          [...expected.values()].filter((e, _, all) =>
            all
              .filter((o) => o[0] === e[0])
              .slice(-40)
              .includes(e),
          ),
        ),
      );
    }),
    { numRuns: 200 },
  );
});

test('the copy holds the publishes remembered when it was taken, not those after', () => {
  const filter = new DuplicateFilter();
  filter.remember('d1', 1, 7, 99, 1_000);
  const columns = filter.snapshot();
  filter.remember('d1', 1, 8, 99, 2_000);
  filter.prune(2_000 + 10 * 60_000 - 1_500);
  expect([...columns]).toEqual([['d1', 7, 99, 1_000]]);
  const restored = new DuplicateFilter();
  restored.restore(columns);
  expect(restored.resent('d1', 2, 7, true, 99)).toBeDefined();
  expect(restored.resent('d1', 2, 8, true, 99)).toBeUndefined();
});

test('a client past its limit remembers its latest publishes, each with its own numbers, whatever the order', () => {
  const publish = fc.record({
    client: fc.constantFrom('d1', 'd2'),
    messageId: fc.integer({ min: 1, max: 6 }),
    hash: fc.integer({ min: 0, max: 2 }),
    at: fc.integer({ min: 0, max: 1_000 }),
  });
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 4 }), fc.array(publish, { maxLength: 40 }), (perClient, list) => {
      const filter = new DuplicateFilter({ perClient, sequentialSenders: [] });
      // The reference: per client, the latest `perClient` distinct (id, hash), oldest first.
      const model = new Map<string, Array<[number, number, number]>>();
      for (const p of list) {
        filter.remember(p.client, 0, p.messageId, p.hash, p.at);
        const kept = (model.get(p.client) ?? []).filter(([id, h]) => id !== p.messageId || h !== p.hash);
        kept.push([p.messageId, p.hash, p.at]);
        model.set(p.client, kept.slice(-perClient));
      }
      const remembered = [...filter.snapshot()].map((e) => [e[0], e[1], e[2], e[3]]);
      const expected = [...model].flatMap(([client, kept]) => kept.map(([id, h, at]) => [client, id, h, at]));
      expect(remembered).toEqual(expected);
      // A resend (DUP) of each one remembered is known; of one forgotten, it is not.
      for (const p of list) {
        const known = (model.get(p.client) ?? []).some(([id, h]) => id === p.messageId && h === p.hash);
        expect(filter.resent(p.client, 0, p.messageId, true, p.hash) !== undefined).toBe(known);
      }
    }),
  );
});
