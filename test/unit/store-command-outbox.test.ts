import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import type { Action } from '../../src/shared/index.js';
import { StoreIoError } from '../../src/shared/index.js';
import {
  openStore,
  type CommandOutbox,
  type CommandOutboxLimits,
  type Store,
} from '../../src/store/index.js';
import type { ReopenableLevel } from '../../src/store/reopenable-level.js';

let dir: string;
let store: Store;
let outbox: CommandOutbox;

/** Closes the store, as a stop would, and opens it again with these limits. */
async function reopen(commands: Partial<CommandOutboxLimits> = {}): Promise<CommandOutbox> {
  await store.close();
  store = await openStore(dir, { commands });
  outbox = store.commands;
  return outbox;
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'vigil-commands-'));
  store = await openStore(dir);
  outbox = store.commands;
});

afterEach(async () => {
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

function command(id: string, actor = 'dev-1', payload: Record<string, unknown> = {}): Action {
  return {
    id,
    gateway: 'gw1',
    scenario: 'set-relay',
    action: 'set-relay',
    actor,
    priority: 50,
    category: 'control',
    decidedAt: 1_000,
    eventAt: 990,
    payload,
  };
}

const ids = (actions: readonly Action[]): string[] => actions.map((a) => a.id);

describe('CommandOutbox', () => {
  test('keeps each device its commands in decision order, also after a reopen', async () => {
    for (const [id, actor] of [
      ['a', 'dev-1'],
      ['b', 'dev-2'],
      ['c', 'dev-1'],
      ['d', 'dev-1'],
    ] as const) {
      expect(await outbox.add(command(id, actor))).toEqual({ status: 'queued', dropped: [] });
    }
    expect(ids(outbox.pending('dev-1'))).toEqual(['a', 'c', 'd']);
    expect(ids(outbox.pending('dev-2'))).toEqual(['b']);
    expect(outbox.pending('dev-3')).toEqual([]);

    await reopen();
    expect(outbox.size).toBe(4);
    expect(ids(outbox.pending('dev-1'))).toEqual(['a', 'c', 'd']);
    expect(outbox.devices().sort()).toEqual(['dev-1', 'dev-2']);
    expect(outbox.pending('dev-2')[0]).toEqual(command('b', 'dev-2'));
  });

  test('an id queued already is kept once', async () => {
    await outbox.add(command('a'));
    expect(await outbox.add(command('a', 'dev-1', { again: true }))).toEqual({ status: 'duplicate' });
    expect(outbox.pending('dev-1')).toEqual([command('a')]);
    await reopen();
    expect(await outbox.add(command('a'))).toEqual({ status: 'duplicate' });
    expect(outbox.size).toBe(1);
  });

  test('an acknowledged id leaves the outbox and is not queued again, also after a reopen', async () => {
    await outbox.add(command('a'));
    await outbox.add(command('b'));
    await outbox.acknowledge('a', 5_000);
    expect(ids(outbox.pending('dev-1'))).toEqual(['b']);
    expect(outbox.isAcknowledged('a')).toBe(true);
    expect(await outbox.add(command('a'))).toEqual({ status: 'acknowledged' });

    await reopen();
    expect(ids(outbox.pending('dev-1'))).toEqual(['b']);
    expect(await outbox.add(command('a'))).toEqual({ status: 'acknowledged' });
    expect(outbox.size).toBe(1);
  });

  test('known answers as add would, without a write: queued once on disk, acknowledged once taken', async () => {
    const adding = outbox.add(command('a'));
    expect(outbox.known('a')).toBeUndefined();
    await adding;
    expect(outbox.known('a')).toBe('queued');
    await outbox.add(command('b'));
    await outbox.acknowledge('b', 5_000);
    expect(outbox.known('b')).toBe('acknowledged');
    await outbox.add(command('c'));
    await outbox.remove('c');
    expect(outbox.known('c')).toBeUndefined();
    await reopen();
    expect([outbox.known('a'), outbox.known('b'), outbox.known('c')]).toEqual([
      'queued',
      'acknowledged',
      undefined,
    ]);
    expect(await outbox.add(command('a'))).toEqual({ status: 'duplicate' });
    expect(await outbox.add(command('b'))).toEqual({ status: 'acknowledged' });
  });

  test('a removed command (past its ttl) is gone and not remembered as acknowledged', async () => {
    await outbox.add(command('a'));
    await outbox.remove('a');
    await outbox.remove('unknown');
    expect(outbox.size).toBe(0);
    expect(outbox.bytes).toBe(0);
    await reopen();
    expect(outbox.size).toBe(0);
    expect(outbox.isAcknowledged('a')).toBe(false);
  });

  test('acknowledged ids are forgotten after acknowledgedForMs, and past maxAcknowledged the oldest first', async () => {
    await reopen({ acknowledgedForMs: 1_000, maxAcknowledged: 3 });
    for (const [i, id] of ['a', 'b', 'c', 'd'].entries()) {
      await outbox.add(command(id));
      await outbox.acknowledge(id, 10_000 + i * 100);
    }
    // Four acknowledged, three remembered: `a` was forgotten first.
    expect(['a', 'b', 'c', 'd'].map((id) => outbox.isAcknowledged(id))).toEqual([false, true, true, true]);

    expect(await outbox.forgetAcknowledged(11_100)).toBe(1);
    expect(['b', 'c', 'd'].map((id) => outbox.isAcknowledged(id))).toEqual([false, true, true]);

    await reopen({ acknowledgedForMs: 1_000, maxAcknowledged: 3 });
    expect(outbox.acknowledgedSize).toBe(2);
    expect(await outbox.add(command('b'))).toEqual({ status: 'queued', dropped: [] });
    expect(await outbox.add(command('c'))).toEqual({ status: 'acknowledged' });
  });

  test('a device over maxPerDevice loses its oldest command; the others keep theirs', async () => {
    await reopen({ maxPerDevice: 2 });
    await outbox.add(command('a', 'dev-1'));
    await outbox.add(command('x', 'dev-2'));
    await outbox.add(command('b', 'dev-1'));
    const result = await outbox.add(command('c', 'dev-1'));
    expect(result).toEqual({
      status: 'queued',
      dropped: [{ action: command('a', 'dev-1'), reason: 'device-full' }],
    });
    expect(ids(outbox.pending('dev-1'))).toEqual(['b', 'c']);
    expect(ids(outbox.pending('dev-2'))).toEqual(['x']);
    await reopen({ maxPerDevice: 2 });
    expect(ids(outbox.pending('dev-1'))).toEqual(['b', 'c']);
  });

  test('a full outbox drops the oldest command of all, by count and by bytes', async () => {
    await reopen({ maxCount: 3 });
    for (const [id, actor] of [
      ['a', 'dev-1'],
      ['b', 'dev-2'],
      ['c', 'dev-3'],
    ] as const) {
      await outbox.add(command(id, actor));
    }
    const result = await outbox.add(command('d', 'dev-4'));
    expect(result).toEqual({
      status: 'queued',
      dropped: [{ action: command('a', 'dev-1'), reason: 'full' }],
    });
    expect(outbox.size).toBe(3);
    expect(outbox.pending('dev-1')).toEqual([]);

    const one = outbox.bytes / 3;
    await reopen({ maxBytes: Math.ceil(one * 2.5) });
    // Opened over its bound: the next add makes room for itself (and only for itself).
    const big = await outbox.add(command('e', 'dev-5'));
    expect(big.status).toBe('queued');
    expect(outbox.bytes).toBeLessThanOrEqual(Math.ceil(one * 2.5));
    expect(outbox.size).toBe(2);
    expect(outbox.all().map((a) => a.id)).toEqual(['d', 'e']);
  });

  test('the ids of commands dropped to make room are remembered, also after a reopen: not queued again', async () => {
    await reopen({ maxCount: 2 });
    for (const id of ['a', 'b', 'c']) await outbox.add(command(id, `dev-${id}`));
    expect(outbox.known('a')).toBe('dropped');
    expect(outbox.isDropped('a')).toBe(true);
    expect(await outbox.add(command('a', 'dev-a'))).toEqual({ status: 'dropped' });
    expect(ids(outbox.all())).toEqual(['b', 'c']);

    await reopen({ maxCount: 2 });
    expect([outbox.known('a'), outbox.known('b'), outbox.droppedSize]).toEqual(['dropped', 'queued', 1]);
    expect(await outbox.add(command('a', 'dev-a'))).toEqual({ status: 'dropped' });
    expect(ids(outbox.all())).toEqual(['b', 'c']);
  });

  test('dropped ids are forgotten after acknowledgedForMs, and past maxDropped the oldest first', async () => {
    await reopen({ maxCount: 1, maxDropped: 2, acknowledgedForMs: 1_000 });
    // Each dropped at the gateway time of the command that made room: 1,000 ms apart.
    for (const [i, id] of ['a', 'b', 'c', 'd'].entries())
      await outbox.add({ ...command(id), decidedAt: 10_000 + i * 1_000 });
    expect(['a', 'b', 'c'].map((id) => outbox.isDropped(id))).toEqual([false, true, true]);

    expect(await outbox.forgetAcknowledged(13_000)).toBe(1);
    expect(['b', 'c'].map((id) => outbox.isDropped(id))).toEqual([false, true]);
    await reopen({ maxCount: 1, maxDropped: 2, acknowledgedForMs: 1_000 });
    expect(outbox.droppedSize).toBe(1);
    expect(await outbox.add({ ...command('b'), decidedAt: 14_000 })).toMatchObject({ status: 'queued' });
    expect(await outbox.add(command('c'))).toEqual({ status: 'dropped' });
  });

  test('a command from the cloud whose id was dropped is queued again: the cloud was told it was refused', async () => {
    await reopen({ maxCount: 1 });
    await outbox.add(command('cloud:x'), true);
    await outbox.add(command('y'), true);
    expect(outbox.isDropped('cloud:x')).toBe(true);
    expect(await outbox.add(command('cloud:x'), true)).toMatchObject({ status: 'queued' });
    expect(outbox.isDropped('cloud:x')).toBe(false);
    await reopen({ maxCount: 1 });
    expect([outbox.known('cloud:x'), outbox.known('y')]).toEqual(['queued', 'dropped']);
  });

  test('a failed write remembers no dropped id; the add tried again drops and remembers', async () => {
    await reopen({ maxCount: 1 });
    await outbox.add(command('a'));
    const db = store.db as ReopenableLevel;
    await db.close();
    await expect(outbox.add(command('b'))).rejects.toThrow();
    expect([outbox.isDropped('a'), ids(outbox.all())]).toEqual([false, ['a']]);
    await db.reopen();
    expect(await outbox.add(command('b'))).toMatchObject({ status: 'queued' });
    await reopen({ maxCount: 1 });
    expect([outbox.known('a'), ids(outbox.all())]).toEqual(['dropped', ['b']]);
  });

  test('a command larger than the whole outbox is not queued', async () => {
    await reopen({ maxBytes: 200 });
    expect(await outbox.add(command('a', 'dev-1', { blob: 'x'.repeat(500) }))).toEqual({
      status: 'too-large',
    });
    expect(outbox.size).toBe(0);
  });

  test('adds of one tick share one synced write, and each is readable only once written', async () => {
    const adds = ['a', 'b', 'c'].map((id) => outbox.add(command(id)));
    // Still being written: not handed out to be sent.
    expect(outbox.pending('dev-1')).toEqual([]);
    expect(outbox.size).toBe(3);
    await Promise.all(adds);
    expect(ids(outbox.pending('dev-1'))).toEqual(['a', 'b', 'c']);
  });

  test('entries that cannot be decoded are counted and skipped', async () => {
    await outbox.add(command('a'));
    const raw = store.db.sublevel<string, Buffer>('commands', { valueEncoding: 'buffer' });
    await raw.put('q!broken', Buffer.from([0xff, 0x00]));
    await raw.put('a!odd', Buffer.from('not cbor at all'));
    await reopen();
    expect(outbox.unreadableOnOpen).toBe(2);
    expect(ids(outbox.pending('dev-1'))).toEqual(['a']);
  });

  test('after close, writes are refused', async () => {
    await outbox.close();
    await expect(outbox.add(command('a'))).rejects.toBeInstanceOf(StoreIoError);
    await expect(outbox.acknowledge('a', 1)).rejects.toBeInstanceOf(StoreIoError);
  });
});
