import { decode as decodeCbor, encode as encodeCbor } from 'cbor-x';
import { appendFile, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, test, vi } from 'vitest';
import {
  Checkpoints,
  decodeRecord,
  DuplicateFilter,
  encodeRecord,
  encodeRecordInPlace,
  fileJournalStorage,
  Journal,
  type CheckpointState,
  type InputRecord,
} from '../../src/runtime/index.js';
import { tempDir } from '../helpers/temp.js';
import { captureLogs, faultyStorage } from './durability-faults.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function journalDir(): Promise<string> {
  const dir = await tempDir();
  cleanups.push(() => dir.remove());
  return join(dir.path, 'journal');
}

async function open(dir: string, extra: Partial<Parameters<typeof Journal.open>[0]> = {}): Promise<Journal> {
  const journal = await Journal.open({
    dir,
    logger: captureLogs().logger,
    retryMinMs: 5,
    retryMaxMs: 20,
    ...extra,
  });
  cleanups.push(() => journal.close(100));
  return journal;
}

/** Appends `texts` and resolves with them once all are recorded. */
function appendAll(journal: Journal, texts: string[], persist: 'sync' | 'write' = 'sync'): Promise<string[]> {
  for (const text of texts) journal.append(Buffer.from(text), persist);
  // One commit records them all, in the order appended.
  return journal.recorded().then(() => [...texts]);
}

