import type { Action } from '../shared/index.js';
import { StoreIoError } from '../shared/index.js';
import { decodeCbor, encodeCbor } from './cbor-encoding.js';
import type { RootLevel, Sublevel } from './level-types.js';
import { storeIo } from './store-io.js';

/** How much the outbox holds before it drops actions. */
export interface OutboxLimits {
  maxCount: number;
  maxBytes: number;
}

const DEFAULT_OUTBOX_LIMITS: OutboxLimits = { maxCount: 100_000, maxBytes: 64 * 1024 * 1024 };

/**
 * What `add` did. `dropped` lists every action that left the outbox unsent because of it, so the
 * caller can count and log each one: older lower-priority actions evicted to make room (`queued`),
 * or the new action itself when nothing queued ranked lower (`dropped`).
 */
export type AddResult =
  | { status: 'queued'; dropped: readonly Action[] }
  | { status: 'duplicate'; dropped: readonly [] }
  | { status: 'dropped'; dropped: readonly Action[] };

/** Priorities order the drain from 1000 (first) down to 0; others are clamped into that range. */
const MAX_PRIORITY = 1000;

interface Entry {
  readonly action: Action;
  readonly key: string;
  readonly rank: number;
  readonly seq: number;
  readonly bytes: number;
  // Set once the batch that wrote it is on disk; next() hands out only what a crash would not lose.
  durable: boolean;
  committed: Promise<void>;
}

type Op =
  | { type: 'put'; sublevel: Sublevel<Buffer>; key: string; value: Buffer }
  | { type: 'del'; sublevel: Sublevel<Buffer>; key: string };

interface Batch {
  readonly ops: Op[];
  sync: boolean;
  readonly added: Entry[];
  readonly evicted: Entry[];
  readonly committed: Promise<void>;
  resolve(): void;
  reject(err: unknown): void;
}

/**
 * Actions waiting for the uplink, durable until it got their PUBACK. Drained highest priority first,
 * first in first out within a priority; when full, the lowest-priority oldest action is dropped.
 * Writes arriving while one is being synced share the next sync (group commit).
 */
export class Outbox {
  readonly limits: Readonly<OutboxLimits>;
  /** Entries found on open that could not be decoded as actions; they are left on disk and ignored. */
  readonly unreadableOnOpen: number;

  readonly #root: RootLevel;
  readonly #level: Sublevel<Buffer>;
  readonly #byId = new Map<string, Entry>();
  // One insertion-ordered map per rank; the ranks present, highest first.
  readonly #byRank = new Map<number, Map<string, Entry>>();
  #ranks: number[] = [];
  #bytes = 0;
  #nextSeq: number;
  #pending: Batch | undefined;
  #writing: Promise<void> | undefined;
  #closed = false;

  private constructor(
    root: RootLevel,
    level: Sublevel<Buffer>,
    limits: OutboxLimits,
    nextSeq: number,
    unreadable: number,
  ) {
    this.#root = root;
    this.#level = level;
    this.limits = limits;
    this.#nextSeq = nextSeq;
    this.unreadableOnOpen = unreadable;
  }

