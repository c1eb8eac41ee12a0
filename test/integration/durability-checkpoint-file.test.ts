import { copyFile, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32, zstdDecompressSync } from 'node:zlib';
import { Encoder } from 'cbor-x';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, test } from 'vitest';
import { Engine } from '../../src/engine/index.js';
import { compileRuleFiles, type RuleSet } from '../../src/rules/index.js';
import type { Event } from '../../src/shared/index.js';
import {
  CheckpointEncoder,
  Checkpoints,
  DecisionLoop,
  DurableInputs,
  encodeCheckpoint,
  fileJournalStorage,
  RulesInForce,
  rulesRecordOf,
  VirtualScheduler,
  type CheckpointState,
} from '../../src/runtime/index.js';
import { singleBodyState } from '../fixtures/checkpoints/single-body.js';
import { tempDir } from '../helpers/temp.js';
import { captureLogs } from './durability-faults.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function dir(): Promise<string> {
  const d = await tempDir();
  cleanups.push(() => d.remove());
  return d.path;
}

const FIXTURES = join(import.meta.dirname, '..', 'fixtures', 'checkpoints');
const fileOf = (seq: number) => `checkpoint-${String(seq).padStart(16, '0')}.cbor`;

/** The window a zstd frame asks its reader for, as a power of two (RFC 8878, 3.1.1.1.2): the frame header's byte. */
function frameWindowLog(frame: Buffer): number {
  expect(frame.readUInt32LE(0)).toBe(0xfd2fb528);
  // Single_Segment_flag: the window is the content's size, written instead.
  expect(frame[4]! & 0x20).toBe(0);
  return 10 + (frame[5]! >> 3);
}

function benchRules(): RuleSet {
  const files = {
    'quiet.yaml':
      'id: quiet\nwhen:\n  absent: reading\n  for: 1h\nthen:\n  action: check\n  to: [upstream]\n',
    'burst.yaml':
      'id: burst\nwhen:\n  event: reading\n  count: 5\n  within: 10m\nthen:\n  action: slow\n  to: [upstream]\n',
  };
  const loaded = compileRuleFiles(Object.entries(files).map(([path, text]) => ({ path, text })));
  if (!loaded.ok) throw new Error(JSON.stringify(loaded.problems));
  return loaded.rules;
}

/** A checkpoint of `devices` devices (two groups each, a last-seen time, a cooldown and a packet id each). */
function realisticState(devices: number, seq: number): { state: CheckpointState; engine: Engine } {
  const engine = new Engine(benchRules(), { gateway: 'gw' });
  for (let i = 0; i < devices; i++) {
    engine.onEvent(
      { actor: `dev-${i}`, type: 'reading', at: 1_000_000 + i, data: { n: i }, source: 'device' },
      undefined,
    );
  }
  const ids = Array.from({ length: devices }, (_, i) => i);
  const state: CheckpointState = {
    version: 1,
    seq,
    at: 2_000_000,
    engine: engine.snapshot(),
    arbiter: {
      version: 1,
      contact: ids.map((i) => [`dev-${i}`, [1_000_000 + i]]),
      cooldowns: ids.map((i) => [`burst/dev-${i}`, 1_600_000 + i]),
      active: ids.map((i) => [`dev-${i}`, 'maintenance', 1_000_000 + i]),
    },
    lastSeen: ids.map((i) => [`dev-${i}`, 1_000_000 + i]),
    duplicates: ids.map((i) => [`dev-${i}`, (i % 65_535) + 1, i * 7, 1_000_000 + i]),
    rules: { source: 'dir', version: 0, hash: 'abc', files: [{ path: 'quiet.yaml', text: 'id: quiet\n' }] },
  };
  return { state, engine };
}

