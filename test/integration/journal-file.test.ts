import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterEach, describe, expect, test, type TestContext } from 'vitest';
import { Journal } from '../../src/runtime/journal.js';
import { fileJournalStorage } from '../../src/runtime/journal-storage.js';
import { mountTmpfs } from '../helpers/tmpfs.js';
import { captureLogs, faultyStorage } from './durability-faults.js';

const cleanups: Array<() => Promise<void>> = [];

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'vigil-journal-file-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

describe("the journal's file", () => {
  test('holds what was appended, chunk after chunk, empty chunks and all', async () => {
    const dir = await tempDir();
    const storage = fileJournalStorage();
    let run = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 8 }), { maxLength: 8 }),
        async (appends) => {
          const path = join(dir, `segment-${run++}.wal`);
          const file = await storage.create(path);
          try {
            for (const chunks of appends) await file.append(chunks.map((c) => Buffer.from(c)));
            await file.datasync();
          } finally {
            await file.close();
          }
          const expected = Buffer.concat(appends.flat().map((c) => Buffer.from(c)));
          expect((await readFile(path)).equals(expected)).toBe(true);
        },
      ),
      { numRuns: 40 },
    );
  });

  test('on a full disk an append fails with ENOSPC, and what reached the file is a prefix of it (tmpfs)', async (ctx: TestContext) => {
    const disk = await mountTmpfs(1024 * 1024);
    if (typeof disk === 'string') ctx.skip(disk);
    cleanups.push(() => disk.unmount());
    const storage = fileJournalStorage();
    const path = join(disk.path, 'segment.wal');
    const file = await storage.create(path);
    cleanups.push(() => file.close().catch(() => undefined));
    disk.fill(64 * 1024);
    const chunks = Array.from({ length: 64 }, (_, i) => Buffer.alloc(4096, i));
    await expect(file.append(chunks)).rejects.toMatchObject({ code: 'ENOSPC' });
    const written = await readFile(path);
    expect(written.length).toBeGreaterThan(0);
    expect(written.equals(Buffer.concat(chunks).subarray(0, written.length))).toBe(true);
  });
});

describe('a commit of records kept at write', () => {
  test('whose write fails is held and retried; once the disk takes writes each record is recorded once, in order', async () => {
    const dir = join(await tempDir(), 'journal');
    const storage = faultyStorage();
    const open = (): Promise<Journal> =>
      Journal.open({ dir, storage, logger: captureLogs().logger, retryMinMs: 5, retryMaxMs: 20 });
    const journal = await open();
    journal.append(Buffer.from('w1'), 'write');
    await journal.recorded();
    const recorded: string[] = [];
    // Plain commits, one write each and nothing else: the first of them fails.
    storage.fail('ENOSPC', ['write']);
    for (const text of ['w2', 'w3']) {
      journal.append(Buffer.from(text), 'write');
      void journal.recorded().then(() => recorded.push(text));
    }
    await new Promise((r) => setTimeout(r, 60));
    expect(recorded).toEqual([]);
    expect(journal.fault?.code).toBe('ENOSPC');
    storage.heal();
    journal.append(Buffer.from('w4'), 'write');
    await journal.recorded();
    expect(recorded).toEqual(['w2', 'w3']);
    expect(journal.fault).toBeUndefined();
    journal.append(Buffer.from('w5'), 'write');
    await journal.recorded();
    await journal.close();

    const reopened = await open();
    const texts: Array<[number, string]> = [];
    for await (const { seq, payload } of reopened.read(0)) texts.push([seq, payload.toString()]);
    await reopened.close();
    expect(texts).toEqual([
      [1, 'w1'],
      [2, 'w2'],
      [3, 'w3'],
      [4, 'w4'],
      [5, 'w5'],
    ]);
  });
});
