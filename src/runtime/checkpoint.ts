import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { Decoder, Encoder } from 'cbor-x';
import type { Logger } from 'pino';
import type { ArbiterState } from '../actions/index.js';
import type { EngineState } from '../engine/index.js';
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
  arbiter: ArbiterState;
  /** When each device was last heard from (its events and its connection changes). */
  lastSeen: Array<[actor: string, at: number]>;
  duplicates: DuplicateEntry[];
  /** The rules the state was taken under (checkpoints written before rules were journaled have none). */
  rules?: RulesRecord;
}

/** How many checkpoints are kept: the newest, and one before it in case the newest cannot be read. */
const KEEP = 2;
const MAGIC = Buffer.from('VGCK');
const HEADER_BYTES = 12;
const NAME = /^checkpoint-(\d{16})\.cbor$/;

const encoder = new Encoder({ useRecords: false, mapsAsObjects: true });
const decoder = new Decoder({ useRecords: false, mapsAsObjects: true });

/**
 * Checkpoints in the journal's directory, one file each, replaced atomically: a crash while one is written
 * leaves the previous ones intact. The file is `VGCK`, a CRC-32 and the length of a CBOR body.
 */
export class Checkpoints {
  /** The checkpoints on disk, by journal record, oldest first. */
  private kept: number[] = [];
  private readonly known = new Map<number, { at: number; bytes: number }>();

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
        const state = decode(buf);
        if (state !== undefined && state.seq === seq) {
          this.known.set(seq, { at: state.at, bytes: buf.length });
          return state;
        }
        this.logger.error({ checkpoint: path }, 'checkpoint is damaged; trying the one before it');
      } catch (err) {
        this.logger.error({ err, checkpoint: path }, 'checkpoint cannot be read; trying the one before it');
      }
    }
    return undefined;
  }

  /** Writes `state` durably, then deletes the checkpoints beyond the ones kept; returns its size in bytes. */
  async write(state: CheckpointState): Promise<number> {
    const body = encoder.encode(state);
    const header = Buffer.alloc(HEADER_BYTES);
    MAGIC.copy(header, 0);
    header.writeUInt32LE(body.length, 4);
    header.writeUInt32LE(crc32(body), 8);
    const data = Buffer.concat([header, body]);
    await this.storage.replace(this.path(state.seq), data);
    this.written(state, data.length);
    return data.length;
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
      const state = decode(await this.storage.read(this.path(seq)));
      return state?.seq === seq ? state : undefined;
    } catch {
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

  private written(state: CheckpointState, bytes: number): void {
    this.kept = [...new Set([...this.kept, state.seq])].sort((a, b) => a - b);
    this.known.set(state.seq, { at: state.at, bytes });
  }

  private path(seq: number): string {
    return join(this.dir, `checkpoint-${String(seq).padStart(16, '0')}.cbor`);
  }
}

function decode(buf: Buffer): CheckpointState | undefined {
  if (buf.length < HEADER_BYTES || !buf.subarray(0, 4).equals(MAGIC)) return undefined;
  const length = buf.readUInt32LE(4);
  const body = buf.subarray(HEADER_BYTES);
  if (body.length !== length || crc32(body) !== buf.readUInt32LE(8)) return undefined;
  const value = decoder.decode(body) as Partial<CheckpointState> | null;
  if (
    value === null ||
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
  return value as CheckpointState;
}

/** A checkpoint on disk: the journal record it includes, when it was taken and its size. */
export interface KeptCheckpoint {
  seq: number;
  at: number;
  bytes: number;
}