describe('checkpoint files, encoded a chunk at a time', () => {
  test('a checkpoint of 100,000 groups encoded from the live engine reads back whole and restores the engine', async () => {
    const path = await dir();
    const { state, engine } = realisticState(50_000, 7);
    const encoder = new CheckpointEncoder({ ...state, engine: engine.liveState() }, 2_000);
    let steps = 0;
    for (const part of [encoder.engineGroups(), encoder.copies()]) {
      while (part.next().done !== true) steps++;
    }
    // 100,000 groups and five lists of 50,000 entries (last-seen, packet ids, the arbiter's three), 2,000 a step.
    expect(steps).toBe(50 + 5 * 25);
    const file = encoder.finish();
    const checkpoints = new Checkpoints(path, fileJournalStorage(), captureLogs().logger);
    const written = await checkpoints.write(file);
    const bytes = await readFile(join(path, fileOf(7)));
    expect(bytes.length).toBe(written);
    // Compressed: `VGC3`, then the items of the encoder's `VGC2` file through zstd.
    expect(bytes.subarray(0, 4).toString()).toBe('VGC3');
    expect(zstdDecompressSync(bytes.subarray(12)).equals(Buffer.concat(file.chunks.slice(1)))).toBe(true);
    expect(written).toBeLessThan(file.bytes / 3);

    const read = await new Checkpoints(path, fileJournalStorage(), captureLogs().logger).latest();
    expect(read).toEqual(state);
    const restored = Engine.restore(benchRules(), { gateway: 'gw' }, (read as CheckpointState).engine);
    expect(restored.snapshot()).toEqual(engine.snapshot());
  }, 60_000);

  test('each item is the bytes cbor-x writes for it', () => {
    const { state, engine } = realisticState(300, 7);
    const cborX = new Encoder({ useRecords: false, mapsAsObjects: true });
    const encoder = new CheckpointEncoder({ ...state, engine: engine.liveState() }, 50);
    for (const part of [encoder.engineGroups(), encoder.copies()]) while (part.next().done !== true);
    const items = encoder.finish().chunks.slice(1);
    expect(items.length).toBeGreaterThan(20);
    for (const item of items) expect(item.equals(cborX.encode(cborX.decode(item)))).toBe(true);
  });

  test('a file cut short anywhere, item boundaries included, is refused and the checkpoint before it is used', async () => {
    const path = await dir();
    const storage = fileJournalStorage();
    const checkpoints = new Checkpoints(path, storage, captureLogs().logger);
    const older = realisticState(30, 5).state;
    await checkpoints.write(older);
    const newer = realisticState(40, 9);
    const encoder = new CheckpointEncoder({ ...newer.state, engine: newer.engine.liveState() }, 7);
    for (const part of [encoder.engineGroups(), encoder.copies()]) while (part.next().done !== true);
    const file = encoder.finish();
    const whole = Buffer.concat(file.chunks);
    // Where each item ends: a prefix of a CBOR sequence is itself a valid sequence, only the header tells.
    const cuts: number[] = [];
    let end = 0;
    for (const chunk of file.chunks.slice(0, -1)) cuts.push((end += chunk.length));
    cuts.push(4, 11, Math.floor(whole.length / 2), whole.length - 1);
    const { logger, lines } = captureLogs();
    for (const cut of cuts) {
      await writeFile(join(path, fileOf(9)), whole.subarray(0, cut));
      expect(await new Checkpoints(path, storage, logger).latest(), `cut at ${cut}`).toEqual(older);
    }
    expect(lines.filter((l) => String(l.msg).includes('damaged')).length).toBe(cuts.length);
    await writeFile(join(path, fileOf(9)), whole);
    expect(await new Checkpoints(path, storage, logger).latest()).toEqual(newer.state);
  });

  test('a compressed file cut short anywhere, or whose body is not zstd, is refused and the one before it is used', async () => {
    const path = await dir();
    const storage = fileJournalStorage();
    const older = realisticState(30, 5).state;
    await new Checkpoints(path, storage, captureLogs().logger).write(older);
    const newer = realisticState(400, 9).state;
    await new Checkpoints(path, storage, captureLogs().logger).write(newer);
    const whole = await readFile(join(path, fileOf(9)));
    const { logger, lines } = captureLogs();
    const cuts = [4, 11, 12, 13, Math.floor(whole.length / 2), whole.length - 1];
    for (const cut of cuts) {
      await writeFile(join(path, fileOf(9)), whole.subarray(0, cut));
      expect(await new Checkpoints(path, storage, logger).latest(), `cut at ${cut}`).toEqual(older);
    }
    // A body that passes its CRC but is not one whole zstd stream: the stream's first half, its CRC made to match.
    const half = whole.subarray(12, 12 + Math.floor((whole.length - 12) / 2));
    const header = Buffer.alloc(12);
    header.write('VGC3', 0);
    header.writeUInt32LE(half.length, 4);
    header.writeUInt32LE(crc32(half), 8);
    await writeFile(join(path, fileOf(9)), Buffer.concat([header, half]));
    expect(await new Checkpoints(path, storage, logger).latest()).toEqual(older);
    expect(lines.filter((l) => String(l.msg).includes('damaged')).length).toBe(cuts.length + 1);
    await writeFile(join(path, fileOf(9)), whole);
    expect(await new Checkpoints(path, storage, logger).latest()).toEqual(newer);
  });

  test('a container newer than `VGC3` is refused as data of a newer format', async () => {
    const path = await dir();
    const storage = fileJournalStorage();
    await new Checkpoints(path, storage, captureLogs().logger).write(realisticState(3, 5).state);
    const header = Buffer.alloc(12);
    header.write('VGC4', 0);
    await writeFile(join(path, fileOf(9)), header);
    await expect(new Checkpoints(path, storage, captureLogs().logger).latest()).rejects.toThrow(/format 4/);
  });

  test('written as it is encoded, a checkpoint is the file encoded whole; a failure midway keeps the one before', async () => {
    const path = await dir();
    const storage = fileJournalStorage();
    const checkpoints = new Checkpoints(path, storage, captureLogs().logger);
    const older = realisticState(30, 5).state;
    await checkpoints.write(older);
    const newer = realisticState(3_000, 9);
    const source = () => ({ ...newer.state, engine: newer.engine.liveState() });
    const inOneGo = new CheckpointEncoder(source(), 500);
    for (const part of [inOneGo.engineGroups(), inOneGo.copies()]) while (part.next().done !== true);
    const whole = Buffer.concat(inOneGo.finish().chunks);
    // Each batch the items encoded since the one before, then the rest; `failAfter` batches, a write that fails.
    async function* body(encoder: CheckpointEncoder, failAfter = Infinity): AsyncGenerator<Buffer[]> {
      let batches = 0;
      for (const part of [encoder.engineGroups(), encoder.copies()]) {
        while (part.next().done !== true) {
          // Written before the next batch is asked for, as the gateway's turns of I/O are.
          await new Promise((resolve) => setImmediate(resolve));
          yield encoder.take();
          if (++batches === failAfter) throw new Error('no room left');
        }
      }
      yield encoder.take();
    }

    const failing = new CheckpointEncoder(source(), 500);
    await expect(checkpoints.writeStreamed(newer.state, body(failing, 3), whole.length)).rejects.toThrow(
      'no room left',
    );
    expect(await readdir(path)).toEqual([fileOf(5)]);
    expect(await new Checkpoints(path, storage, captureLogs().logger).latest()).toEqual(older);

    const encoder = new CheckpointEncoder(source(), 500);
    // A hint far below the body: compressed with zstd's smallest window, and still the same bytes.
    const written = await checkpoints.writeStreamed(newer.state, body(encoder), 1);
    const file = await readFile(join(path, fileOf(9)));
    expect(file.length).toBe(written);
    expect(file.subarray(0, 4).toString()).toBe('VGC3');
    expect(frameWindowLog(file.subarray(12))).toBe(10);
    expect(zstdDecompressSync(file.subarray(12)).equals(whole.subarray(12))).toBe(true);
    expect(encoder.take()).toEqual([]);
    expect(await new Checkpoints(path, storage, captureLogs().logger).latest()).toEqual(newer.state);
  });

  test("the compressor's window fits the state: a small one's file asks a reader for little memory, a large one's for 8 MiB", async () => {
    const path = await dir();
    const storage = fileJournalStorage();
    const checkpoints = new Checkpoints(path, storage, captureLogs().logger);
    // Written as the gateway writes them, with the hint its last checkpoint and the records since give.
    async function streamed(state: ReturnType<typeof realisticState>, bytesHint: number): Promise<Buffer> {
      const encoder = new CheckpointEncoder({ ...state.state, engine: state.engine.liveState() }, 500);
      async function* body(): AsyncGenerator<Buffer[]> {
        for (const part of [encoder.engineGroups(), encoder.copies()]) while (part.next().done !== true);
        await new Promise((resolve) => setImmediate(resolve));
        yield encoder.take();
      }
      await checkpoints.writeStreamed(state.state, body(), bytesHint);
      expect(await new Checkpoints(path, storage, captureLogs().logger).latest()).toEqual(state.state);
      return (await readFile(join(path, fileOf(state.state.seq)))).subarray(12);
    }

    const small = await streamed(realisticState(3, 5), 3_000);
    expect(zstdDecompressSync(small).length).toBeLessThanOrEqual(4_096);
    expect(frameWindowLog(small)).toBe(12);
    expect(frameWindowLog(await streamed(realisticState(3_000, 9), 50_000_000))).toBe(23);
  });

  test('written while every turn of the event loop is long, a checkpoint takes a few turns a batch, not one a chunk', async () => {
    const path = await dir();
    const storage = fileJournalStorage();
    const checkpoints = new Checkpoints(path, storage, captureLogs().logger);
    const { state, engine } = realisticState(20_000, 11);
    const encoder = new CheckpointEncoder({ ...state, engine: engine.liveState() }, 500);
    let chunks = 0;
    // Three batches, as an overloaded gateway hands them out: each stretch of encoding as long as a turn.
    async function* body(): AsyncGenerator<Buffer[]> {
      for (const part of [encoder.engineGroups(), encoder.copies()]) {
        while (part.next().done !== true) chunks++;
        await new Promise((resolve) => setImmediate(resolve));
        yield encoder.take();
      }
      yield encoder.take();
    }
    // A gateway past what it sustains: every turn of its loop is taken up by device input.
    let turns = 0;
    let writing = true;
    const busyTurn = (): void => {
      if (!writing) return;
      turns++;
      const until = performance.now() + 5;
      while (performance.now() < until);
      setImmediate(busyTurn);
    };
    setImmediate(busyTurn);
    const written = await checkpoints
      .writeStreamed(state, body(), 4_000_000)
      .finally(() => (writing = false));
    // 40,000 groups and five lists of 20,000 entries, 500 a chunk.
    expect(chunks).toBe(80 + 5 * 40);
    // The file opened, three batches each compressed in one task of the pool and written, the end of the stream, the
    // sync and the rename: a turn or a few each (about 25 in all here; more where the pool is slower than a turn). One
    // write to the compressor a chunk took at least a turn per chunk: 331.
    expect(turns).toBeLessThan(100);
    expect((await readFile(join(path, fileOf(11)))).length).toBe(written);
    expect(await new Checkpoints(path, storage, captureLogs().logger).latest()).toEqual(state);
  });

  test('a crash while a checkpoint is written leaves its temporary file, which is ignored and later replaced', async () => {
    const path = await dir();
    const storage = fileJournalStorage();
    const checkpoints = new Checkpoints(path, storage, captureLogs().logger);
    const older = realisticState(30, 5).state;
    await checkpoints.write(older);
    const newer = encodeCheckpoint(realisticState(2_000, 9).state);
    const half = Buffer.concat(newer.chunks).subarray(0, Math.floor(newer.bytes / 2));
    await writeFile(join(path, `.${fileOf(9)}.tmp`), half);

    const after = new Checkpoints(path, storage, captureLogs().logger);
    expect(await after.latest()).toEqual(older);
    await after.write(newer);
    expect((await readdir(path)).sort()).toEqual([fileOf(5), fileOf(9)]);
    expect((await new Checkpoints(path, storage, captureLogs().logger).latest())?.seq).toBe(9);
  });

  test('an item that does not append to a list of the first is refused, CRC or not', async () => {
    const path = await dir();
    const storage = fileJournalStorage();
    const older = realisticState(3, 5).state;
    await new Checkpoints(path, storage, captureLogs().logger).write(older);
    const codec = new Encoder({ useRecords: false, mapsAsObjects: true });
    const head = encodeCheckpoint({ ...older, seq: 9, lastSeen: [] }).chunks[1] as Buffer;
    for (const item of [
      [['seq'], [1]],
      [['__proto__'], [1]],
      [['engine', 'scenarios', 5, 'groups'], [['dev-0', {}]]],
      [['lastSeen'], 'dev-0'],
      'lastSeen',
    ]) {
      const body = Buffer.concat([head, codec.encode(item)]);
      const header = Buffer.alloc(12);
      header.write('VGC2', 0);
      header.writeUInt32LE(body.length, 4);
      header.writeUInt32LE(crc32(body), 8);
      await writeFile(join(path, fileOf(9)), Buffer.concat([header, body]));
      expect(
        await new Checkpoints(path, storage, captureLogs().logger).latest(),
        JSON.stringify(item),
      ).toEqual(older);
    }
  });
});

