import { once } from 'node:events';
import { join } from 'node:path';
import { finished } from 'node:stream/promises';
import { constants, crc32, createZstdCompress, zstdCompressSync, zstdDecompressSync } from 'node:zlib';
import { Decoder, Encoder } from 'cbor-x';
import type { Logger } from 'pino';
import type { ArbiterStateLists, SavedArbiterState } from '../actions/index.js';
import type { EngineState, GroupState } from '../engine/index.js';
import { DataFormatError, plainCbor } from '../shared/index.js';
import type { WallState } from './clock.js';
import type { DuplicateEntry } from './duplicate-filter.js';
import type { RulesRecord } from './journal-records.js';
import type { JournalStorage } from './journal-storage.js';

/** Everything the gateway's decisions depend on, as of one journal record. */
export interface CheckpointState {
  version: 1;
  /** The last journal record this state includes; recovery replays the records after it. */
  seq: number;
  /** Gateway time when it was taken. */
  at: number;
  engine: EngineState;
  arbiter: SavedArbiterState;
  /** When each device was last heard from (its events and its connection changes). */
  lastSeen: Array<[actor: string, at: number]>;
  duplicates: DuplicateEntry[];
  /** The rules the state was taken under (checkpoints written before rules were journaled have none). */
  rules?: RulesRecord;
  /** How wall time related to gateway time (src/runtime/clock.ts); absent before 0.2: offset 0, synchronised. */
  clock?: WallState;
  /** The release that wrote it (named when a build that cannot read it refuses it); absent before 0.2. */
  writtenBy?: string;
}

/** How many checkpoints are kept: the newest, and one before it in case the newest cannot be read. */
const KEEP = 2;
/** The first format: one CBOR body (still read). */
const MAGIC = Buffer.from('VGCK');
/** Encoded a chunk at a time: a CBOR sequence (see `CheckpointEncoder`; still read). */
const MAGIC_CHUNKED = Buffer.from('VGC2');
/** The same CBOR sequence compressed with zstd (`CompressedBody`): what this build writes. */
const MAGIC_ZSTD = Buffer.from('VGC3');
/**
 * zstd's default level, with a window of up to 8 MiB instead of the 2 MiB it picks for large inputs: scenarios that
 * window the same readings (an average over 5 minutes and over an hour of the same field) hold them once per scenario, a
 * scenario's groups apart in the file. A smaller state gets a window and tables its own size (`zstdParams`).
 */
const ZSTD_LEVEL = 3;
const ZSTD_WINDOW_LOG_MAX = 23;
/** zstd's smallest window. */
const ZSTD_WINDOW_LOG_MIN = 10;
/** The tables level 3 has for large inputs: a hash table of 2¹⁷ entries and a chain table of 2¹⁶. */
const ZSTD_HASH_LOG_MAX = 17;
const ZSTD_CHAIN_LOG_MAX = 16;

/**
 * zstd's parameters for a body of about `bytes`. The window and the tables are what compressing and reading the file
 * take in memory, allocated as one block and freed at the end: zstd sizes them for the largest input unless told, about
 * 10 MB, and glibc, once it has freed a block that large, keeps every later allocation up to that size in its heap
 * for the rest of the process. Sized to the body, a small state's checkpoint takes a few kilobytes; a body larger than
 * its hint is still compressed, only with a shorter reach back.
 */
export function zstdParams(bytes: number): Record<number, number> {
  const windowLog = windowLogFor(bytes);
  return {
    [constants.ZSTD_c_compressionLevel]: ZSTD_LEVEL,
    [constants.ZSTD_c_windowLog]: windowLog,
    [constants.ZSTD_c_hashLog]: Math.min(ZSTD_HASH_LOG_MAX, windowLog + 1),
    [constants.ZSTD_c_chainLog]: Math.min(ZSTD_CHAIN_LOG_MAX, windowLog),
  };
}

/** The window for a body of about `bytes`: its size rounded up to a power of two, from 1 KiB to 8 MiB. */
function windowLogFor(bytes: number): number {
  return Math.min(
    ZSTD_WINDOW_LOG_MAX,
    Math.max(ZSTD_WINDOW_LOG_MIN, Math.ceil(Math.log2(Math.max(1, bytes)))),
  );
}

/**
 * The compressor's output buffer for a body of about `bytes`: a task on libuv's pool fills at most one, so a batch of
 * megabytes that fit in one is one task, not one every 16 KiB (zlib's default); an eighth of the window, from 16 KiB
 * to 1 MiB, so that a small state's checkpoint allocates no more than it did.
 */
