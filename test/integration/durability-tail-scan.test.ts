import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { encodeRecord, Journal } from '../../src/runtime/index.js';
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
  test('keeps its first records decoded up to the bound and says where the rest begins', async () => {
    const journal = await journalOf(10);
    const scan = await scanTail(journal.read(3), 3, { maxRecords: 4, maxBytes: 1_000_000 });
    expect(scan.kept.records.map((r) => r.seq)).toEqual([4, 5, 6, 7]);
    expect(scan.kept.records.map((r) => r.input?.kind === 'event' && r.input.event.at)).toEqual([
      1_004, 1_005, 1_006, 1_007,
    ]);
    expect(scan.kept).toMatchObject({ throughSeq: 7, complete: false });
    // The scan itself still covers the whole tail.
    expect(scan.latestAt).toBe(1_010);
    const rest = [];
    for await (const { seq } of journal.read(scan.kept.throughSeq)) rest.push(seq);
    expect(rest).toEqual([8, 9, 10]);
  });

  test('a bound in bytes stops keeping before the record that crosses it', async () => {
    const journal = await journalOf(10);
    const sizes: number[] = [];
    for await (const { payload } of journal.read(0)) sizes.push(payload.length);
    const twoAndAHalf = (sizes[0] ?? 0) + (sizes[1] ?? 0) + Math.floor((sizes[2] ?? 0) / 2);
    const scan = await scanTail(journal.read(0), 0, { maxRecords: 100, maxBytes: twoAndAHalf });
    expect(scan.kept.records.map((r) => r.seq)).toEqual([1, 2]);
    expect(scan.kept).toMatchObject({ throughSeq: 2, complete: false });
  });

  test('a tail within the bound is kept whole, with the time of its first records', async () => {
    const journal = await journalOf(10);
    const scan = await scanTail(journal.read(0), 0, { maxRecords: 10, maxBytes: 1_000_000 });
    expect(scan.kept.records).toHaveLength(10);
    expect(scan.kept).toMatchObject({ throughSeq: 10, complete: true });
    expect(scan.firstAt).toBe(1_001);
  });
});