describe('checkpoints in the first format (one CBOR body)', () => {
  /** How the first format was written: `VGCK`, the length and the CRC-32 of one CBOR body. */
  function singleBody(state: CheckpointState): Buffer {
    const body = new Encoder({ useRecords: false, mapsAsObjects: true }).encode(state);
    const header = Buffer.alloc(12);
    header.write('VGCK', 0);
    header.writeUInt32LE(body.length, 4);
    header.writeUInt32LE(crc32(body), 8);
    return Buffer.concat([header, body]);
  }

  test('a file the first format wrote is read, and is what its encoding gives', async () => {
    const fixture = await readFile(join(FIXTURES, fileOf(42)));
    expect(singleBody(singleBodyState()).equals(fixture)).toBe(true);
    const path = await dir();
    await copyFile(join(FIXTURES, fileOf(42)), join(path, fileOf(42)));
    expect(await new Checkpoints(path, fileJournalStorage(), captureLogs().logger).latest()).toEqual(
      singleBodyState(),
    );
  });

  test('after an upgrade the new format wins, and a damaged newest falls back to the old file', async () => {
    const path = await dir();
    const storage = fileJournalStorage();
    const { state } = realisticState(5_000, 100);
    await writeFile(join(path, fileOf(90)), singleBody({ ...state, seq: 90 }));
    const checkpoints = new Checkpoints(path, storage, captureLogs().logger);
    expect((await checkpoints.latest())?.seq).toBe(90);
    await checkpoints.write(state);
    expect((await new Checkpoints(path, storage, captureLogs().logger).latest())?.seq).toBe(100);

    const newest = join(path, fileOf(100));
    const bytes = await readFile(newest);
    bytes[bytes.length - 1] = (bytes[bytes.length - 1] ?? 0) ^ 0xff;
    await writeFile(newest, bytes);
    expect(await new Checkpoints(path, storage, captureLogs().logger).latest()).toEqual({
      ...state,
      seq: 90,
    });
  });
});

