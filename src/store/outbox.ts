import type { Action } from '../shared/index.js';
import { StoreIoError } from '../shared/index.js';
import { decodeCbor, encodeCbor } from './cbor-encoding.js';
import { DeliveredIds } from './delivered-ids.js';
import { GroupCommit, type GroupBatch } from './group-commit.js';
import type { Sublevel } from './level-types.js';
import { storeIo } from './store-io.js';
import { delOp, prefixOf, putOp, type EncodedOp, type StoreWrites } from './store-writes.js';

/** How much the outbox holds before it drops actions, and how many delivered ids it remembers. */
export interface OutboxLimits {
  maxCount: number;
  maxBytes: number;
  /**
   * Ids of actions the cloud acknowledged, remembered so that recovery does not send them again; past this
   * many the oldest is forgotten. The default covers two checkpoints of `durability.checkpointRecords` inputs
   * (the most a recovery can replay) at one upstream action each.
   */
  maxDelivered: number;
}

const DEFAULT_OUTBOX_LIMITS: OutboxLimits = {
  maxCount: 100_000,
  maxBytes: 64 * 1024 * 1024,
  maxDelivered: 1_000_000,
};

/** Forgotten delivered ids are deleted this many to a write, so that queued actions never wait behind many. */
const FORGET_CHUNK = 1_000;

/**
 * What `add` did. `dropped` lists every action that left the outbox unsent because of it, so the
 * caller can count and log each one: older lower-priority actions evicted to make room (`queued`),
 * or the new action itself when nothing queued ranked lower (`dropped`).
 */
export type AddResult =
  | { status: 'queued'; dropped: readonly Action[] }
  | { status: 'duplicate'; dropped: readonly [] }
  // The cloud acknowledged this id already (an action decided again by recovery): not sent again.
  | { status: 'delivered'; dropped: readonly [] }
  | { status: 'dropped'; dropped: readonly Action[] };

/** Priorities order the drain from 1000 (first) down to 0; others are clamped into that range. */
const MAX_PRIORITY = 1000;

// Its LevelDB key is `formatKey(rank, seq)`, made when needed: kept, the padded string costs about 100 bytes an
// action (a tree of concatenated strings), a fifth of what an action takes in memory.
interface Entry {
  readonly action: Action;
  readonly rank: number;
  readonly seq: number;
  readonly bytes: number;
  // Set once the batch that wrote it is on disk; next() hands out only what a crash would not lose.
  durable: boolean;
  committed: Promise<void>;
}

type Batch = GroupBatch<EncodedOp, Entry>;

/** When nothing is evicted: `add` hands out no array nor result of its own. */
const NO_VICTIMS: readonly Entry[] = Object.freeze([]);
const QUEUED: AddResult = Object.freeze({ status: 'queued', dropped: Object.freeze([]) });
const DUPLICATE: AddResult = Object.freeze({ status: 'duplicate', dropped: Object.freeze<[]>([]) });
const DELIVERED: AddResult = Object.freeze({ status: 'delivered', dropped: Object.freeze<[]>([]) });
const queuedAlone = (): AddResult => QUEUED;
const duplicate = (): AddResult => DUPLICATE;

/**
 * Actions waiting for the uplink, durable until it got their PUBACK. Drained highest priority first,
 * first in first out within a priority; when full, the lowest-priority oldest action is dropped.
 * Writes arriving while one is being synced share the next sync (group commit).
 *
 * Once the cloud acknowledged an action, its id is remembered (`delivered`, with the gateway time) in the
 * same write that removes it, and an action with that id is not queued again: recovery decides the
 * journal's tail again, and what the cloud already has must not be sent twice. Ids are forgotten once
 * no recovery can decide them again (`forgetDeliveredBefore`), or past `maxDelivered`, oldest first.
 */
export class Outbox {
  readonly limits: Readonly<OutboxLimits>;
  /** Entries found on open that could not be decoded as actions; they are left on disk and ignored. */
  readonly unreadableOnOpen: number;

  // The keys' prefixes in the root: the outbox writes its entries already encoded (`StoreWrites`).
  readonly #prefix: string;
  readonly #deliveredPrefix: string;
  readonly #delivered: DeliveredIds;
  #deliveredDropped = 0;
  #forgetBefore = Number.NEGATIVE_INFINITY;
  #forgetting: Promise<number> | undefined;
  readonly #byId = new Map<string, Entry>();
  // One insertion-ordered map per rank; the ranks present, highest first.
  readonly #byRank = new Map<number, Map<string, Entry>>();
  #ranks: number[] = [];
  #bytes = 0;
  #nextSeq: number;
  readonly #commits: GroupCommit<EncodedOp, Entry>;
  #closed = false;

