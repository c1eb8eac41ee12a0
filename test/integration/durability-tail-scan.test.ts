import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { encodeRecord, Journal } from '../../src/runtime/index.js';
import type { InputRecord } from '../../src/runtime/journal-records.js';
import { scanTail } from '../../src/runtime/journal-tail.js';
import { tempDir } from '../helpers/temp.js';
import { captureLogs } from './durability-faults.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A journal in a temp dir holding `count` readings of one device, at 1,000 + n (records 1…count). */
async function journalOf(count: number): Promise<Journal> {
  const dir = await tempDir();
  cleanups.push(() => dir.remove());
  const journal = await Journal.open({ dir: join(dir.path, 'journal'), logger: captureLogs().logger });
  cleanups.push(() => journal.close());
  const written: Array<Promise<void>> = [];
  for (let n = 1; n <= count; n++) {
    const event = { actor: 'd1', type: 'reading', at: 1_000 + n, data: { n }, source: 'device' as const };
    journal.append(encodeRecord({ kind: 'event', event }), 'write');
    written.push(journal.recorded());
  }
  await Promise.all(written);
  await journal.close();
  const reopened = await Journal.open({ dir: join(dir.path, 'journal'), logger: captureLogs().logger });
  cleanups.push(() => reopened.close());
  return reopened;
}

describe('the journal tail read once at start', () => {
  test('covers the whole tail: the latest time, the first, whose inputs it holds', async () => {
    const journal = await journalOf(10);
    const scan = await scanTail(journal.readChunks(3));
    expect(scan.latestAt).toBe(1_010);
    expect(scan.firstAt).toBe(1_004);
    expect([...scan.actors]).toEqual(['d1']);
    expect(scan.origins).toEqual([]);
  });

  test('a tail read from the start has the time of its first records', async () => {
    const journal = await journalOf(10);
    const scan = await scanTail(journal.readChunks(0));
    expect(scan.firstAt).toBe(1_001);
  });

  test('the QoS 1 publishes it holds are those the records decode to, without decoding the events', async () => {
    const dir = await tempDir();
    cleanups.push(() => dir.remove());
    const path = join(dir.path, 'journal');
    const written = await Journal.open({ dir: path, logger: captureLogs().logger });
    const records: InputRecord[] = [
      { kind: 'event', event: { actor: 'd1', type: 't', at: 5, data: {}, source: 'device' } },
      {
        kind: 'event',
        event: { actor: 'd2', type: 't', at: 1_796_000_000_123, data: { n: [1, 'x'] }, source: 'device' },
        origin: { clientId: 'd2', messageId: 7, hash: 0xfedcba98 },
      },
      {
        kind: 'event',
        event: { actor: 'dé', type: 't', at: 9, data: {}, source: 'device', deviceAt: 3 },
        origin: { clientId: 'dé', messageId: 65_535, hash: 1 },
      },
      { kind: 'timer', timer: 'offline:d3', at: 12, actor: 'd3' },
    ];
    for (const record of records) written.append(encodeRecord(record), 'write');
    await written.recorded();
    await written.close();
    const journal = await Journal.open({ dir: path, logger: captureLogs().logger });
    cleanups.push(() => journal.close());
    const scan = await scanTail(journal.readChunks(0));
    expect(scan.origins).toEqual([
      { origin: { clientId: 'd2', messageId: 7, hash: 0xfedcba98 }, at: 1_796_000_000_123 },
      { origin: { clientId: 'dé', messageId: 65_535, hash: 1 }, at: 9 },
    ]);
    expect(scan.latestAt).toBe(1_796_000_000_123);
    expect([...scan.actors].sort()).toEqual(['d1', 'd2', 'd3', 'dé']);
  });
});
