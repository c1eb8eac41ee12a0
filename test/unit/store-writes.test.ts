import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AbstractBatchOperation } from 'abstract-level';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import type { Action } from '../../src/shared/index.js';
import { encodeCbor, openStore, type RootLevel, type Store } from '../../src/store/index.js';
import { CommandOutbox } from '../../src/store/command-outbox.js';
import { GroupCommit } from '../../src/store/group-commit.js';
import { Outbox } from '../../src/store/outbox.js';
import type { ReopenableLevel } from '../../src/store/reopenable-level.js';
import {
  delOp,
  prefixOf,
  putOp,
  StoreWrites,
  type EncodedOp,
  type EncodedWrite,
} from '../../src/store/store-writes.js';

let dir: string;
const stores: Store[] = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'vigil-store-writes-'));
});

afterEach(async () => {
  for (const s of stores.splice(0)) await s.close();
  await rm(dir, { recursive: true, force: true });
});

async function open(name: string): Promise<Store> {
  const store = await openStore(join(dir, name));
  stores.push(store);
  return store;
}

/** Every key and value of the database as stored, all areas. */
async function raw(db: RootLevel): Promise<Array<[string, string]>> {
  const out: Array<[string, string]> = [];
  for await (const [key, value] of db.iterator({ keyEncoding: 'utf8', valueEncoding: 'buffer' }))
    out.push([key, Buffer.from(value as Uint8Array).toString('hex')]);
  return out;
}

function action(id: string, actor = 'dev-1'): Action {
  return {
    id,
    gateway: 'gw1',
    scenario: 'overheat',
    action: 'inspect-device',
    actor,
    priority: 70,
    category: 'maintenance',
    decidedAt: 1_780_000_000_123,
    eventAt: 1_780_000_000_100,
    payload: { temp: 81.5, site: 'site-1' },
  };
}

describe('encoded writes', () => {
  test('write exactly what a public batch of the same operations writes', async () => {
    const areas = ['outbox', 'commands', 'delivered'] as const;
    const key = fc.string({ unit: 'binary', minLength: 1, maxLength: 12 });
    const op = fc.oneof(
      fc.record({
        type: fc.constant('put' as const),
        area: fc.constantFrom(...areas),
        key,
        bytes: fc.uint8Array(),
      }),
      fc.record({ type: fc.constant('del' as const), area: fc.constantFrom(...areas), key }),
    );
    let run = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.array(op, { minLength: 1, maxLength: 6 }), { maxLength: 5 }),
        fc.double(),
        async (batches, at) => {
          run += 1;
          const [viaPublic, viaEncoded] = [await open(`public-${run}`), await open(`encoded-${run}`)];
          const level = viaEncoded.db as ReopenableLevel;
          // As the store opens its areas: the outboxes' with raw values, `delivered` with its CBOR encoding.
          const publicAreas = {
            outbox: viaPublic.db.sublevel<string, Buffer>('outbox', { valueEncoding: 'buffer' }),
            commands: viaPublic.db.sublevel<string, Buffer>('commands', { valueEncoding: 'buffer' }),
            delivered: viaPublic.sublevels.delivered,
          };
          for (const batch of batches) {
            // The old way: each operation names its area, which encodes its value.
            await viaPublic.db.batch(
              batch.map((o) =>
                o.type === 'del'
                  ? { type: 'del' as const, sublevel: publicAreas[o.area], key: o.key }
                  : o.area === 'delivered'
                    ? { type: 'put' as const, sublevel: publicAreas.delivered, key: o.key, value: at }
                    : {
                        type: 'put' as const,
                        sublevel: publicAreas[o.area],
                        key: o.key,
                        value: Buffer.from(o.bytes),
                      },
              ) as unknown as Array<AbstractBatchOperation<RootLevel, string, unknown>>,
            );
            await level.writeEncoded(
              batch.map((o) => {
                const k = prefixOf(viaEncoded.sublevels[o.area]) + o.key;
                if (o.type === 'del') return delOp(k);
                return putOp(k, o.area === 'delivered' ? encodeCbor(at) : o.bytes);
              }),
              false,
            );
          }
          expect(await raw(viaEncoded.db)).toEqual(await raw(viaPublic.db));
          await viaPublic.close();
          await viaEncoded.close();
        },
      ),
      { numRuns: 25 },
    );
  });

  test('written while the database is being reopened, they wait for it and are kept', async () => {
    const store = await open('reopen');
    const level = store.db as ReopenableLevel;
    let written: Promise<void> | undefined;
    level.once('opening', () => {
      written = level.writeEncoded(
        [putOp(`${prefixOf(store.sublevels.outbox)}k`, Buffer.from([1, 2]))],
        true,
      );
    });
    await level.reopen();
    expect(written).toBeDefined();
    await written;
    expect(await raw(store.db)).toContainEqual(['!outbox!k', '0102']);
  });
});

