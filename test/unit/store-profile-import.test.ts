import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { StoreIoError } from '../../src/shared/index.js';
import {
  importProfiles,
  openStore,
  ProfileImportError,
  type ImportProgress,
  type Store,
} from '../../src/store/index.js';

let dir: string;
let store: Store;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'vigil-import-'));
  store = await openStore(dir);
});

afterEach(async () => {
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

const chunks = (...parts: (string | Buffer)[]): Readable =>
  Readable.from(parts.map((p) => (typeof p === 'string' ? Buffer.from(p) : p)));

describe('importProfiles', () => {
  test('imports the good lines and reports each bad one with its number and reason', async () => {
    const input = [
      '{"id":"dev-1","maxTemp":50,"site":"north"}',
      '{"id":"dev-2", oops}',
      '[1,2]',
      '"text"',
      '{"maxTemp":3}',
      '{"id":42}',
      '{"id":""}',
      '',
      '   ',
      '{"id":"dev-3","tags":["a"]}',
    ].join('\n');
    const summary = await importProfiles(store, chunks(input));

    expect(summary).toMatchObject({ imported: 2, rejected: 6 });
    expect(summary.errors.map((e) => e.line)).toEqual([2, 3, 4, 5, 6, 7]);
    const [json, array, text, missing, number, empty] = summary.errors.map((e) => e.message);
    expect(json).toMatch(/^invalid JSON/);
    expect(array).toBe('expected a JSON object, got an array');
    expect(text).toBe('expected a JSON object, got a string');
    expect(missing).toBe('missing "id"');
    expect(number).toBe('"id" must be a string, got a number');
    expect(empty).toBe('"id" is empty');
    await expect(store.profiles.get('dev-1')).resolves.toEqual({ id: 'dev-1', maxTemp: 50, site: 'north' });
    await expect(store.profiles.get('dev-3')).resolves.toEqual({ id: 'dev-3', tags: ['a'] });
    await expect(store.profiles.count()).resolves.toBe(2);
  });

  test('reads CRLF line ends, a byte order mark, and a last line without a newline', async () => {
    const summary = await importProfiles(store, chunks('\uFEFF{"id":"a"}\r\n{"id":"b"}\r\n{"id":"c"}'));
    expect(summary).toMatchObject({ imported: 3, rejected: 0, errors: [] });
    await expect(store.profiles.get('c')).resolves.toEqual({ id: 'c' });
  });

  test('gives the same result however the input is cut into chunks', async () => {
    const lines = [
      '{"id":"dév-1","city":"Zürich ✓"}',
      'broken',
      '{"id":"d2","emoji":"🚀"}',
      '{"id":3}',
      '{"id":"d4"}',
    ];
    const bytes = Buffer.from(lines.join('\n'));
    let run = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.uniqueArray(fc.integer({ min: 1, max: bytes.length - 1 }), { maxLength: 12 }),
        async (cuts) => {
          const sorted = [...cuts].sort((a, b) => a - b);
          const parts = [0, ...sorted].map((start, i) => bytes.subarray(start, sorted[i] ?? bytes.length));
          const runStore = await openStore(join(dir, `run-${run++}`));
          try {
            const summary = await importProfiles(runStore, chunks(...parts), { batchSize: 2 });
            expect(summary).toMatchObject({ imported: 3, rejected: 2 });
            expect(summary.errors.map((e) => e.line)).toEqual([2, 4]);
            await expect(runStore.profiles.get('dév-1')).resolves.toEqual({ id: 'dév-1', city: 'Zürich ✓' });
            await expect(runStore.profiles.get('d2')).resolves.toEqual({ id: 'd2', emoji: '🚀' });
          } finally {
            await runStore.close();
          }
        },
      ),
      { numRuns: 40 },
    );
  });

  test('writes every batch, including a last partial one', async () => {
    const input = Array.from({ length: 12 }, (_, i) => JSON.stringify({ id: `d${i}`, i })).join('\n');
    const summary = await importProfiles(store, chunks(input), { batchSize: 5 });
    expect(summary.imported).toBe(12);
    await expect(store.profiles.count()).resolves.toBe(12);
  });

  test('a later line with the same id replaces the earlier one', async () => {
    await importProfiles(store, chunks('{"id":"a","v":1}\n{"id":"a","v":2}\n'));
    await expect(store.profiles.get('a')).resolves.toEqual({ id: 'a', v: 2 });
  });

  test('lists the first rejected lines only, but counts them all', async () => {
    const input = Array.from({ length: 10 }, (_, i) => `bad ${i}`).join('\n') + '\n{"id":"ok"}\n';
    const summary = await importProfiles(store, chunks(input), { maxErrors: 3 });
    expect(summary.rejected).toBe(10);
    expect(summary.errors.map((e) => e.line)).toEqual([1, 2, 3]);
    expect(summary.imported).toBe(1);
  });

  test('rejects an overlong line without holding it, and goes on with the next', async () => {
    const long = `{"id":"big","pad":"${'x'.repeat(5_000)}"}`;
    const summary = await importProfiles(
      store,
      chunks(long.slice(0, 2_000), long.slice(2_000), '\n{"id":"next"}'),
      {
        maxLineBytes: 1_000,
      },
    );
    expect(summary.errors).toEqual([{ line: 1, message: 'line longer than 1000 bytes' }]);
    expect(summary.imported).toBe(1);
    await expect(store.profiles.get('next')).resolves.toEqual({ id: 'next' });
    await expect(store.profiles.get('big')).resolves.toBeUndefined();
  });

  test('a 256 MB input without a newline is read through, never held: one line refused, the next imported', async () => {
    const CHUNK = 1024 * 1024;
    const CHUNKS = 256;
    // What stays allocated once the garbage collector has run: what the import holds on to. V8 releases the
    // memory of collected buffers on a background thread, so a first collection's figure can still include some;
    // the second one's settles it.
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const held = () => {
      gc();
      gc();
      return process.memoryUsage().arrayBuffers;
    };
    const before = held();
    let peakHeld = 0;
    function* input(): Generator<Buffer> {
      for (let i = 1; i <= CHUNKS; i++) {
        // A fresh buffer each time: one kept by the import would stay allocated, and show below.
        yield Buffer.alloc(CHUNK, 0x78);
        if (i % 32 === 0) peakHeld = Math.max(peakHeld, held() - before);
      }
      yield Buffer.from('\n{"id":"after"}\n');
    }
    // One chunk of read-ahead in the stream itself, so what shows is what the import holds.
    const summary = await importProfiles(store, Readable.from(input(), { highWaterMark: 1 }));
    expect(summary.errors).toEqual([{ line: 1, message: 'line longer than 1048576 bytes' }]);
    expect(summary.imported).toBe(1);
    await expect(store.profiles.get('after')).resolves.toEqual({ id: 'after' });
    // Held, the input would be 256 MB by the end; read through, a few chunks at most.
    expect(peakHeld).toBeLessThan(32 * CHUNK);
  });

  test('reports progress by bytes read, up to the whole input', async () => {
    const parts = ['{"id":"a"}\n', '{"id":"b"}\n', '{"id":"c"}\n'];
    const seen: ImportProgress[] = [];
    await importProfiles(store, chunks(...parts), { onProgress: (p) => seen.push(p) });
    const bytes = seen.map((p) => p.bytesRead);
    expect(bytes).toEqual([...bytes].sort((a, b) => a - b));
    expect(bytes.at(-1)).toBe(parts.join('').length);
    expect(seen.at(-1)).toMatchObject({ imported: 3, rejected: 0 });
  });

  test('an input that fails midway stops the import; what came before stays imported', async () => {
    const failing = new Readable({
      read() {
        this.push('{"id":"a"}\n{"id":"b"}\n');
        this.destroy(new Error('disk read error'));
      },
    });
    const err = await importProfiles(store, failing).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProfileImportError);
    expect((err as ProfileImportError).message).toContain('disk read error');
    expect((err as ProfileImportError).partial).toMatchObject({ imported: 2, rejected: 0 });
    await expect(store.profiles.get('b')).resolves.toEqual({ id: 'b' });
  });

  test('a write that fails stops the import with StoreIoError', async () => {
    await store.db.close();
    await expect(importProfiles(store, chunks('{"id":"a"}\n'))).rejects.toBeInstanceOf(StoreIoError);
  });
});