describe('a checkpoint taken while inputs arrive', () => {
  async function open(
    path: string,
    clock: { now: () => number },
    onLiveEvent?: (ev: Event) => void,
    deps: {
      logger?: ReturnType<typeof captureLogs>['logger'];
      pendingWrites?: () => Array<Promise<unknown>>;
    } = {},
  ) {
    const ruleSet = benchRules();
    const durable = await DurableInputs.open({
      dir: path,
      logger: deps.logger ?? captureLogs().logger,
      registry: new Registry(),
      settings: { checkpointIntervalMs: 3_600_000 },
    });
    const restored = durable.restore(ruleSet, { gateway: 'gw' }, rulesRecordOf(ruleSet, 'dir', 0));
    const rules = new RulesInForce(restored.rules, restored.engine, restored.arbiter);
    const loop = new DecisionLoop({
      rules,
      scheduler: new VirtualScheduler(clock.now()),
      outputs: { verdict: () => undefined },
    });
    await durable.recover({
      loop,
      clock,
      profiles: { peek: () => ({ hit: true, profile: undefined }), get: () => Promise.resolve(undefined) },
      pendingWrites: deps.pendingWrites ?? (() => []),
      forward: () => undefined,
      onLiveEvent,
    });
    return { durable, rules };
  }

  test("its debug line says how long it took to encode, and how long it then waited for its decisions' writes", async () => {
    const path = await dir();
    let now = 1_000_000;
    const clock = { now: () => now++ };
    const logs = captureLogs('debug');
    // A decision's write still under way once the checkpoint is encoded (when it asks for the pending writes), done
    // 50 ms later: it goes in place only after the write.
    let finish = (): void => undefined;
    const write = new Promise<void>((resolve) => (finish = resolve));
    const { durable } = await open(path, clock, undefined, {
      logger: logs.logger,
      pendingWrites: () => {
        setTimeout(finish, 50);
        return [write];
      },
    });
    await durable.submitEvent(
      { actor: 'dev-1', type: 'reading', at: clock.now(), data: { n: 1 }, source: 'device' },
      undefined,
      'write',
    );
    await durable.checkpoint();
    const line = logs.lines.filter((l) => l.msg === 'checkpoint written').at(-1) as {
      waitedWrites: number;
      readyMs: number;
      encodedMs: number;
      ms: number;
    };
    expect(line.waitedWrites).toBe(1);
    expect(line.readyMs).toBeGreaterThanOrEqual(40);
    expect(line.encodedMs).toBeGreaterThanOrEqual(0);
    expect(line.encodedMs + line.readyMs).toBeLessThanOrEqual(line.ms + 1);
    await durable.close();
  });

  test('applies what is recorded while the engine is encoded, writes the state of its instant, and a crash after it recovers the live state exactly', async () => {
    const path = await dir();
    let now = 1_000_000;
    const clock = { now: () => now++ };
    const devices = 30_000;
    const applied = new WeakSet<Event>();
    const inOrder: Event[] = [];
    const first = await open(path, clock, (ev) => {
      applied.add(ev);
      inOrder.push(ev);
    });
    let held = 0;
    const submit = async (i: number): Promise<void> => {
      const ev: Event = {
        actor: `dev-${i}`,
        type: 'reading',
        at: clock.now(),
        data: { n: i },
        source: 'device',
      };
      await first.durable.submitEvent(ev, undefined, 'write');
      // Recorded and acknowledged, and applied by then: a checkpoint holds nothing back.
      if (!applied.has(ev)) held++;
    };
    for (let i = 0; i < devices; i += 1_000) {
      await Promise.all(Array.from({ length: 1_000 }, (_, k) => submit(i + k)));
    }
    await first.durable.checkpoint();

    // Readings of the devices encoded last and of new ones, one per turn of the event loop, all along.
    let checkpointing = true;
    const during: Array<Promise<void>> = [];
    let n = 0;
    const feed = (): void => {
      if (!checkpointing) return;
      during.push(submit(n++ % 2 === 0 ? devices - 1 - (n % 100) : devices + n));
      setImmediate(feed);
    };
    setImmediate(feed);
    await first.durable.checkpoint();
    checkpointing = false;
    await Promise.all(during);
    expect(held).toBe(0);

    // The checkpoint is the engine after the events applied before it was taken, none of those after: each event
    // has a time of its own, which its device's silence keeps.
    const written = (await new Checkpoints(
      path,
      fileJournalStorage(),
      captureLogs().logger,
    ).latest()) as CheckpointState;
    const quiet = written.engine.scenarios.find((s) => s.id === 'quiet')?.groups ?? [];
    const lastAt = Math.max(...quiet.map(([, st]) => (st as { last: { at: number } }).last.at));
    const before = inOrder.filter((ev) => ev.at <= lastAt);
    // Taken before the first reading that came in while it was encoded and written; those were applied meanwhile.
    expect(before.length).toBe(devices);
    expect(inOrder.length).toBeGreaterThan(devices);
    const expected = new Engine(benchRules(), { gateway: 'gw' });
    for (const ev of before) expected.onEvent(ev, undefined);
    expect(written.engine).toEqual(expected.snapshot());

    const live = first.rules.engine.snapshot();
    const arbiter = first.rules.arbiter.snapshot();
    expect(live.scenarios.find((s) => s.id === 'quiet')?.groups.length).toBeGreaterThan(devices);

    // The crash: nothing closed, nothing more written.
    cleanups.push(() => first.durable.close().catch(() => undefined));
    const second = await open(path, clock);
    cleanups.push(() => second.durable.close());
    expect(second.rules.engine.snapshot()).toEqual(live);
    expect(second.rules.arbiter.snapshot()).toEqual(arbiter);
  }, 60_000);

  test('the checkpoint after a restart is compressed with a window the size of the state recovered, whatever the tail', async () => {
    const path = await dir();
    let now = 1_000_000;
    const clock = { now: () => now++ };
    const first = await open(path, clock);
    const submit = (i: number) =>
      first.durable.submitEvent(
        { actor: `dev-${i}`, type: 'reading', at: clock.now(), data: { n: i }, source: 'device' },
        undefined,
        'write',
      );
    await Promise.all(Array.from({ length: 5_000 }, (_, i) => submit(i)));
    // The first may be the one the start took, under way since.
    await first.durable.checkpoint();
    await first.durable.checkpoint();
    // One reading after it: the restart's tail, a hundred bytes by the policy's measure.
    await submit(5_000);
    cleanups.push(() => first.durable.close().catch(() => undefined));

    const recovered = new Checkpoints(path, fileJournalStorage(), captureLogs().logger);
    await recovered.latest();
    const stateBytes = recovered.latestEncodedBytes;
    expect(stateBytes).toBeGreaterThan(100_000);

    const second = await open(path, clock);
    cleanups.push(() => second.durable.close());
    await second.durable.checkpointIfOwed();
    const names = (await readdir(path)).filter((name) => /^checkpoint-\d{16}\.cbor$/.test(name)).sort();
    const newest = await readFile(join(path, names[names.length - 1] as string));
    expect(zstdDecompressSync(newest.subarray(12)).length).toBeGreaterThan(stateBytes);
    expect(2 ** frameWindowLog(newest.subarray(12))).toBeGreaterThanOrEqual(stateBytes);
  }, 60_000);
});
