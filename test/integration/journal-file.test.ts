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

  test('holds what was written a range at a time, as `append` would', async () => {
    const dir = await tempDir();
    const storage = fileJournalStorage();
    let run = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc
            .tuple(fc.uint8Array({ minLength: 1, maxLength: 300 }), fc.nat(), fc.nat())
            .map(([bytes, a, b]) => {
              const start = a % (bytes.length + 1);
              return { buf: Buffer.from(bytes), start, end: start + (b % (bytes.length - start + 1)) };
            }),
          { maxLength: 10 },
        ),
        async (writes) => {
          const path = join(dir, `written-${run++}.wal`);
          const file = await storage.create(path);
          try {
            for (const { buf, start, end } of writes) {
              await new Promise<void>((resolve, reject) =>
                file.write?.(buf, start, end, (err) => (err ? reject(err) : resolve())),
              );
            }
          } finally {
            await file.close();
          }
          const expected = Buffer.concat(writes.map(({ buf, start, end }) => buf.subarray(start, end)));
          expect((await readFile(path)).equals(expected)).toBe(true);
        },
      ),
      { numRuns: 40 },
    );
  });

  test('on a full disk a write fails with ENOSPC, and what reached the file is a prefix of it (tmpfs)', async (ctx: TestContext) => {
    const disk = await mountTmpfs(1024 * 1024);
    if (typeof disk === 'string') ctx.skip(disk);
    cleanups.push(() => disk.unmount());
    const file = await fileJournalStorage().create(join(disk.path, 'segment.wal'));
    cleanups.push(() => file.close().catch(() => undefined));
    disk.fill(64 * 1024);
    const buf = Buffer.alloc(256 * 1024, 7);
    const err = await new Promise<Error | null>((resolve) => file.write?.(buf, 1, buf.length, resolve));
    expect(err).toMatchObject({ code: 'ENOSPC' });
    const written = await readFile(join(disk.path, 'segment.wal'));
    expect(written.equals(buf.subarray(1, 1 + written.length))).toBe(true);
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

describe('a journal closed while its disk refuses writes', () => {
  test('rejects what waits for the records it gives up on, and nothing unawaited goes unhandled', async () => {
    const dir = join(await tempDir(), 'journal');
    const storage = faultyStorage();
    const journal = await Journal.open({
      dir,
      storage,
      logger: captureLogs().logger,
      retryMinMs: 1,
      retryMaxMs: 4,
    });
    journal.append(Buffer.from('w1'), 'write');
    await journal.recorded();
    storage.fail('EIO', ['write', 'create']);
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown): void => void unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    try {
      journal.append(Buffer.from('w2'), 'write');
      // Not awaited, as a QoS 0 publisher does not wait.
      void journal.recorded();
      journal.append(Buffer.from('w3'), 'sync');
      const awaited = journal.recorded();
      await journal.close(30);
      await expect(awaited).rejects.toThrow(/closed/);
      await new Promise((resolve) => setTimeout(resolve, 10));
      expect(unhandled).toEqual([]);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });
});

describe('records appended in turns, some larger than a slab, some synced, with writes failing now and then', () => {
  test('read back after a restart as they were appended, each once, in order', async () => {
    const root = await tempDir();
    let run = 0;
    const record = fc.record({
      bytes: fc.oneof(
        { weight: 8, arbitrary: fc.integer({ min: 4, max: 400 }) },
        { weight: 1, arbitrary: fc.integer({ min: 20_000, max: 70_000 }) },
      ),
      sync: fc.boolean(),
    });
    const turn = fc.record({
      records: fc.array(record, { maxLength: 6 }),
      fail: fc.boolean(),
      wait: fc.boolean(),
    });
    await fc.assert(
      fc.asyncProperty(fc.array(turn, { minLength: 1, maxLength: 12 }), async (turns) => {
        const dir = join(root, `journal-${run++}`);
        const storage = faultyStorage();
        const open = (): Promise<Journal> =>
          Journal.open({ dir, storage, logger: captureLogs().logger, retryMinMs: 1, retryMaxMs: 4 });
        const journal = await open();
        const appended: Buffer[] = [];
        const recorded: number[] = [];
        let reported = 0;
        for (const { records, fail, wait } of turns) {
          for (const { bytes, sync } of records) {
            const payload = Buffer.alloc(bytes, appended.length & 0xff);
            payload.writeUInt32LE(appended.length, 0);
            appended.push(payload);
            expect(journal.append(payload, sync ? 'sync' : 'write')).toBe(appended.length);
          }
          const through = appended.length;
          const done = journal.recorded().then(() => {
            // Everything appended before it asked is recorded when it settles, and settlings come in order.
            expect(through).toBeGreaterThanOrEqual(reported);
            reported = through;
            recorded.push(through);
          });
          if (fail) storage.fail('EIO', ['write']);
          await new Promise((resolve) => setImmediate(resolve));
          storage.heal();
          if (wait) await done;
        }
        await journal.close();
        expect(recorded.at(-1)).toBe(appended.length);
        const reopened = await open();
        const read: Buffer[] = [];
        for await (const { seq, payload } of reopened.read(0)) {
          expect(seq).toBe(read.length + 1);
          read.push(Buffer.from(payload));
        }
        await reopened.close();
        expect(read.length).toBe(appended.length);
        read.forEach((payload, i) => expect(payload.equals(appended[i] as Buffer)).toBe(true));
      }),
      { numRuns: 25 },
    );
  });
});