async function waitFor(predicate: () => boolean, timeoutMs = 2_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function largestSegment(dir: string): Promise<string> {
  let best = { path: '', size: -1 };
  for (const name of await readdir(dir)) {
    if (!name.endsWith('.wal')) continue;
    const { size } = await stat(join(dir, name));
    if (size > best.size) best = { path: join(dir, name), size };
  }
  return best.path;
}

async function readAll(journal: Journal, afterSeq = 0): Promise<Array<[number, string]>> {
  const out: Array<[number, string]> = [];
  for await (const { seq, payload } of journal.read(afterSeq)) out.push([seq, payload.toString()]);
  return out;
}

describe('the journal', () => {
  test('records come back after a reopen, in order, numbered from 1, and numbering goes on from there', async () => {
    const dir = await journalDir();
    const first = await open(dir);
    expect(await appendAll(first, ['a', 'b', 'c'])).toEqual(['a', 'b', 'c']);
    expect(await appendAll(first, ['d'], 'write')).toEqual(['d']);
    await first.close();

    const second = await open(dir);
    expect(second.recoveredThrough).toBe(4);
    expect(await readAll(second)).toEqual([
      [1, 'a'],
      [2, 'b'],
      [3, 'c'],
      [4, 'd'],
    ]);
    expect(await readAll(second, 2)).toEqual([
      [3, 'c'],
      [4, 'd'],
    ]);
    expect(second.nextSeq).toBe(5);
    await appendAll(second, ['e']);
    await second.close();
    const third = await open(dir);
    expect((await readAll(third)).map(([seq]) => seq)).toEqual([1, 2, 3, 4, 5]);
  });

  test('records appended before a commit share its promise, and are reported recorded once, through the last', async () => {
    const dir = await journalDir();
    const reported: number[] = [];
    const journal = await open(dir, { onRecorded: (through) => reported.push(through) });
    const seqs = ['a', 'b', 'c'].map((text) => journal.append(Buffer.from(text), 'write'));
    const first = journal.recorded();
    journal.append(Buffer.from('d'), 'sync');
    expect(journal.recorded()).toBe(first);
    await first;
    expect(seqs).toEqual([1, 2, 3]);
    expect(reported).toEqual([4]);
    // After that commit took the queue, a record goes into the next commit, with a promise of its own.
    journal.append(Buffer.from('e'), 'sync');
    const second = journal.recorded();
    expect(second).not.toBe(first);
    await second;
    expect(reported).toEqual([4, 5]);
    await journal.close();
    expect(journal.append(Buffer.from('late'), 'sync')).toBe(-1);
    await expect(journal.recorded()).rejects.toThrow(/journal is closed/);
  });

  test('deferred records wait for company across turns of the event loop, and share one write', async () => {
    const dir = await journalDir();
    const commits: number[] = [];
    const journal = await open(dir, {
      deferredCommitMs: 1_000,
      onCommit: (info) => {
        if (info.records > 0) commits.push(info.records);
      },
    });
    await journal.sync();
    for (const text of ['a', 'b', 'c']) {
      journal.appendDeferred(Buffer.from(text));
      await new Promise((r) => setImmediate(r));
    }
    expect(commits).toEqual([]);
    await journal.recorded();
    expect(commits).toEqual([3]);
    // Without a deferral, each turn's records are a commit of their own.
    const plain = await open(await journalDir(), {
      onCommit: (info) => {
        if (info.records > 0) commits.push(info.records);
      },
    });
    await plain.sync();
    for (const text of ['a', 'b']) {
      plain.appendDeferred(Buffer.from(text));
      await new Promise((r) => setImmediate(r));
    }
    await plain.recorded();
    expect(commits).toEqual([3, 1, 1]);
  });

  test('a record that may not wait, a sync or closing brings a deferred commit forward, in order', async () => {
    const dir = await journalDir();
    const commits: number[] = [];
    // Longer than the test may take: only bringing the commit forward lets it pass.
    const journal = await open(dir, {
      deferredCommitMs: 600_000,
      onCommit: (info) => {
        if (info.records > 0) commits.push(info.records);
      },
    });
    await journal.sync();
    journal.appendDeferred(Buffer.from('connected'));
    await new Promise((r) => setImmediate(r));
    journal.append(Buffer.from('publish'), 'sync');
    await journal.recorded();
    expect(commits).toEqual([2]);
    journal.appendDeferred(Buffer.from('disconnected'));
    await journal.sync();
    expect(commits).toEqual([2, 1]);
    journal.appendDeferred(Buffer.from('connected again'));
    await journal.close();
    const reopened = await open(dir);
    expect((await readAll(reopened)).map(([, text]) => text)).toEqual([
      'connected',
      'publish',
      'disconnected',
      'connected again',
    ]);
  });

  test('a backlog of many thousand records is written in slices, and a sync covers all of it', async () => {
    const dir = await journalDir();
    const journal = await open(dir);
    const texts = Array.from({ length: 20_000 }, (_, i) => `r${i}`);
    const all = appendAll(journal, texts, 'write');
    await journal.sync();
    expect(await Promise.race([all, Promise.resolve('not all recorded')])).toEqual(texts);
    await journal.close();
    const reopened = await open(dir);
    const back = await readAll(reopened);
    expect(back.length).toBe(20_000);
    expect(back[19_999]).toEqual([20_000, 'r19999']);
  });

  test('a record cut short by a crash is ignored, and the records before it are kept', async () => {
    const dir = await journalDir();
    const first = await open(dir);
    await appendAll(first, ['one', 'two']);
    await first.close();
    const segments = (await readdir(dir)).filter((n) => n.endsWith('.wal')).sort();
    const last = join(dir, segments[segments.length - 1] as string);
    // Half a frame: a header announcing 100 bytes, and 3 of them.
    const torn = Buffer.alloc(19);
    torn.writeUInt32LE(100, 0);
    await appendFile(last, torn);

    const { logger, lines } = captureLogs();
    const second = await Journal.open({ dir, logger });
    cleanups.push(() => second.close());
    expect(second.recoveredThrough).toBe(2);
    expect(await readAll(second)).toEqual([
      [1, 'one'],
      [2, 'two'],
    ]);
    expect(lines.some((l) => String(l.msg).includes('incomplete record'))).toBe(true);
    await appendAll(second, ['three']);
    await second.close();
    const third = await open(dir);
    expect(await readAll(third)).toEqual([
      [1, 'one'],
      [2, 'two'],
      [3, 'three'],
    ]);
  });

  test('a damaged record ends what is read of its segment', async () => {
    const dir = await journalDir();
    const first = await open(dir);
    await appendAll(first, ['x1', 'x2', 'x3']);
    await first.close();
    const path = await largestSegment(dir);
    const bytes = await readFile(path);
    // Flip a byte of the second record's payload (each frame: 16 bytes of header and 2 of payload).
    bytes[18 + 16] = (bytes[18 + 16] ?? 0) ^ 0xff;
    await writeFile(path, bytes);
    const second = await open(dir);
    expect(await readAll(second)).toEqual([[1, 'x1']]);
    expect(second.nextSeq).toBe(2);
  });

  test('while the disk refuses writes nothing is reported recorded; once it takes them, all are, in order, once', async () => {
    const dir = await journalDir();
    const storage = faultyStorage();
    const faults: Array<string | undefined> = [];
    const journal = await open(dir, { storage, onFault: (f) => faults.push(f?.code) });
    await appendAll(journal, ['before']);

    storage.fail('ENOSPC');
    const done: string[] = [];
    for (const text of ['f1', 'f2', 'f3']) {
      journal.append(Buffer.from(text), text === 'f2' ? 'write' : 'sync');
      void journal.recorded().then(() => done.push(text));
    }
    await new Promise((r) => setTimeout(r, 150));
    expect(done).toEqual([]);
    expect(journal.fault?.code).toBe('ENOSPC');
    expect(journal.queued).toBe(3);
    expect(storage.refused).toBeGreaterThan(1);

    storage.heal();
    // The next retry (at most 20 ms away) writes them; a loaded machine may take longer to get there.
    await vi.waitFor(() => expect(done).toEqual(['f1', 'f2', 'f3']), { timeout: 5_000, interval: 10 });
    expect(journal.fault).toBeUndefined();
    expect(faults).toEqual(['ENOSPC', undefined]);
    await appendAll(journal, ['after']);
    await journal.close();

    const reopened = await open(dir);
    expect(await readAll(reopened)).toEqual([
      [1, 'before'],
      [2, 'f1'],
      [3, 'f2'],
      [4, 'f3'],
      [5, 'after'],
    ]);
  });

  test('a failed fsync rewrites what it had not synced into a new segment, which supersedes the old file', async () => {
    const dir = await journalDir();
    const base = fileJournalStorage();
    let failSyncs = 0;
    const journal = await open(dir, {
      storage: {
        ...base,
        create: async (path) => {
          const file = await base.create(path);
          return {
            append: (chunks) => file.append(chunks),
            datasync: async () => {
              if (failSyncs > 0) {
                failSyncs--;
                throw Object.assign(new Error('EIO: injected'), { code: 'EIO' });
              }
              await file.datasync();
            },
            close: () => file.close(),
          };
        },
      },
    });
    await appendAll(journal, ['w1', 'w2'], 'write');
    failSyncs = 1;
    await appendAll(journal, ['s3']);
    await journal.close();
    const segments = (await readdir(dir)).filter((n) => n.endsWith('.wal'));
    expect(segments.length).toBeGreaterThanOrEqual(2);
    const reopened = await open(dir);
    expect(await readAll(reopened)).toEqual([
      [1, 'w1'],
      [2, 'w2'],
      [3, 's3'],
    ]);
  });

  test('records kept at write are synced in the background: a slow sync does not hold them up', async () => {
    const dir = await journalDir();
    const base = fileJournalStorage();
    let blocked = false;
    let syncs = 0;
    const releases: Array<() => void> = [];
    const journal = await open(dir, {
      syncIntervalMs: 10,
      storage: {
        ...base,
        create: async (path) => {
          const file = await base.create(path);
          return {
            append: (chunks) => file.append(chunks),
            datasync: async () => {
              syncs++;
              if (blocked) await new Promise<void>((resolve) => releases.push(resolve));
              await file.datasync();
            },
            close: () => file.close(),
          };
        },
      },
    });
    await journal.sync();
    blocked = true;
    const before = syncs;
    await appendAll(journal, ['a'], 'write');
    await waitFor(() => syncs > before);
    // The periodic sync of `a` hangs; `b` is written and reported all the same.
    const b = appendAll(journal, ['b'], 'write');
    expect(await Promise.race([b, new Promise((r) => setTimeout(() => r('held up'), 2_000))])).toEqual(['b']);
    blocked = false;
    for (const release of releases) release();
    await journal.close();
    const reopened = await open(dir);
    expect(await readAll(reopened)).toEqual([
      [1, 'a'],
      [2, 'b'],
    ]);
  });

  test('closing while the disk refuses writes gives up on what it holds, with an error', async () => {
    const dir = await journalDir();
    const storage = faultyStorage();
    const journal = await open(dir, { storage });
    await appendAll(journal, ['kept']);
    storage.fail('EIO');
    journal.append(Buffer.from('lost'), 'sync');
    const outcome = journal.recorded().then(
      () => undefined,
      (err: unknown) => err as Error,
    );
    await new Promise((r) => setTimeout(r, 30));
    await journal.close(100);
    expect((await outcome)?.message).toMatch(/journal is closed/);
  });

  test('rotated segments are deleted once a checkpoint covers them', async () => {
    const dir = await journalDir();
    const journal = await open(dir);
    await appendAll(journal, ['a', 'b']);
    await journal.rotate();
    await appendAll(journal, ['c']);
    await journal.rotate();
    await appendAll(journal, ['d']);
    expect(await journal.dropThrough(2)).toBe(1);
    await journal.close();
    const reopened = await open(dir);
    expect(await readAll(reopened, 2)).toEqual([
      [3, 'c'],
      [4, 'd'],
    ]);
  });
});

describe('journal records', () => {
  test('an event comes back exactly, so that the action ids derived from it are the same after a replay', () => {
    const record: InputRecord = {
      kind: 'event',
      event: {
        actor: 'dev-1',
        type: 'telemetry',
        at: 1_764_150_000_123,
        data: { temp: 21.7, n: 3, nested: { list: [1, 2.5, 'x', null, true] }, big: 2 ** 40 + 0.5 },
        source: 'device',
        deviceAt: 1_764_150_000_000,
      },
      origin: { clientId: 'dev-1', messageId: 65_535, hash: 4_000_000_000 },
    };
    expect(decodeRecord(encodeRecord(record))).toEqual(record);
    const timer: InputRecord = { kind: 'timer', timer: 'device-offline:dev-1', at: 5, actor: 'dev-1' };
    expect(decodeRecord(encodeRecord(timer))).toEqual(timer);
    expect(decodeRecord(Buffer.from([0x01, 0x02]))).toBeUndefined();
  });

  test('an event emitted for another actor comes back with its id and depth, as a plain CBOR array', () => {
    const record: InputRecord = {
      kind: 'emitted',
      input: {
        id: '5be0c2d1a9f04e17',
        event: {
          actor: 'cust-1',
          type: 'customer-created',
          at: 1_764_150_000_123,
          data: { plan: 'gold', seats: 2.5 },
          source: 'engine',
        },
        depth: 2,
      },
    };
    const bytes = encodeRecord(record);
    expect(decodeRecord(bytes)).toEqual(record);
    expect(decodeCbor(bytes)).toEqual([
      5,
      '5be0c2d1a9f04e17',
      'cust-1',
      'customer-created',
      1_764_150_000_123,
      { plan: 'gold', seats: 2.5 },
      2,
    ]);
    expect(decodeRecord(encodeCbor([5, 'id', 'cust-1', 'customer-created', 1, [], 1]))).toBeUndefined();
  });
});

test('records encoded in place are framed with the bytes of a fresh encoding, and read back through a reopen', async () => {
  const dir = await journalDir();
  const event = (i: number): InputRecord => ({
    kind: 'event',
    event: {
      actor: `dev-${i}`,
      type: 'telemetry',
      at: 1_764_150_000_000 + i,
      data: { temp: 20 + i / 10 },
      source: 'device',
    },
    ...(i % 2 === 0 ? { origin: { clientId: `dev-${i}`, messageId: i, hash: 4_000_000_000 + i } } : {}),
  });
  const records: InputRecord[] = [
    ...Array.from({ length: 200 }, (_, i) => event(i)),
    // Larger than the encoder's buffer and the journal's slab: each grows for this one.
    {
      kind: 'rules',
      at: 7,
      rules: { source: 'dir', version: 0, hash: 'h', files: [{ path: 'a.yaml', text: 'x'.repeat(100_000) }] },
    },
    { kind: 'timer', timer: 'device-offline:dev-1', at: 9, actor: undefined },
    { kind: 'clock', at: 10, offsetMs: -5, synced: true, stepMs: 3 },
    ...Array.from({ length: 50 }, (_, i) => event(1_000 + i)),
  ];
  const journal = await open(dir);
  for (const record of records) {
    const { bytes, start, end } = encodeRecordInPlace(record);
    journal.append(bytes, 'write', record.kind === 'clock' ? 2 : 1, start, end);
  }
  await journal.recorded();
  await journal.close();
  const again = await open(dir);
  const payloads: Buffer[] = [];
  for await (const { payload } of again.read(0)) payloads.push(Buffer.from(payload));
  expect(payloads).toHaveLength(records.length);
  records.forEach((record, i) => expect(payloads[i]?.equals(encodeRecord(record))).toBe(true));
  expect(payloads.map((p) => decodeRecord(p))).toEqual(records);
});

describe('recognising a resend', () => {
  const hash = 0xabcd;

  test('with DUP set, the same packet id and payload is a resend; a different payload is not', () => {
    const f = new DuplicateFilter();
    f.remember('c1', 1, 7, hash, 0);
    expect(f.resent('c1', 1, 7, true, hash)).toBeDefined();
    expect(f.resent('c1', 1, 7, true, hash + 1)).toBeUndefined();
    expect(f.resent('c2', 1, 7, true, hash)).toBeUndefined();
  });

  test('without DUP, only the first publishes of a new connection can be resends', () => {
    const f = new DuplicateFilter();
    f.remember('c1', 1, 7, hash, 0);
    f.remember('c1', 1, 8, hash, 0);
    // Same connection, same id and payload, no DUP: a new publish that reuses the id.
    expect(f.resent('c1', 1, 7, false, hash)).toBeUndefined();
    // A reconnect: what comes first and matches is a resend...
    expect(f.resent('c1', 2, 8, false, hash)).toBeDefined();
    // ...until a new publish comes.
    expect(f.resent('c1', 2, 9, false, hash)).toBeUndefined();
    f.remember('c1', 2, 9, hash, 0);
    expect(f.resent('c1', 2, 7, false, hash)).toBeUndefined();
  });

  test('from a sender numbering in sequence (the cloud broker), the same id and payload is a redelivery anywhere', () => {
    const f = new DuplicateFilter();
    f.remember('$upstream', 1, 7, hash, 0);
    f.remember('$upstream', 1, 8, hash + 1, 0);
    // Same connection, no DUP, after another new publish: still the broker's second delivery of it.
    expect(f.resent('$upstream', 1, 7, false, hash, true)).toBeDefined();
    expect(f.resent('$upstream', 2, 8, false, hash + 1, true)).toBeDefined();
    // Another payload under a remembered id is a new message.
    expect(f.resent('$upstream', 2, 7, false, hash + 2, true)).toBeUndefined();
    expect(f.resent('$upstream', 2, 9, false, hash, true)).toBeUndefined();
  });

  test('a new message that takes a remembered packet id is new, and the resend of the one before it is still a resend', () => {
    // aedes starts each connection's packet ids at a random number: a message published while the gateway
    // resumes its session can take the id of one delivered on the last connection and not acknowledged, which
    // the broker then delivers again under that id.
    const f = new DuplicateFilter();
    f.remember('$upstream', 1, 7, hash, 0);
    expect(f.resent('$upstream', 2, 7, false, hash + 1, true)).toBeUndefined();
    f.remember('$upstream', 2, 7, hash + 1, 1);
    expect(f.resent('$upstream', 2, 7, false, hash, true)).toBeDefined();
    expect(f.resent('$upstream', 2, 7, false, hash + 1, true)).toBeDefined();
    // A device that sets DUP on its resend, likewise; and both are kept across a checkpoint.
    f.remember('c1', 1, 7, hash, 0);
    expect(f.resent('c1', 2, 7, false, hash + 1)).toBeUndefined();
    f.remember('c1', 2, 7, hash + 1, 1);
    expect(f.resent('c1', 2, 7, true, hash)).toBeDefined();
    const g = new DuplicateFilter();
    g.restore(f.snapshot());
    expect(g.resent('c1', 3, 7, true, hash)).toBeDefined();
    expect(g.resent('c1', 3, 7, true, hash + 1)).toBeDefined();
    expect(g.resent('c1', 3, 7, true, hash + 2)).toBeUndefined();
    expect(f.snapshot()).toHaveLength(4);
  });

  test('a resend of a publish still being written waits for it; once it is recorded, for nothing', async () => {
    let recorded!: () => void;
    const original = new Promise<void>((resolve) => (recorded = resolve));
    const f = new DuplicateFilter({ whenRecorded: () => original });
    f.recordedThrough(4);
    f.remember('c1', 1, 7, hash, 0, 5);
    f.remember('c1', 1, 8, hash, 0, 4);
    let acked = false;
    void f.resent('c1', 2, 7, true, hash)?.then(() => (acked = true));
    let earlierAcked = false;
    void f.resent('c1', 2, 8, true, hash)?.then(() => (earlierAcked = true));
    await new Promise((r) => setTimeout(r, 10));
    expect(acked).toBe(false);
    expect(earlierAcked).toBe(true);
    f.recordedThrough(5);
    recorded();
    await new Promise((r) => setTimeout(r, 0));
    expect(acked).toBe(true);
    // Recorded: a resend is answered at once, not with the journal's promise.
    const never = new DuplicateFilter({ whenRecorded: () => new Promise<void>(() => undefined) });
    never.remember('c1', 1, 7, hash, 0, 5);
    never.recordedThrough(5);
    let now = false;
    void never.resent('c1', 2, 7, true, hash)?.then(() => (now = true));
    await new Promise((r) => setTimeout(r, 0));
    expect(now).toBe(true);
  });

  test('survives a checkpoint, and forgets what is older than its window', () => {
    const f = new DuplicateFilter({ maxAgeMs: 1_000 });
    f.remember('c1', 1, 7, hash, 10_000);
    f.remember('c1', 1, 8, hash, 5_000);
    f.prune(10_500);
    const g = new DuplicateFilter();
    g.restore(f.snapshot());
    expect(g.resent('c1', 1, 7, false, hash)).toBeDefined();
    expect(g.resent('c1', 1, 8, true, hash)).toBeUndefined();
  });
});

describe('checkpoints', () => {
  const state = (seq: number): CheckpointState => ({
    version: 1,
    seq,
    at: 1000 + seq,
    engine: { version: 1, scenarios: [] },
    arbiter: { version: 1, contact: [], cooldowns: [], active: [] },
    lastSeen: [['dev-1', seq]],
    duplicates: [],
  });

  test('the newest readable one is used; a damaged newest falls back to the one before', async () => {
    const dir = await journalDir();
    const storage = fileJournalStorage();
    await storage.ensureDir(dir);
    const { logger, lines } = captureLogs();
    const checkpoints = new Checkpoints(dir, storage, logger);
    await checkpoints.write(state(5));
    await checkpoints.write(state(9));
    await checkpoints.write(state(12));
    // Retention decides what goes; the two newest stay whatever it asks.
    await checkpoints.dropBefore(12);
    expect((await readdir(dir)).filter((n) => n.startsWith('checkpoint-')).length).toBe(2);
    expect(checkpoints.retainAfterSeq).toBe(9);
    expect((await new Checkpoints(dir, storage, logger).latest())?.seq).toBe(12);

    const newest = join(dir, `checkpoint-${String(12).padStart(16, '0')}.cbor`);
    const bytes = await readFile(newest);
    bytes[bytes.length - 1] = (bytes[bytes.length - 1] ?? 0) ^ 0xff;
    await writeFile(newest, bytes);
    expect(await new Checkpoints(dir, storage, logger).latest()).toEqual(state(9));
    expect(lines.some((l) => String(l.msg).includes('damaged'))).toBe(true);
  });
});
