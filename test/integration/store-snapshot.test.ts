import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { openStore, openStoreSnapshot, type StoreSnapshot } from '../../src/store/index.js';
import { tempDir } from '../helpers/temp.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function hashes(dir: string): Promise<Record<string, string>> {
  const files: Record<string, string> = {};
  for (const name of (await readdir(dir)).sort()) {
    files[name] = createHash('sha256')
      .update(await readFile(join(dir, name)))
      .digest('hex');
  }
  return files;
}

async function scratch(): Promise<{ data: string; tmp: string }> {
  const dir = await tempDir();
  cleanups.push(() => dir.remove());
  const tmp = join(dir.path, 'tmp');
  await mkdir(tmp);
  return { data: join(dir.path, 'data'), tmp };
}

/** How many of `dev-0`, `dev-1`, … the snapshot holds, checking that they are a prefix of that sequence. */
async function prefixHeld(snapshot: StoreSnapshot, upTo: number): Promise<number> {
  const ids = Array.from({ length: upTo }, (_, i) => `dev-${i}`);
  const found = await Promise.all(ids.map((id) => snapshot.profiles.get(id)));
  const held = found.findIndex((p) => p === undefined);
  if (held === -1) return upTo;
  expect(found.slice(held).filter((p) => p !== undefined)).toEqual([]);
  return held;
}

describe('a copy of the store, opened', () => {
  test('holds the profiles, leaves the data directory as it was, and is removed on close', async () => {
    const { data, tmp } = await scratch();
    const store = await openStore(data);
    await store.profiles.put('dev-1', { id: 'dev-1', maxTemp: 50 });
    await store.profiles.put('dev-2', { id: 'dev-2', maxTemp: 70 });
    await store.close();
    const before = await hashes(data);

    const snapshot = await openStoreSnapshot(data, { tempRoot: tmp });
    expect(snapshot).toBeDefined();
    expect(await snapshot?.profiles.get('dev-2')).toEqual({ id: 'dev-2', maxTemp: 70 });
    expect(await snapshot?.profiles.get('dev-3')).toBeUndefined();
    expect(await readdir(tmp)).toHaveLength(1);
    await snapshot?.close();
    expect(await readdir(tmp)).toEqual([]);
    expect(await hashes(data)).toEqual(before);
  });

  test('a directory without a store has none, and nothing is created', async () => {
    const { data, tmp } = await scratch();
    await mkdir(data);
    expect(await openStoreSnapshot(data, { tempRoot: tmp })).toBeUndefined();
    expect(await readdir(data)).toEqual([]);
    expect(await readdir(tmp)).toEqual([]);
  });

  test('copied while the store is written, flushed and compacted, it holds everything written before', async () => {
    const { data, tmp } = await scratch();
    // A small write buffer: the memtable is flushed to a table every few hundred writes, and tables compacted.
    const store = await openStore(data, { writeBufferBytes: 64 * 1024 });
    cleanups.push(() => store.close());
    let written = 0;
    let writing = true;
    const pad = 'x'.repeat(400);
    const writer = (async () => {
      while (writing && written < 15_000) {
        await store.profiles.put(`dev-${written}`, { id: `dev-${written}`, pad });
        written++;
      }
    })();
    let copies = 0;
    let recopied = 0;
    try {
      while (copies < 12) {
        const writtenBefore = written;
        const snapshot = await openStoreSnapshot(data, { tempRoot: tmp, attempts: 20 });
        if (snapshot === undefined) throw new Error('no store');
        try {
          recopied += snapshot.recopied;
          // Every write done before the copy began is in it, and what it holds is a prefix of the writes.
          expect(await prefixHeld(snapshot, written)).toBeGreaterThanOrEqual(writtenBefore);
        } finally {
          await snapshot.close();
        }
        copies++;
      }
    } finally {
      writing = false;
      await writer;
    }
    console.log(`store snapshot: ${copies} copies during ${written} writes, ${recopied} copied again`);
    expect(await readdir(tmp)).toEqual([]);
  }, 60_000);
});