function zstdChunkBytes(bytes: number): number {
  const windowLog = windowLogFor(bytes);
  return 2 ** Math.min(20, Math.max(14, windowLog - 3));
}

const HEADER_BYTES = 12;
const NAME = /^checkpoint-(\d{16})\.cbor$/;

const encoder = new Encoder({ useRecords: false, mapsAsObjects: true });
const decoder = new Decoder({ useRecords: false, mapsAsObjects: true });

/**
 * Checkpoints in the journal's directory, one file each, replaced atomically: a crash while one is written
 * leaves the previous ones intact. The file is `VGC3`, the length and a CRC-32 of what follows, then the CBOR
 * sequence of `CheckpointEncoder` compressed with zstd; `VGC2` (the sequence as it is) and `VGCK` (one CBOR body),
 * the formats before, are still read.
 */
export class Checkpoints {
  /** The checkpoints on disk, by journal record, oldest first. */
  private kept: number[] = [];
  private readonly known = new Map<number, { at: number; bytes: number }>();
  /** How many bytes the state `latest` read was encoded to, before compression (0 when it read none). */
  latestEncodedBytes = 0;

  constructor(
    private readonly dir: string,
    private readonly storage: JournalStorage,
    private readonly logger: Logger,
  ) {}

  /** Recovery may need the records after this one: it falls back to the checkpoint before the newest. */
  get retainAfterSeq(): number | undefined {
    return this.kept[this.kept.length - KEEP] ?? this.kept[0];
  }

  /** The newest checkpoint that can be read; damaged ones are logged and skipped. */
  async latest(): Promise<CheckpointState | undefined> {
    const seqs = await this.scan();
    for (const seq of [...seqs].reverse()) {
      const path = this.path(seq);
      try {
        const buf = await this.storage.read(path);
        const decoded = decode(buf, path);
        if (decoded !== undefined && decoded.state.seq === seq) {
          const { state, encodedBytes } = decoded;
          this.known.set(seq, { at: state.at, bytes: buf.length });
          this.latestEncodedBytes = encodedBytes;
          return state;
        }
        this.logger.error({ checkpoint: path }, 'checkpoint is damaged; trying the one before it');
      } catch (err) {
        // Not damage: falling back would lose what the newer build recorded since the older checkpoint.
        if (err instanceof DataFormatError) throw err;
        this.logger.error({ err, checkpoint: path }, 'checkpoint cannot be read; trying the one before it');
      }
    }
    return undefined;
  }

  /**
   * Writes `state` (or the items of a checkpoint encoded whole) durably, compressed in one go, then deletes the
   * checkpoints beyond the ones kept; returns the file's size in bytes.
   */
  async write(state: CheckpointState | EncodedCheckpoint): Promise<number> {
    const items = ('chunks' in state ? state : encodeCheckpoint(state)).chunks.slice(1);
    const whole = Buffer.concat(items);
    const body = zstdCompressSync(whole, { params: zstdParams(whole.length) });
    await this.storage.replace(this.path(state.seq), [fileHead(MAGIC_ZSTD, body.length, crc32(body)), body]);
    const bytes = HEADER_BYTES + body.length;
    this.written(state, bytes);
    return bytes;
  }

  /**
   * Writes the checkpoint `body` hands out while it is encoded, compressed on the way (`CompressedBody`): each batch
   * goes to the compressor, and what it gives back to the file, before the next is encoded, so the encoded file is
   * never all in memory. `bytesHint` is about how many bytes `body` will hand out, for the compressor's memory
   * (`zstdParams`). The file is in place, durably, once `body` has ended and it is written whole; returns its size in
   * bytes.
   */
  async writeStreamed(
    state: { seq: number; at: number },
    body: AsyncIterable<readonly Buffer[]>,
    bytesHint: number,
  ): Promise<number> {
    const compressed = new CompressedBody(body, bytesHint);
    await this.storage.replace(this.path(state.seq), {
      headBytes: HEADER_BYTES,
      body: compressed.chunks(),
      head: () => compressed.head(),
    });
    const bytes = compressed.size;
    this.written(state, bytes);
    return bytes;
  }

