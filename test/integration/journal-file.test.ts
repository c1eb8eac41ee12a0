import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterEach, describe, expect, test, type TestContext } from 'vitest';
import { fileJournalStorage } from '../../src/runtime/journal-storage.js';
import { mountTmpfs } from '../helpers/tmpfs.js';

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
