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
  private kept: number[] = [];

  constructor(
    private readonly dir: string,
    private readonly storage: JournalStorage,
    private readonly logger: Logger,
  ) {}

  /** The journal must keep the records after this one: the oldest checkpoint kept may have to be used. */
  get retainAfterSeq(): number | undefined {
    return this.kept[0];
  }

  /** The newest checkpoint that can be read; damaged ones are logged and skipped. */
  async latest(): Promise<CheckpointState | undefined> {
    let names: string[];
    try {
      names = await this.storage.list(this.dir);
    } catch {
      return undefined;
    }
    const seqs = names
      .map((n) => NAME.exec(n))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => Number(m[1]))
      .sort((a, b) => a - b);
    this.kept = seqs.slice(-KEEP);
    for (const seq of [...seqs].reverse()) {
      const path = this.path(seq);
      try {
        const state = decode(await this.storage.read(path));
        if (state !== undefined && state.seq === seq) return state;
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
    const seqs = [...new Set([...this.kept, state.seq])].sort((a, b) => a - b);
    const stale = seqs.slice(0, -KEEP);
    this.kept = seqs.slice(-KEEP);
    for (const seq of stale) {
      await this.storage.remove(this.path(seq)).catch((err: unknown) => {
        this.logger.warn({ err, checkpoint: this.path(seq) }, 'old checkpoint not deleted');
      });
    }
    return data.length;
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