  /** Finds the checkpoints on disk; returns their journal records, oldest first (none when `dir` cannot be read). */
  async scan(): Promise<number[]> {
    let names: string[];
    try {
      names = await this.storage.list(this.dir);
    } catch {
      return [];
    }
    this.kept = names
      .map((n) => NAME.exec(n))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => Number(m[1]))
      .sort((a, b) => a - b);
    return [...this.kept];
  }

  /** Every checkpoint kept, oldest first (for one found at start, `at` is when its file was written). */
  async list(): Promise<KeptCheckpoint[]> {
    const list: KeptCheckpoint[] = [];
    for (const seq of this.kept) {
      let info = this.known.get(seq);
      if (info === undefined) {
        const found = await this.storage.stat(this.path(seq)).catch(() => undefined);
        if (found === undefined) continue;
        info = { at: found.mtimeMs, bytes: found.bytes };
        this.known.set(seq, info);
      }
      list.push({ seq, ...info });
    }
    return list;
  }

  /** The checkpoint taken at journal record `seq`, or undefined when it is missing or cannot be read. */
  async read(seq: number): Promise<CheckpointState | undefined> {
    try {
      const state = decode(await this.storage.read(this.path(seq)), this.path(seq))?.state;
      return state?.seq === seq ? state : undefined;
    } catch (err) {
      if (err instanceof DataFormatError) throw err;
      return undefined;
    }
  }

  /** Deletes the checkpoints before `seq`, always keeping the newest ones recovery may fall back to. */
  async dropBefore(seq: number): Promise<void> {
    const protectedFrom = this.kept[this.kept.length - KEEP] ?? Number.NEGATIVE_INFINITY;
    const stale = this.kept.filter((s) => s < Math.min(seq, protectedFrom));
    this.kept = this.kept.filter((s) => !stale.includes(s));
    for (const old of stale) {
      this.known.delete(old);
      await this.storage.remove(this.path(old)).catch((err: unknown) => {
        this.logger.warn({ err, checkpoint: this.path(old) }, 'old checkpoint not deleted');
      });
    }
  }

  private written(state: { seq: number; at: number }, bytes: number): void {
    this.kept = [...new Set([...this.kept, state.seq])].sort((a, b) => a - b);
    this.known.set(state.seq, { at: state.at, bytes });
  }

  private path(seq: number): string {
    return join(this.dir, `checkpoint-${String(seq).padStart(16, '0')}.cbor`);
  }
}

/**
 * What a checkpoint is encoded from: a `CheckpointState`, or one whose engine groups are iterables (the engine's view
 * as of the checkpoint, `Engine.checkpointView`, or its maps as they are).
 */
export interface CheckpointSource extends Omit<
  CheckpointState,
  'engine' | 'arbiter' | 'duplicates' | 'lastSeen'
> {
  /** The remembered publishes: a list, or a compact copy that writes its entries itself (`DuplicateFilter.snapshot`). */
  duplicates: DuplicateEntry[] | ColumnList;
  /** The last-seen times, or an iterable over a copy (`LastSeen.frozenEntries`). */
  lastSeen: Iterable<[actor: string, at: number]>;
  /** The arbiter's state, or the same with its long lists as iterables over a copy (`Arbiter.checkpointState`). */
  arbiter: SavedArbiterState | ArbiterStateLists;
  engine: {
    version: 1;
    scenarios: ReadonlyArray<
      Omit<EngineState['scenarios'][number], 'groups'> & {
        groups: Iterable<[group: string, state: GroupState]>;
      }
    >;
  };
}

/**
 * A long list kept as columns rather than an object per entry: `writeEntry` writes entry `index` with `plainCbor`'s
 * writer, the bytes `writeValue` writes for the entry as an object.
 */
export interface ColumnList {
  readonly length: number;
  writeEntry(index: number): void;
}

function isColumnList(list: unknown): list is ColumnList {
  return typeof (list as Partial<ColumnList>).writeEntry === 'function';
}

/** A checkpoint's file, encoded: the header first. */
export interface EncodedCheckpoint {
  seq: number;
  at: number;
  chunks: Buffer[];
  bytes: number;
}

/** Where a list of a checkpoint is, from the first item of the file (keys and indexes). */
type ListPath = Array<string | number>;

/**
 * A checkpoint encoded a chunk at a time, so that no single step stalls the event loop however large the state:
 * a CBOR sequence (RFC 8742) whose first item is the state with its long lists empty (the engine's groups, the
 * last-seen times, the packet ids, the arbiter's lists), and each further item `[path, entries]` appends a chunk
 * of entries to one of them. The CRC-32 and the length are computed as the items are encoded. The generators stop
 * after each chunk; the caller frees the event loop there.
 */