  private constructor(
    writes: StoreWrites,
    levels: { outbox: Sublevel<Buffer>; delivered: Sublevel },
    limits: OutboxLimits,
    nextSeq: number,
    unreadable: number,
  ) {
    this.#prefix = prefixOf(levels.outbox);
    this.#deliveredPrefix = prefixOf(levels.delivered);
    this.#delivered = new DeliveredIds(limits.maxDelivered);
    this.limits = limits;
    this.#nextSeq = nextSeq;
    this.unreadableOnOpen = unreadable;
    this.#commits = new GroupCommit(
      (ops, sync) => storeIo('writing the outbox', () => writes.write(ops, sync)),
      (batch) => this.#rollBack(batch),
    );
  }

  /** Loads what a previous run left in the outbox, and the ids it delivered. */
  static async open(
    writes: StoreWrites,
    levels: { outbox: Sublevel<Buffer>; delivered: Sublevel },
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
    await readAll('loading the outbox', levels.outbox, (key, value) => {
      const parsed = parseKey(key);
      if (parsed !== undefined) maxSeq = Math.max(maxSeq, parsed.seq);
      const action = decodeAction(value);
      if (parsed === undefined || action === undefined) {
        unreadable += 1;
        return;
      }
      const bytes = key.length + value.length;
      loaded.push({ action, ...parsed, bytes, durable: true, committed: Promise.resolve() });
    });
    const delivered = await readDelivered(levels.delivered);
    const outbox = new Outbox(writes, levels, resolved, maxSeq + 1, unreadable);
    // Keys iterate in drain order, so each rank's map is filled oldest first.
    for (const entry of loaded) if (!outbox.#byId.has(entry.action.id)) outbox.#insert(entry);
    // Oldest first, so that a lowered `maxDelivered` drops the oldest.
    const evicted: string[] = [];
    for (const [id, at] of delivered) outbox.#delivered.add(id, at, evicted);
    if (evicted.length > 0) {
      outbox.#deliveredDropped += evicted.length;
      await storeIo('trimming the delivered ids', () =>
        levels.delivered.batch(evicted.map((key) => ({ type: 'del' as const, key }))),
      );
    }
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

  /** When the action queued longest was decided; undefined when the outbox is empty. */
  get oldestDecidedAt(): number | undefined {
    let oldest: number | undefined;
    // Each rank's map is in queue order: its first entry is its oldest.
    for (const entries of this.#byRank.values()) {
      const first = entries.values().next();
      if (!first.done && (oldest === undefined || first.value.action.decidedAt < oldest))
        oldest = first.value.action.decidedAt;
    }
    return oldest;
  }

  has(id: string): boolean {
    return this.#byId.has(id);
  }

  /**
   * What `add` would answer for `id` without writing anything, when that needs no wait: `delivered` (the cloud
   * acknowledged it), `queued` (queued and on disk), otherwise undefined (not known, or its write is still under
   * way: only `add` can say). Recovery decides again actions it already queued; this answers them with a lookup.
   */
  known(id: string): 'queued' | 'delivered' | undefined {
    if (this.#delivered.has(id)) return 'delivered';
    return this.#byId.get(id)?.durable === true ? 'queued' : undefined;
  }

  /** Ids of delivered actions remembered (see `markDelivered`). */
  get deliveredCount(): number {
    return this.#delivered.size;
  }

  /** Delivered ids forgotten because of `maxDelivered` before recovery could no longer need them, since open. */
  get deliveredDropped(): number {
    return this.#deliveredDropped;
  }

  /**
   * Queues an action; resolves once it is written (synced by the next checkpoint, see `add`). An id already queued is kept once, and an id
   * the cloud already acknowledged is not queued at all (an action decided again after a crash has the
   * same id).
   */
  add(action: Action): Promise<AddResult> {
    // Not an async function: its suspended frame cost more than the write it waits for (see docs/benchmarks.md).
    try {
      return this.#add(action);
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
  }

  #add(action: Action): Promise<AddResult> {
    if (this.#closed) throw new StoreIoError('the outbox is closed');
    if (this.#delivered.has(action.id)) return Promise.resolve(DELIVERED);
    const existing = this.#byId.get(action.id);
    if (existing !== undefined) return existing.committed.then(duplicate);
    const value = encodeCbor(action);
    const rank = rankOf(action.priority);
    const seq = this.#nextSeq++;
    const key = formatKey(rank, seq);
    const bytes = key.length + value.length;
    const victims = this.#victimsFor(rank, bytes);
    if (victims === undefined) return Promise.resolve({ status: 'dropped', dropped: [action] });

    const batch = this.#commits.batch();
    for (const victim of victims) {
      this.#take(victim);
      batch.ops.push(delOp(this.#prefix + formatKey(victim.rank, victim.seq)));
      batch.evicted.push(victim);
    }
    const entry: Entry = { action, rank, seq, bytes, durable: false, committed: batch.committed };
    this.#insert(entry);
    batch.ops.push(putOp(this.#prefix + key, value));
    batch.added.push(entry);
    // Not synced on its own: the action's input stays in the journal until a checkpoint, which syncs the store
    // first (`Store.sync`), so a power cut loses nothing that recovery does not decide again.
    if (victims.length === 0) return batch.committed.then(queuedAlone);
    const dropped = victims.map((v) => v.action);
    return batch.committed.then(() => ({ status: 'queued', dropped }));
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

  /** Forgets an action that leaves unsent (it waited past its `ttl`); an id not queued is ignored. */
  async remove(id: string): Promise<void> {
    if (this.#closed) throw new StoreIoError('the outbox is closed');
    const entry = this.#byId.get(id);
    if (entry === undefined) return;
    this.#take(entry);
    const batch = this.#commits.batch();
    batch.ops.push(delOp(this.#prefix + formatKey(entry.rank, entry.seq)));
    await batch.committed;
  }

  /**
   * The cloud acknowledged `id` (PUBACK) at gateway time `atMs`: the action leaves the outbox and its id is
   * remembered, in one write, so that the same action decided again is not sent again. Not synced on its own
   * (a `kill -9` keeps what was written; a power cut may lose the last writes, and those actions are sent again,
   * which the cloud drops by their id).
   */
  markDelivered(id: string, atMs: number): Promise<void> {
    if (this.#closed) return Promise.reject(new StoreIoError('the outbox is closed'));
    const entry = this.#byId.get(id);
    if (entry !== undefined) this.#take(entry);
    const evicted: string[] = [];
    const at = this.#delivered.add(id, atMs, evicted);
    if (entry === undefined && at === undefined) return Promise.resolve();
    const batch = this.#commits.batch();
    if (entry !== undefined) batch.ops.push(delOp(this.#prefix + formatKey(entry.rank, entry.seq)));
    // As the `delivered` area's own encoding (CBOR) writes it.
    if (at !== undefined) batch.ops.push(putOp(this.#deliveredPrefix + id, encodeCbor(at)));
    for (const key of evicted) batch.ops.push(delOp(this.#deliveredPrefix + key));
    this.#deliveredDropped += evicted.length;
    // The batch's own promise: every writer of the batch shares it (no frame, no promise of its own).
    return batch.committed;
  }

  /**
   * Forgets the ids delivered before gateway time `atMs`, when no recovery can decide those actions again;
   * deleted a chunk per write, behind the writes already waiting. Resolves with how many were forgotten.
   */
  forgetDeliveredBefore(atMs: number): Promise<number> {
    this.#forgetBefore = Math.max(this.#forgetBefore, atMs);
    this.#forgetting ??= this.#forget().finally(() => {
      this.#forgetting = undefined;
    });
    return this.#forgetting;
  }

  async #forget(): Promise<number> {
    let forgotten = 0;
    while (!this.#closed) {
      const ids = this.#delivered.takeBefore(this.#forgetBefore, FORGET_CHUNK);
      if (ids.length === 0) break;
      const batch = this.#commits.batch();
      for (const key of ids) batch.ops.push(delOp(this.#deliveredPrefix + key));
      forgotten += ids.length;
      // A failed delete leaves the ids on disk: the next open loads them, and a later checkpoint forgets them.
      await batch.committed.catch(() => undefined);
    }
    return forgotten;
  }

  /** Waits for pending writes, then refuses new ones. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#forgetting;
    await this.#commits.idle();
  }

  // The entries to evict so that one more of this rank and size fits, lowest rank and oldest first;
  // undefined when the new action is itself the one to drop.
  #victimsFor(rank: number, bytes: number): readonly Entry[] | undefined {
    const { maxCount, maxBytes } = this.limits;
    if (bytes > maxBytes) return undefined;
    let count = this.#byId.size + 1;
    let total = this.#bytes + bytes;
    if (count <= maxCount && total <= maxBytes) return NO_VICTIMS;
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

/** The delivered ids and their times, oldest first; entries that are not a time are skipped. */
async function readDelivered(level: Sublevel): Promise<Array<[id: string, at: number]>> {
  const delivered: Array<[string, number]> = [];
  await readAll('loading the delivered ids', level, (id, at) => {
    if (typeof at === 'number' && Number.isFinite(at)) delivered.push([id, at]);
  });
  return delivered.sort((a, b) => a[1] - b[1]);
}

/** Hands every entry of `level` to `visit` in key order, reading a chunk at a time. */
async function readAll<V>(
  what: string,
  level: Sublevel<V>,
  visit: (key: string, value: V) => void,
): Promise<void> {
  await storeIo(what, async () => {
    const it = level.iterator();
    try {
      for (;;) {
        const chunk = await it.nextv(1_000);
        if (chunk.length === 0) break;
        for (const [key, value] of chunk) visit(key, value);
      }
    } finally {
      await it.close();
    }
  });
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