describe('StoreWrites', () => {
  function counting(): {
    write: EncodedWrite;
    calls: Array<{ keys: string[]; sync: boolean }>;
    fail: () => void;
  } {
    const calls: Array<{ keys: string[]; sync: boolean }> = [];
    let failing = false;
    return {
      calls,
      fail: () => (failing = true),
      write: (ops: EncodedOp[], sync: boolean) => {
        calls.push({ keys: ops.map((o) => o.key), sync });
        return failing ? Promise.reject(new Error('disk full')) : Promise.resolve();
      },
    };
  }

  test('the writes of one turn are one batch, in order, synced if any asked; the next turn writes its own', async () => {
    const w = counting();
    const writes = new StoreWrites(w.write);
    const first = [writes.write([delOp('a'), delOp('b')], false), writes.write([delOp('c')], true)];
    expect(w.calls).toEqual([]);
    await Promise.all(first);
    expect(w.calls).toEqual([{ keys: ['a', 'b', 'c'], sync: true }]);
    await writes.write([delOp('d')], false);
    expect(w.calls).toEqual([
      { keys: ['a', 'b', 'c'], sync: true },
      { keys: ['d'], sync: false },
    ]);
  });

  test('a failed batch fails every write in it', async () => {
    const w = counting();
    const writes = new StoreWrites(w.write);
    w.fail();
    const results = await Promise.allSettled([
      writes.write([delOp('a')], false),
      writes.write([delOp('b')], false),
    ]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    expect(w.calls).toHaveLength(1);
  });

  test('an action queued for the cloud and for its device in one turn is one LevelDB write, read back after a reopen', async () => {
    const store = await open('shared');
    const level = store.db as ReopenableLevel;
    let calls = 0;
    const writes = new StoreWrites((ops, sync) => {
      calls += 1;
      return level.writeEncoded(ops, sync);
    });
    const outboxLevel = store.db.sublevel<string, Buffer>('outbox', { valueEncoding: 'buffer' });
    const commandsLevel = store.db.sublevel<string, Buffer>('commands', { valueEncoding: 'buffer' });
    const outbox = await Outbox.open(writes, {
      outbox: outboxLevel,
      delivered: store.sublevels.delivered,
      dropped: store.sublevels['outbox-dropped'],
    });
    const droppedLevel = store.db.sublevel<string, Buffer>('commands-dropped', { valueEncoding: 'buffer' });
    const commands = await CommandOutbox.open(writes, { commands: commandsLevel, dropped: droppedLevel });
    await Promise.all([outbox.add(action('a')), commands.add(action('a'))]);
    expect(calls).toBe(1);
    await Promise.all([outbox.markDelivered('a', 5), commands.acknowledge('a', 6), outbox.add(action('b'))]);
    expect(calls).toBe(2);
    await outbox.close();
    await commands.close();
    await store.close();

    const again = await open('shared');
    expect(again.outbox.next(10).map((a) => a.id)).toEqual(['b']);
    expect(again.outbox.next(10)[0]).toEqual(action('b'));
    expect(again.outbox.deliveredCount).toBe(1);
    expect(again.commands.size).toBe(0);
    expect(again.commands.isAcknowledged('a')).toBe(true);
  });
});

describe('GroupCommit', () => {
  test('a batch begun as the previous one settles is written too', async () => {
    const written: string[][] = [];
    const commits = new GroupCommit<string, { durable: boolean }>(
      (ops) => {
        written.push([...ops]);
        return Promise.resolve();
      },
      () => undefined,
    );
    const first = commits.batch();
    first.ops.push('a');
    // Straight from the first batch's settlement, before anything else runs.
    const second = first.committed.then(() => {
      const batch = commits.batch();
      batch.ops.push('b');
      return batch.committed;
    });
    await second;
    expect(written).toEqual([['a'], ['b']]);
  });
});