export class CheckpointEncoder {
  private readonly chunks: Buffer[] = [];
  private bytes = 0;
  private crc = 0;

  constructor(
    private readonly source: CheckpointSource,
    private readonly entriesPerChunk: number,
  ) {
    this.push(headOf(source));
  }

  /** The engine's groups, read as the source gives them: a view that inputs applied meanwhile do not reach. */
  *engineGroups(): Generator<void, void> {
    for (const [i, scenario] of this.source.engine.scenarios.entries()) {
      yield* this.list(['engine', 'scenarios', i, 'groups'], scenario.groups);
    }
  }

  /** The other long lists, which are copies already. */
  *copies(): Generator<void, void> {
    yield* this.list(['lastSeen'], this.source.lastSeen);
    const duplicates = this.source.duplicates;
    if (isColumnList(duplicates)) yield* this.columns(['duplicates'], duplicates);
    else yield* this.list(['duplicates'], duplicates);
    for (const [key, value] of Object.entries(this.source.arbiter)) {
      if (isList(value)) yield* this.list(['arbiter', key], value);
    }
  }

  /** The file: `VGC2`, the length and the CRC-32 of the items, then the items (those not taken yet). */
  finish(): EncodedCheckpoint {
    return {
      seq: this.source.seq,
      at: this.source.at,
      chunks: [this.head(), ...this.take()],
      bytes: this.size,
    };
  }

  /** The items encoded since the last call, which the encoder lets go of. */
  take(): Buffer[] {
    return this.chunks.splice(0);
  }

  /** The file's header, of the items encoded so far: `VGC2`, their length and their CRC-32. */
  head(): Buffer {
    return fileHead(MAGIC_CHUNKED, this.bytes, this.crc);
  }

  /** The file's size in bytes, of the items encoded so far. */
  get size(): number {
    return HEADER_BYTES + this.bytes;
  }

  /**
   * The items `[path, entries]` of a list, `entriesPerChunk` entries each, each entry written as it is read: the
   * entries (the engine's groups made into plain states, the arbiter's keys) are garbage at once, never a chunk of
   * them held, so that none lives long enough to be promoted to V8's old generation, which a checkpoint would
   * otherwise grow by tens of MB (docs/benchmarks.md, "Memory given back when quiet").
   */
  private *list(path: ListPath, entries: Iterable<unknown>): Generator<void, void> {
    let count = 0;
    let countAt = 0;
    for (const entry of entries) {
      if (count === 0) countAt = openItem(path);
      writeEntry(entry);
      if (++count < this.entriesPerChunk) continue;
      this.add(closeItem(countAt, count));
      count = 0;
      yield;
    }
    if (count > 0) {
      this.add(closeItem(countAt, count));
      yield;
    }
  }

  /** As `list`, the same items byte for byte, written from the columns without an object per entry. */
  private *columns(path: ListPath, list: ColumnList): Generator<void, void> {
    for (let from = 0; from < list.length; from += this.entriesPerChunk) {
      const to = Math.min(list.length, from + this.entriesPerChunk);
      plainCbor.startRecord();
      plainCbor.writeArrayHead(2);
      plainCbor.writeValue(path);
      plainCbor.writeArrayHead(to - from);
      for (let i = from; i < to; i++) list.writeEntry(i);
      this.add(plainCbor.takeWritten());
      yield;
    }
  }

  private push(item: unknown): void {
    // The bytes cbor-x writes, by the plain writer where it can (no boxed numbers: cbor-x's encoder runs generic in
    // the gateway); each item in a buffer of its own, as cbor-x hands out a fresh part of its buffer on every call.
    this.add(plainCbor.encodePlain(item) ?? encoder.encode(item));
  }

  private add(bytes: Buffer): void {
    this.chunks.push(bytes);
    this.bytes += bytes.length;
    this.crc = crc32(bytes, this.crc);
  }
}

/** A checkpoint file's header: its format, and the length and CRC-32 of what follows. */
function fileHead(magic: Buffer, bytes: number, crc: number): Buffer {
  const header = Buffer.alloc(HEADER_BYTES);
  magic.copy(header, 0);
  header.writeUInt32LE(bytes, 4);
  header.writeUInt32LE(crc, 8);
  return header;
}