  /** Loads what a previous run left in the outbox. */
  static async open(
    root: RootLevel,
    level: Sublevel<Buffer>,
    limits: Partial<OutboxLimits> = {},
  ): Promise<Outbox> {
    const resolved = { ...DEFAULT_OUTBOX_LIMITS, ...limits };
    for (const [name, value] of Object.entries(resolved)) {
      if (!Number.isInteger(value) || value < 1)
        throw new RangeError(`outbox ${name} must be a positive integer, got ${value}`);
    }
    const loaded: Entry[] = [];
    let unreadable = 0;
    let maxSeq = -1;
    await storeIo('loading the outbox', async () => {
      const it = level.iterator();
      try {
        for (;;) {
          const chunk = await it.nextv(1_000);
          if (chunk.length === 0) break;
          for (const [key, value] of chunk) {
            const parsed = parseKey(key);
            if (parsed !== undefined) maxSeq = Math.max(maxSeq, parsed.seq);
            const action = decodeAction(value);
            if (parsed === undefined || action === undefined) {
              unreadable += 1;
              continue;
            }
            const bytes = key.length + value.length;
            loaded.push({ action, key, ...parsed, bytes, durable: true, committed: Promise.resolve() });
          }
        }
      } finally {
        await it.close();
      }
    });
    const outbox = new Outbox(root, level, resolved, maxSeq + 1, unreadable);
    // Keys iterate in drain order, so each rank's map is filled oldest first.
    for (const entry of loaded) if (!outbox.#byId.has(entry.action.id)) outbox.#insert(entry);
    return outbox;
  }

  /** Queued actions, including those whose write is still being synced. */
  get size(): number {
    return this.#byId.size;
  }

  /** Bytes the queued actions take on disk (keys and encoded values). */
  get bytes(): number {
    return this.#bytes;
  }

  /**
   * Queues an action; resolves once it is synced to disk. An id already queued is kept once
   * (an action decided again after a crash has the same id).
   */
  async add(action: Action): Promise<AddResult> {
    if (this.#closed) throw new StoreIoError('the outbox is closed');
    const existing = this.#byId.get(action.id);
    if (existing !== undefined) {
      await existing.committed;
      return { status: 'duplicate', dropped: [] };
    }
    const value = encodeCbor(action);
    const rank = rankOf(action.priority);
    const seq = this.#nextSeq++;
    const key = formatKey(rank, seq);
    const bytes = key.length + value.length;
    const victims = this.#victimsFor(rank, bytes);
    if (victims === undefined) return { status: 'dropped', dropped: [action] };

    const batch = this.#batch();
    for (const victim of victims) {
      this.#take(victim);
      batch.ops.push({ type: 'del', sublevel: this.#level, key: victim.key });
      batch.evicted.push(victim);
    }
    const entry: Entry = { action, key, rank, seq, bytes, durable: false, committed: batch.committed };
    this.#insert(entry);
    batch.ops.push({ type: 'put', sublevel: this.#level, key, value });
    batch.added.push(entry);
    batch.sync = true;
    await batch.committed;
    return { status: 'queued', dropped: victims.map((v) => v.action) };
  }

  /**
   * The first `n` actions in drain order, read from memory. `skip` leaves out ids the caller already
   * has in flight.
   */
  next(n: number, skip?: ReadonlySet<string>): Action[] {
    const out: Action[] = [];
    if (n <= 0) return out;
    for (const rank of this.#ranks) {
      for (const entry of this.#byRank.get(rank)?.values() ?? []) {
        if (!entry.durable || skip?.has(entry.action.id) === true) continue;
        out.push(entry.action);
        if (out.length >= n) return out;
      }
    }
    return out;
  }

  /** Forgets an action the uplink delivered (PUBACK received); an id not queued is ignored. */
  async remove(id: string): Promise<void> {
    if (this.#closed) throw new StoreIoError('the outbox is closed');
    const entry = this.#byId.get(id);
    if (entry === undefined) return;
    this.#take(entry);
    const batch = this.#batch();
    // Not synced on its own: an acknowledged action that reappears after a crash is sent again, and the
    // cloud deduplicates on its id.
    batch.ops.push({ type: 'del', sublevel: this.#level, key: entry.key });
    await batch.committed;
  }

  /** Waits for pending writes, then refuses new ones. */
  async close(): Promise<void> {
    this.#closed = true;
    while (this.#writing !== undefined) await this.#writing;
  }

  // The entries to evict so that one more of this rank and size fits, lowest rank and oldest first;
  // undefined when the new action is itself the one to drop.
  #victimsFor(rank: number, bytes: number): Entry[] | undefined {
    const { maxCount, maxBytes } = this.limits;
    if (bytes > maxBytes) return undefined;
    let count = this.#byId.size + 1;
    let total = this.#bytes + bytes;
    if (count <= maxCount && total <= maxBytes) return [];
    const victims: Entry[] = [];
    for (let i = this.#ranks.length - 1; i >= 0; i--) {
      const victimRank = this.#ranks[i] as number;
      // Equal rank: the queued one is older, so it goes first.
      if (victimRank > rank) return undefined;
      for (const entry of this.#byRank.get(victimRank)?.values() ?? []) {
        victims.push(entry);
        count -= 1;
        total -= entry.bytes;
        if (count <= maxCount && total <= maxBytes) return victims;
      }
    }
    return undefined;
  }

  #insert(entry: Entry): void {
    let bucket = this.#byRank.get(entry.rank);
    if (bucket === undefined) {
      bucket = new Map();
      this.#byRank.set(entry.rank, bucket);
      this.#ranks = [...this.#byRank.keys()].sort((a, b) => b - a);
    }
    bucket.set(entry.action.id, entry);
    this.#byId.set(entry.action.id, entry);
    this.#bytes += entry.bytes;
  }

  #take(entry: Entry): void {
    this.#byId.delete(entry.action.id);
    this.#bytes -= entry.bytes;
    const bucket = this.#byRank.get(entry.rank);
    bucket?.delete(entry.action.id);
    if (bucket?.size === 0) {
      this.#byRank.delete(entry.rank);
      this.#ranks = this.#ranks.filter((r) => r !== entry.rank);
    }
  }

  // The batch that collects writes until the one being synced is done.
  #batch(): Batch {
    if (this.#pending !== undefined) return this.#pending;
    let resolve!: () => void;
    let reject!: (err: unknown) => void;
    const committed = new Promise<void>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    // Every caller awaits its own derived promise; this one only must not count as unhandled.
    committed.catch(() => undefined);
    const batch: Batch = { ops: [], sync: false, added: [], evicted: [], committed, resolve, reject };
    this.#pending = batch;
    if (this.#writing === undefined) {
      this.#writing = this.#writeAll().finally(() => {
        this.#writing = undefined;
      });
    }
    return batch;
  }

  async #writeAll(): Promise<void> {
    // Let the callers of this tick add to the batch before it is written.
    await Promise.resolve();
    for (let batch = this.#pending; batch !== undefined; batch = this.#pending) {
      this.#pending = undefined;
      try {
        await storeIo('writing the outbox', () => this.#root.batch(batch.ops, { sync: batch.sync }));
        for (const entry of batch.added) entry.durable = true;
        batch.resolve();
      } catch (err) {
        this.#rollBack(batch);
        batch.reject(err);
      }
    }
  }

  // Memory follows the disk again: the actions of a failed batch are not queued, the ones it was to
  // evict still are. Removals are not undone: those actions were delivered.
  #rollBack(batch: Batch): void {
    for (const entry of batch.added) if (this.#byId.get(entry.action.id) === entry) this.#take(entry);
    if (batch.evicted.length === 0) return;
    const touched = new Set<number>();
    for (const entry of batch.evicted) {
      if (!entry.durable || this.#byId.has(entry.action.id)) continue;
      this.#insert(entry);
      touched.add(entry.rank);
    }
    for (const rank of touched) {
      const bucket = this.#byRank.get(rank);
      if (bucket === undefined) continue;
      const ordered = [...bucket.values()].sort((a, b) => a.seq - b.seq);
      bucket.clear();
      for (const entry of ordered) bucket.set(entry.action.id, entry);
    }
  }
}

function rankOf(priority: number): number {
  if (!Number.isFinite(priority)) return 0;
  return Math.min(MAX_PRIORITY, Math.max(0, Math.round(priority)));
}

// Keys sort in drain order: higher rank first, then by sequence.
function formatKey(rank: number, seq: number): string {
  return `${String(MAX_PRIORITY - rank).padStart(4, '0')}!${String(seq).padStart(16, '0')}`;
}

function parseKey(key: string): { rank: number; seq: number } | undefined {
  const m = /^(\d{4})!(\d{16})$/.exec(key);
  if (m === null) return undefined;
  const rank = MAX_PRIORITY - Number(m[1]);
  const seq = Number(m[2]);
  if (rank < 0 || !Number.isSafeInteger(seq)) return undefined;
  return { rank, seq };
}

function decodeAction(value: Buffer): Action | undefined {
  let decoded: unknown;
  try {
    decoded = decodeCbor(value);
  } catch {
    return undefined;
  }
  if (typeof decoded !== 'object' || decoded === null) return undefined;
  const candidate = decoded as Partial<Action>;
  if (typeof candidate.id !== 'string' || typeof candidate.priority !== 'number') return undefined;
  return decoded as Action;
}
