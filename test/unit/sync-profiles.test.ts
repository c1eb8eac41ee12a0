import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { encodeCbor, openStore, type Store } from '../../src/store/index.js';
import {
  MAX_PROFILE_BATCH_BYTES,
  MAX_PROFILE_BATCH_CHANGES,
  parseProfileBatch,
  PROFILE_SEQ_KEY,
  ProfileSync,
  type ProfileBatchRefusal,
  type ProfileBatchStatus,
} from '../../src/sync/index.js';

const quiet = pino({ level: 'silent' });
const json = (value: unknown) => Buffer.from(JSON.stringify(value));

let dir: string;
let store: Store;
let published: ProfileBatchStatus[];
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'vigil-profile-sync-'));
  store = await openStore(dir);
  published = [];
});
afterEach(async () => {
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

function open(refused?: (reason: ProfileBatchRefusal) => void): Promise<ProfileSync> {
  return ProfileSync.open({
    gateway: 'gw-test',
    profiles: store.profiles,
    state: store.sublevels.state,
    publish: (s) => published.push(s),
    logger: quiet,
    now: () => 0,
    ...(refused ? { refused } : {}),
  });
}

describe('profile batches from the cloud', () => {
  test('upserts and deletes apply, the cache included, and the seq is kept for the next start', async () => {
    await store.profiles.put('d2', { id: 'd2', site: 'old' });
    // Cached, as a device that is talking would be: a miss for d1, a profile for d2.
    expect(await store.profiles.get('d1')).toBeUndefined();
    expect(await store.profiles.get('d2')).toEqual({ id: 'd2', site: 'old' });

    const sync = await open();
    const first = await sync.handle(
      json({
        seq: 1,
        upsert: [
          { id: 'd1', maxTemp: 55 },
          { id: 'd2', site: 'new' },
        ],
      }),
    );
    expect(first).toMatchObject({ seq: 1, status: 'applied', expected: 2, upserts: 2, deletes: 0 });
    expect(store.profiles.peek('d1')).toEqual({ hit: true, profile: { id: 'd1', maxTemp: 55 } });
    expect(store.profiles.peek('d2')).toEqual({ hit: true, profile: { id: 'd2', site: 'new' } });

    const second = await sync.handle(Buffer.from(encodeCbor({ seq: 2, delete: ['d2'] })));
    expect(second).toMatchObject({ seq: 2, status: 'applied', deletes: 1 });
    expect(store.profiles.peek('d2')).toEqual({ hit: true, profile: undefined });
    expect(published.map((p) => p.status)).toEqual(['applied', 'applied']);

    await store.close();
    store = await openStore(dir);
    expect(await store.profiles.get('d1')).toEqual({ id: 'd1', maxTemp: 55 });
    expect(await store.profiles.get('d2')).toBeUndefined();
    expect((await open()).lastSeq).toBe(2);
  });

  test('a replayed batch changes nothing, even what changed since', async () => {
    const sync = await open();
    const batch = json({ seq: 1, upsert: [{ id: 'd1', maxTemp: 55 }] });
    await sync.handle(batch);
    await store.profiles.put('d1', { id: 'd1', maxTemp: 70 });
    expect(await sync.handle(batch)).toMatchObject({ seq: 1, status: 'duplicate', expected: 2 });
    expect(await store.profiles.get('d1')).toEqual({ id: 'd1', maxTemp: 70 });
    expect(sync.lastSeq).toBe(1);
  });

  test('a batch after a gap is refused, nothing of it applied, and the status says which seq to send', async () => {
    const sync = await open();
    await sync.handle(json({ seq: 1, upsert: [{ id: 'd1' }] }));
    const gap = await sync.handle(json({ seq: 4, upsert: [{ id: 'd4' }] }));
    expect(gap).toMatchObject({ seq: 4, status: 'refused', reason: 'gap', expected: 2 });
    expect(gap.detail).toBe('batches 2 to 3 are missing; send from 2');
    expect(await store.profiles.get('d4')).toBeUndefined();
    expect(await store.sublevels.state.get(PROFILE_SEQ_KEY)).toBe(1);
    // Once the cloud sends from 2, it goes on.
    await sync.handle(json({ seq: 2, upsert: [{ id: 'd2' }] }));
    await sync.handle(json({ seq: 3, upsert: [{ id: 'd3' }] }));
    expect(await sync.handle(json({ seq: 4, upsert: [{ id: 'd4' }] }))).toMatchObject({ status: 'applied' });
    expect(await store.profiles.get('d4')).toEqual({ id: 'd4' });
  });

  test('an invalid batch is refused whole', async () => {
    const sync = await open();
    const status = await sync.handle(json({ seq: 1, upsert: [{ id: 'd1' }, { maxTemp: 3 }] }));
    expect(status).toMatchObject({ seq: 1, status: 'refused', reason: 'invalid', expected: 1 });
    expect(status.detail).toContain('upsert[1].id');
    expect(await store.profiles.get('d1')).toBeUndefined();
  });

  test('an upsert with a field named like a secret refuses the batch, naming the entry and the field', async () => {
    const sync = await open();
    const status = await sync.handle(
      json({
        seq: 1,
        upsert: [
          { id: 'd1', maxTemp: 3 },
          { id: 'd2', wifi: { ssid: 'x', Pass_Word: 'hunter2' } },
        ],
      }),
    );
    expect(status).toMatchObject({ seq: 1, status: 'refused', reason: 'invalid', expected: 1 });
    expect(status.detail).toContain('upsert[1] (device "d2"): field "wifi.Pass_Word" is named like a secret');
    expect(await store.profiles.get('d1')).toBeUndefined();
    expect(await store.profiles.get('d2')).toBeUndefined();
    // The hash field of imports has no place in a batch either: credentials are provisioned by import.
    const hashed = await sync.handle(json({ seq: 1, upsert: [{ id: 'd1', credential: 'hmac-sha256$a$b' }] }));
    expect(hashed.detail).toContain('upsert[0] (device "d1"): field "credential"');
    const cbor = await sync.handle(Buffer.from(encodeCbor({ seq: 1, upsert: [{ id: 'd3', apiKey: 'k' }] })));
    expect(cbor.detail).toContain('field "apiKey"');
    expect(await sync.handle(json({ seq: 1, upsert: [{ id: 'd1', maxTemp: 3 }] }))).toMatchObject({
      status: 'applied',
    });
  });

  test('a batch over 16 MiB is refused before it is decoded, one over 100,000 changes before its entries are read; each refusal is counted', async () => {
    const reasons: ProfileBatchRefusal[] = [];
    const sync = await open((r) => reasons.push(r));
    // Not JSON either: the size is what it is refused for, so the rest was never parsed.
    const huge = Buffer.alloc(MAX_PROFILE_BATCH_BYTES + 1, 0x5b);
    const tooLarge = await sync.handle(huge);
    expect(tooLarge).toMatchObject({ seq: null, status: 'refused', reason: 'invalid', expected: 1 });
    expect(tooLarge.detail).toBe(
      `${MAX_PROFILE_BATCH_BYTES + 1} bytes; a batch is at most ${MAX_PROFILE_BATCH_BYTES} bytes (16 MiB): split it`,
    );
    // Not device ids either: the count is checked before any entry.
    const many = json({ seq: 1, delete: Array<number>(MAX_PROFILE_BATCH_CHANGES + 1).fill(7) });
    const tooMany = await sync.handle(many);
    expect(tooMany).toMatchObject({ seq: 1, status: 'refused', reason: 'invalid' });
    expect(tooMany.detail).toBe('100001 changes; a batch holds at most 100000: split it');
    await sync.handle(json({ seq: 1, delete: [7] }));
    await sync.handle(json({ seq: 3, delete: ['d1'] }));
    expect(reasons).toEqual(['too-large', 'too-many-changes', 'invalid', 'gap']);
    expect(await sync.handle(json({ seq: 1, delete: ['d1'] }))).toMatchObject({ status: 'applied' });
  });

  test('batches are applied in the order they arrive, one at a time', async () => {
    const sync = await open();
    const all = await Promise.all(
      [1, 2, 3].map((seq) => sync.handle(json({ seq, upsert: [{ id: `d${seq}` }] }))),
    );
    expect(all.map((s) => s.status)).toEqual(['applied', 'applied', 'applied']);
  });
});

describe('profile batch format', () => {
  test.each([
    [{ upsert: [] }, /seq must be/],
    [{ seq: 0 }, /seq must be/],
    [{ seq: 1, upsert: {} }, /upsert must be a list/],
    [{ seq: 1, delete: 'd1' }, /delete must be a list/],
    [{ seq: 1, delete: [7] }, /delete\[0\] must be a device id/],
    [{ seq: 1, upsert: [{ id: '' }] }, /upsert\[0\]\.id must be 1 to 256/],
    [{ seq: 1, upsert: [{ id: 'd1' }], delete: ['d1'] }, /appears twice/],
    [{ seq: 1, upserts: [] }, /unknown key upserts/],
  ])('%j is refused', (batch, message) => {
    const parsed = parseProfileBatch(json(batch));
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.detail).toMatch(message);
  });

  test('JSON and CBOR carry the same batch', () => {
    const batch = { seq: 3, upsert: [{ id: 'd1', tags: { tier: 'gold' } }], delete: ['d2'] };
    const expected = { seq: 3, upserts: [{ id: 'd1', profile: batch.upsert[0] }], deletes: ['d2'] };
    expect(parseProfileBatch(json(batch))).toEqual({ ok: true, batch: expected });
    expect(parseProfileBatch(Buffer.from(encodeCbor(batch)))).toEqual({ ok: true, batch: expected });
    expect(parseProfileBatch(Buffer.from('[1]'))).toMatchObject({ ok: false });
  });
});