/**
 * A checkpoint's items compressed as they are encoded, for a `VGC3` file: through one zstd stream, which compresses on
 * libuv's thread pool, not on the event loop. Each batch is handed to the stream, and what it has given back by then
 * is handed on; the header's length and CRC-32 are those of what was handed on.
 */
class CompressedBody {
  private bytes = 0;
  private crc = 0;

  /** `sizeHint`: about how many bytes `items` hold, for the compressor's window (`zstdParams`). */
  constructor(
    private readonly items: AsyncIterable<readonly Buffer[]>,
    private readonly sizeHint: number,
  ) {}

  get size(): number {
    return HEADER_BYTES + this.bytes;
  }

  head(): Buffer {
    return fileHead(MAGIC_ZSTD, this.bytes, this.crc);
  }

  async *chunks(): AsyncGenerator<readonly Buffer[]> {
    const zstd = createZstdCompress({
      params: zstdParams(this.sizeHint),
      chunkSize: zstdChunkBytes(this.sizeHint),
    });
    const out: Buffer[] = [];
    zstd.on('data', (chunk: Buffer) => out.push(chunk));
    const done = finished(zstd);
    // A failure surfaces from `done` (or a write waiting for room), not as an unhandled error event.
    done.catch(() => undefined);
    try {
      for await (const batch of this.items) {
        // One write a batch: the stream compresses each write in a task of its own, and every task waits for a turn
        // of the event loop to hand back its output, which under load is the longest part of a checkpoint.
        if (
          batch.length > 0 &&
          !zstd.write(batch.length === 1 ? (batch[0] as Buffer) : Buffer.concat(batch))
        ) {
          await once(zstd, 'drain');
        }
        if (out.length > 0) yield this.counted(out.splice(0));
      }
      zstd.end();
      await done;
      yield this.counted(out.splice(0));
    } finally {
      zstd.destroy();
    }
  }

  private counted(chunks: Buffer[]): Buffer[] {
    for (const chunk of chunks) {
      this.bytes += chunk.length;
      this.crc = crc32(chunk, this.crc);
    }
    return chunks;
  }
}

/** Room left for the count of an item's entries: the longest head of an array (up to 2³² entries). */
const COUNT_ROOM = 5;

/** Starts the item `[path, entries]` in the plain writer: its head and path; returns where the count goes. */
function openItem(path: ListPath): number {
  plainCbor.startRecord();
  plainCbor.writeArrayHead(2);
  plainCbor.writeValue(path);
  return plainCbor.reserve(COUNT_ROOM);
}

/** An entry of the item begun, as cbor-x writes it (by cbor-x itself when the plain writer leaves it to it). */
function writeEntry(entry: unknown): void {
  const at = plainCbor.writtenEnd();
  if (plainCbor.writeValue(entry)) return;
  plainCbor.rewind(at);
  plainCbor.writeRaw(encoder.encode(entry));
}

/**
 * The item begun, with `count` entries: the count's head in the fewest bytes, as cbor-x writes it, right before the
 * entries, and the item's head and path moved up against it.
 */
function closeItem(countAt: number, count: number): Buffer {
  const out = plainCbor.writtenBytes();
  const head =
    count < 0x18
      ? [0x80 | count]
      : count < 0x100
        ? [0x98, count]
        : count < 0x10000
          ? [0x99, count >> 8, count & 0xff]
          : [0x9a, (count >>> 24) & 0xff, (count >> 16) & 0xff, (count >> 8) & 0xff, count & 0xff];
  const shift = COUNT_ROOM - head.length;
  out.set(head, countAt + shift);
  out.copyWithin(shift, 0, countAt);
  return plainCbor.takeWritten(shift);
}

/** A list of the arbiter's state: an array, or an iterable over a copy. */
function isList(value: unknown): value is Iterable<unknown> {
  return typeof value === 'object' && value !== null && Symbol.iterator in value;
}

/** Encodes `state` in one go (no event loop to free: tests, tools). */
export function encodeCheckpoint(state: CheckpointSource): EncodedCheckpoint {
  const encoding = new CheckpointEncoder(state, Number.POSITIVE_INFINITY);
  for (const part of [encoding.engineGroups(), encoding.copies()]) {
    while (part.next().done !== true);
  }
  return encoding.finish();
}

/** The first item of the file: the state with the lists the other items fill in empty. */
function headOf(source: CheckpointSource): CheckpointState {
  const arbiter = Object.fromEntries(
    Object.entries(source.arbiter).map(([key, value]) => [key, isList(value) ? [] : (value as unknown)]),
  ) as unknown as SavedArbiterState;
  const scenarios = source.engine.scenarios.map(({ id, fingerprint, stats }) => ({
    id,
    fingerprint,
    stats,
    groups: [],
  }));
  return { ...source, engine: { version: 1, scenarios }, arbiter, lastSeen: [], duplicates: [] };
}

/**
 * The state in a checkpoint file, and the size of its CBOR before compression; undefined when it is damaged. Throws
 * DataFormatError for one written in a newer format: its body's `version` (or its engine's or arbiter's state's) above
 * `DATA_FORMATS.checkpoint`, or a container after `VGC3`.
 */
function decode(buf: Buffer, path: string): { state: CheckpointState; encodedBytes: number } | undefined {
  if (buf.length < HEADER_BYTES) return undefined;
  const magic = buf.subarray(0, 4);
  const compressed = magic.equals(MAGIC_ZSTD);
  const chunked = compressed || magic.equals(MAGIC_CHUNKED);
  if (!chunked && !magic.equals(MAGIC)) {
    const container = /^VGC([4-9])$/.exec(magic.toString('latin1'));
    if (container) throw new DataFormatError('checkpoint', Number(container[1]), path);
    return undefined;
  }
  const length = buf.readUInt32LE(4);
  const body = buf.subarray(HEADER_BYTES);
  if (body.length !== length || crc32(body) !== buf.readUInt32LE(8)) return undefined;
  const items = compressed ? decompressed(body) : body;
  if (items === undefined) return undefined;
  const value = (chunked ? decodeItems(items) : decoder.decode(items)) as
    Partial<CheckpointState> | null | undefined;
  if (value !== null && typeof value === 'object') refuseNewer(value, path);
  if (
    value === null ||
    value === undefined ||
    typeof value !== 'object' ||
    value.version !== 1 ||
    typeof value.seq !== 'number' ||
    typeof value.at !== 'number' ||
    typeof value.engine !== 'object' ||
    typeof value.arbiter !== 'object' ||
    !Array.isArray(value.lastSeen) ||
    !Array.isArray(value.duplicates)
  ) {
    return undefined;
  }
  return { state: value as CheckpointState, encodedBytes: items.length };
}

function refuseNewer(value: Partial<CheckpointState>, path: string): void {
  const writtenBy = typeof value.writtenBy === 'string' ? value.writtenBy : undefined;
  const engine = (value.engine as { version?: unknown } | undefined)?.version;
  const arbiter = (value.arbiter as { version?: unknown } | undefined)?.version;
  // The newest version of each part this build reads: body 1, engine state 1, arbiter state 2.
  const parts: Array<[unknown, number]> = [
    [value.version, 1],
    [engine, 1],
    [arbiter, 2],
  ];
  for (const [version, newest] of parts) {
    if (typeof version === 'number' && version > newest) {
      throw new DataFormatError('checkpoint', version, path, writtenBy);
    }
  }
}

/** A checkpoint on disk: the journal record it includes, when it was taken and its size. */
export interface KeptCheckpoint {
  seq: number;
  at: number;
  bytes: number;
}

/** A `VGC3` body's CBOR sequence; undefined when it is not one whole zstd stream. */
function decompressed(body: Buffer): Buffer | undefined {
  try {
    return zstdDecompressSync(body);
  } catch {
    return undefined;
  }
}

/** The state of a `VGC2` body (or a `VGC3` one, decompressed): its first item, with the entries of the others appended where they say. */
function decodeItems(body: Buffer): unknown {
  let head: unknown;
  let first = true;
  let whole = true;
  decoder.decodeMultiple(body, (item: unknown) => {
    if (first) {
      head = item;
      first = false;
      return true;
    }
    whole = appendItem(head, item);
    return whole;
  });
  return whole ? head : undefined;
}

function appendItem(head: unknown, item: unknown): boolean {
  if (!Array.isArray(item) || item.length !== 2) return false;
  const [path, entries] = item as [unknown, unknown];
  if (!Array.isArray(path) || !Array.isArray(entries)) return false;
  let list: unknown = head;
  for (const key of path) {
    if (typeof key !== 'string' && typeof key !== 'number') return false;
    if (list === null || typeof list !== 'object' || !Object.hasOwn(list, key)) return false;
    list = (list as Record<string | number, unknown>)[key];
  }
  if (!Array.isArray(list)) return false;
  for (const entry of entries) list.push(entry);
  return true;
}
