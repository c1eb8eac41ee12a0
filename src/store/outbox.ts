import type { Action, QueuedAction } from '../shared/index.js';
import { StoreIoError } from '../shared/index.js';
import { decodeCbor, encodeCbor } from './cbor-encoding.js';
import { gatewayTimeOf } from './command-outbox.js';
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
  /**
   * Ids of actions dropped unsent to make room (or refused for want of it), remembered so that recovery does not
   * queue them again; past this many the oldest is forgotten. As many as `maxDelivered` by default, for the same
   * reason.
   */
  maxDropped: number;
  /**
   * Actions kept whole in memory ahead of the drain, the first this many in drain order (up to twice as many
   * while more of a higher priority arrive); the others are on disk only, read back in chunks as the drain nears.
   */
  readAhead: number;
}

const DEFAULT_OUTBOX_LIMITS: OutboxLimits = {
  maxCount: 100_000,
  maxBytes: 64 * 1024 * 1024,
  maxDelivered: 1_000_000,
  maxDropped: 1_000_000,
  readAhead: 1_024,
};

/** What the outbox reports beyond its results. */
export interface OutboxHooks {
  /** Reading actions back from LevelDB failed (`attempt` since the last success); it is tried again after a while. */
  onReadError?: ((err: unknown, attempt: number) => void) | undefined;
  /**
   * The write that deletes actions the cloud acknowledged (and remembers their ids) failed (`attempt` since the last
   * such write that succeeded); it is tried again after a while.
   */
  onDeleteError?: ((err: unknown, attempt: number) => void) | undefined;
}

/**
 * A failed read-ahead, or a failed delete of acknowledged actions, is tried again after this long, doubling up to the
 * maximum.
 */
const RETRY_MIN_MS = 50;
const RETRY_MAX_MS = 5_000;
const retryAfterMs = (attempt: number): number =>
  Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** (Math.max(1, attempt) - 1));
/** Distinct categories shared by the entries that carry them (a category is a rule's word; few are in use). */
const MAX_CATEGORIES = 1_000;

/** Forgotten delivered ids are deleted this many to a write, so that queued actions never wait behind many. */
const FORGET_CHUNK = 1_000;

/**
 * What `add` did. `dropped` lists every action that left the outbox unsent because of it, so the
 * caller can count and log each one: older lower-priority actions evicted to make room (`queued`),
 * or the new action itself when nothing queued ranked lower (`dropped`). `dropped` with nothing in
 * the list: the outbox dropped that id already (an action decided again by recovery), not queued again.
 */
export type AddResult =
  | { status: 'queued'; dropped: readonly Action[] }
  | { status: 'duplicate'; dropped: readonly [] }
  // The cloud acknowledged this id already (an action decided again by recovery): not sent again.
  | { status: 'delivered'; dropped: readonly [] }
  | { status: 'dropped'; dropped: readonly Action[] };

/** Priorities order the drain from 1000 (first) down to 0; others are clamped into that range. */
const MAX_PRIORITY = 1000;

/**
 * A queued action as memory keeps it; its LevelDB key is `formatKey(rank, seq)`, made when needed (kept, the padded
 * string would cost about 100 bytes an action). A class, and `durable` an accessor, so that each entry is as small
 * as it can be: there are as many as actions queued.
 */
class Entry implements QueuedAction {
  readonly id: string;
  readonly category: string;
  readonly decidedAt: number;
  // Only when not 0 (the wall clock stepped since start): rare, and then an entry of another shape.
  declare readonly clockOffsetMs?: number;
  // Set while in the read-ahead window, and until its write is on disk; never unset while not durable, so that an
  // entry without it can always be read back.
  action: Action | undefined;
  readonly rank: number;
  readonly seq: number;
  readonly bytes: number;
  /** The batch that writes it, until it is on disk. */
  committed: Promise<void> | undefined;

  constructor(action: Action, category: string, rank: number, seq: number, bytes: number) {
    this.id = action.id;
    this.category = category;
    this.decidedAt = action.decidedAt;
    this.action = action;
    this.rank = rank;
    this.seq = seq;
    this.bytes = bytes;
    this.committed = undefined;
    if (action.clockOffsetMs !== undefined && action.clockOffsetMs !== 0) {
      (this as { clockOffsetMs?: number }).clockOffsetMs = action.clockOffsetMs;
    }
  }

  /** Its write is on disk; next() hands out only what a crash would not lose. */
  get durable(): boolean {
    return this.committed === undefined;
  }

  set durable(on: boolean) {
    if (on) this.committed = undefined;
  }
}

/** What a duplicate of an entry on disk waits for. */
const ON_DISK: Promise<void> = Promise.resolve();

type Batch = GroupBatch<EncodedOp, Entry>;

/** When nothing is evicted: `add` hands out no array nor result of its own. */
const NO_VICTIMS: readonly Entry[] = Object.freeze([]);
const QUEUED: AddResult = Object.freeze({ status: 'queued', dropped: Object.freeze([]) });
const DUPLICATE: AddResult = Object.freeze({ status: 'duplicate', dropped: Object.freeze<[]>([]) });
const DELIVERED: AddResult = Object.freeze({ status: 'delivered', dropped: Object.freeze<[]>([]) });
const DROPPED_BEFORE: AddResult = Object.freeze({ status: 'dropped', dropped: Object.freeze<[]>([]) });
const queuedAlone = (): AddResult => QUEUED;
const duplicate = (): AddResult => DUPLICATE;

/**
 * Actions waiting for the uplink, durable until it got their PUBACK. Drained highest priority first,
 * first in first out within a priority; when full, the lowest-priority oldest action is dropped.
 * Writes arriving while one is being synced share the next sync (group commit).
 *
 * Memory keeps every queued action's id, place, size, category and time (`QueuedAction`), and the action itself
 * only for a window at the head of the drain order (`readAhead`): the rest is read back from LevelDB in chunks
 * ahead of the drain. `next` hands out only actions in memory; a read under way is `loading`. An action that
 * leaves unsent (evicted, expired) is read back before its delete is written, so that it can be reported whole.
 *
 * Once the cloud acknowledged an action, its id is remembered (`delivered`, with the gateway time) in the
 * same write that removes it, and an action with that id is not queued again: recovery decides the
 * journal's tail again, and what the cloud already has must not be sent twice. So is the id of an action
 * dropped to make room (`outbox-dropped`, with the gateway time of the decision that made room), in the
 * write that deletes it: what the gateway gave up must not be queued again either. Ids are forgotten once
 * no recovery can decide them again (`forgetDeliveredBefore`), or past `maxDelivered` (`maxDropped`),
 * oldest first.
 */
export class Outbox {
  readonly limits: Readonly<OutboxLimits>;
  /** Entries found on open that could not be decoded as actions; they are left on disk and ignored. */
  readonly unreadableOnOpen: number;

  // The keys' prefixes in the root: the outbox writes its entries already encoded (`StoreWrites`).
  readonly #prefix: string;
  readonly #deliveredPrefix: string;
  readonly #droppedPrefix: string;
  readonly #level: Sublevel<Buffer>;
  readonly #writes: StoreWrites;
  readonly #hooks: OutboxHooks;
  readonly #delivered: DeliveredIds;
  readonly #dropped: DeliveredIds;
  #deliveredDropped = 0;
  #forgetBefore = Number.NEGATIVE_INFINITY;
  #forgetting: Promise<number> | undefined;
  readonly #byId = new Map<string, Entry>();
  // One insertion-ordered set per rank; the ranks present, highest first.
  readonly #byRank = new Map<number, Set<Entry>>();
  #ranks: number[] = [];
  #bytes = 0;
  #nextSeq: number;
  readonly #commits: GroupCommit<EncodedOp, Entry>;
  #closed = false;
  readonly #categories = new Map<string, string>();

  // The read-ahead window: the entries up to (#edgeRank, #edgeSeq) in drain order, every entry while #all. Each
  // has its action in memory or is being read back; an entry past it has its action only until it is on disk.
  #all = true;
  #edgeRank = 0;
  #edgeSeq = -1;
  /** Entries in the window. */
  #windowed = 0;
  /** Entries whose action is in memory. */
  #loaded = 0;
  #reading: Promise<void> | undefined;
  #readErrors = 0;
  /** Cut the waits before a read-ahead or a delete tries again short (on close). */
  readonly #wakes = new Set<() => void>();
  // The writes of acknowledged actions (their deletes, their delivered ids) in the latest batch that has any: should
  // it fail they are written again, backing off, since those actions left memory at once.
  #deliveries: { batch: Batch; ops: EncodedOp[] } | undefined;
  /** Delivery writes that failed, waiting to be written again. */
  #undelivered: EncodedOp[] = [];
  #rewriting: Promise<void> | undefined;
  #deleteErrors = 0;
  /** Delivery writes failed since the last one that succeeded. */
  #deleteFailures = 0;
  // Entries the pending batch deletes, taken without their action, which their callers report: read back before
  // that batch is written. GroupCommit calls `#write` as it takes the pending batch, so this is exactly its list.
  #unread: Entry[] = [];
  /** The batch whose entries leave memory, once written, when past the window. */
  #settling: Batch | undefined;

  private constructor(
    writes: StoreWrites,
    levels: OutboxLevels,
    limits: OutboxLimits,
    nextSeq: number,
    unreadable: number,
    hooks: OutboxHooks,
  ) {
    this.#prefix = prefixOf(levels.outbox);
    this.#deliveredPrefix = prefixOf(levels.delivered);
    this.#droppedPrefix = prefixOf(levels.dropped);
    this.#level = levels.outbox;
    this.#writes = writes;
    this.#hooks = hooks;
    this.#delivered = new DeliveredIds(limits.maxDelivered);
    this.#dropped = new DeliveredIds(limits.maxDropped);
    this.limits = limits;
    this.#nextSeq = nextSeq;
    this.unreadableOnOpen = unreadable;
    this.#commits = new GroupCommit(
      (ops, sync) => this.#write(ops, sync),
      (batch) => this.#rollBack(batch),
    );
  }

  /**
   * Loads what a previous run left in the outbox (the actions of the read-ahead window whole), the ids it delivered
   * and those it dropped for room.
   */
  static async open(
    writes: StoreWrites,
    levels: OutboxLevels,
    limits: Partial<OutboxLimits> = {},
    hooks: OutboxHooks = {},
  ): Promise<Outbox> {
    const resolved = { ...DEFAULT_OUTBOX_LIMITS, ...limits };
    for (const [name, value] of Object.entries(resolved)) {
      if (!Number.isInteger(value) || value < 1)
        throw new RangeError(`outbox ${name} must be a positive integer, got ${value}`);
    }
    const loaded: Entry[] = [];
    const categories = new Map<string, string>();
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
      // Keys iterate in drain order: the first `readAhead` are the window.
      const whole = loaded.length < resolved.readAhead;
      const bytes = key.length + value.length;
      loaded.push(entryOf(action, parsed, bytes, whole, intern(categories, action.category)));
    });
    const delivered = await readDelivered('loading the delivered ids', levels.delivered);
    const dropped = await readDelivered('loading the dropped action ids', levels.dropped);
    const outbox = new Outbox(writes, levels, resolved, maxSeq + 1, unreadable, hooks);
    for (const [category] of categories) outbox.#categories.set(category, category);
    const edge = loaded[resolved.readAhead - 1];
    if (loaded.length > resolved.readAhead && edge !== undefined) outbox.#setEdge(edge);
    // Keys iterate in drain order, so each rank's set is filled oldest first.
    for (const entry of loaded) if (!outbox.#byId.has(entry.id)) outbox.#insert(entry);
    // Oldest first, so that a lowered `maxDelivered` drops the oldest.
    const evicted: string[] = [];
    for (const [id, at] of delivered) outbox.#delivered.add(id, at, evicted);
    outbox.#deliveredDropped += evicted.length;
    await trim('trimming the delivered ids', levels.delivered, evicted);
    const droppedEvicted: string[] = [];
    for (const [id, at] of dropped) outbox.#dropped.add(id, at, droppedEvicted);
    await trim('trimming the dropped action ids', levels.dropped, droppedEvicted);
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

  /** Queued actions held whole in memory (the read-ahead window, and those whose write is under way). */
  get loadedCount(): number {
    return this.#loaded;
  }

  /** Set while actions are being read back from LevelDB; settles once they are in memory (or on close). */
  get loading(): Promise<void> | undefined {
    return this.#reading;
  }

  /** Reads back from LevelDB that failed (and were tried again), since open. */
  get readErrors(): number {
    return this.#readErrors;
  }

  /** Writes deleting acknowledged actions that failed (and were tried again), since open. */
  get deleteErrors(): number {
    return this.#deleteErrors;
  }

  /**
   * Set while deletes of acknowledged actions that failed wait to be written again; settles once they are written (or
   * on close). Those actions are not handed out again meanwhile.
   */
  get retryingDeletes(): Promise<void> | undefined {
    return this.#rewriting;
  }

  /** When the action queued longest was decided; undefined when the outbox is empty. */
  get oldestDecidedAt(): number | undefined {
    let oldest: number | undefined;
    // Each rank's set is in queue order: its first entry is its oldest.
    for (const entries of this.#byRank.values()) {
      const first = entries.values().next();
      if (!first.done && (oldest === undefined || first.value.decidedAt < oldest))
        oldest = first.value.decidedAt;
    }
    return oldest;
  }

  has(id: string): boolean {
    return this.#byId.has(id);
  }

  /**
   * What `add` would answer for `id` without writing anything, when that needs no wait: `delivered` (the cloud
   * acknowledged it), `queued` (queued and on disk), `dropped` (dropped unsent to make room), otherwise undefined
   * (not known, or its write is still under way: only `add` can say). Recovery decides again actions it already
   * queued, delivered or dropped; this answers them with a lookup.
   */
  known(id: string): 'queued' | 'delivered' | 'dropped' | undefined {
    if (this.#delivered.has(id)) return 'delivered';
    const entry = this.#byId.get(id);
    if (entry !== undefined) return entry.durable ? 'queued' : undefined;
    return this.#dropped.has(id) ? 'dropped' : undefined;
  }

  /** Ids of delivered actions remembered (see `markDelivered`). */
  get deliveredCount(): number {
    return this.#delivered.size;
  }

  /** Ids of actions dropped to make room, remembered (see `add`). */
  get droppedCount(): number {
    return this.#dropped.size;
  }

  /** Delivered ids forgotten because of `maxDelivered` before recovery could no longer need them, since open. */
  get deliveredDropped(): number {
    return this.#deliveredDropped;
  }

  /**
   * Queues an action; resolves once it is written (synced by the next checkpoint, see `add`). An id already queued is kept once, and an id
   * the cloud already acknowledged, or one dropped to make room, is not queued at all (an action decided again
   * after a crash has the same id). The ids of the actions it drops are remembered in the same write.
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
    if (existing !== undefined) return (existing.committed ?? ON_DISK).then(duplicate);
    if (this.#dropped.has(action.id)) return Promise.resolve(DROPPED_BEFORE);
    const value = encodeCbor(action);
    const rank = rankOf(action.priority);
    const seq = this.#nextSeq++;
    const key = formatKey(rank, seq);
    const bytes = key.length + value.length;
    const victims = this.#victimsFor(rank, bytes);
    if (victims === undefined) return this.#refuse(action);

    const batch = this.#commits.batch();
    for (const victim of victims) {
      this.#take(victim);
      batch.ops.push(delOp(this.#prefix + formatKey(victim.rank, victim.seq)));
      batch.evicted.push(victim);
      if (victim.action === undefined) this.#unread.push(victim);
    }
    const remembered = victims.length === 0 ? undefined : this.#rememberDropped(victims, action, batch);
    // Whole until it is on disk at least (`#settleAfter`): an entry without its action must be readable back.
    const entry = new Entry(action, intern(this.#categories, action.category), rank, seq, bytes);
    entry.committed = batch.committed;
    this.#insert(entry);
    batch.ops.push(putOp(this.#prefix + key, value));
    batch.added.push(entry);
    this.#settleAfter(batch);
    if (this.#windowed > 2 * this.limits.readAhead) this.#trim();
    // Not synced on its own: the action's input stays in the journal until a checkpoint, which syncs the store
    // first (`Store.sync`), so a power cut loses nothing that recovery does not decide again.
    if (remembered === undefined) return batch.committed.then(queuedAlone);
    return batch.committed.then(
      () => ({ status: 'queued', dropped: actionsOf(victims) }),
      (err: unknown) => this.#forgetDropped(remembered, err),
    );
  }

  // The new action is the one to drop: its id is remembered (written like an add, not synced on its own) so that a
  // recovery deciding it again drops it again, even if there is room by then.
  #refuse(action: Action): Promise<AddResult> {
    const batch = this.#commits.batch();
    const remembered = this.#rememberDropped([action], action, batch);
    return batch.committed.then(
      () => ({ status: 'dropped', dropped: [action] }),
      (err: unknown) => this.#forgetDropped(remembered, err),
    );
  }

  // Remembers the ids of actions dropped to make room, with the gateway time of the decision that made room (never
  // earlier than an id remembered before), in the batch that deletes them; past `maxDropped` the oldest goes.
  // Returns the ids it remembered, to be taken back if the batch fails.
  #rememberDropped(dropped: ReadonlyArray<{ id: string }>, by: Action, batch: Batch): string[] {
    const remembered: string[] = [];
    const evicted: string[] = [];
    for (const { id } of dropped) {
      const at = this.#dropped.add(id, gatewayTimeOf(by), evicted);
      if (at === undefined) continue;
      remembered.push(id);
      // As the `delivered` area's own encoding (CBOR) writes it.
      batch.ops.push(putOp(this.#droppedPrefix + id, encodeCbor(at)));
    }
    for (const id of evicted) batch.ops.push(delOp(this.#droppedPrefix + id));
    return remembered;
  }

  // Memory follows the disk again after a failed write: ids not written are not remembered (an add tried again
  // drops them again, then); those the cap made room for are not brought back.
  #forgetDropped(remembered: readonly string[], err: unknown): never {
    for (const id of remembered) this.#dropped.forget(id);
    throw err;
  }

  /**
   * The first `n` actions in drain order, read from memory, up to the first whose action is not in memory yet
   * (it comes once `loading` settles). `skip` leaves out ids the caller already has in flight.
   */
  next(n: number, skip?: ReadonlySet<string>): Action[] {
    const out: Action[] = [];
    if (n <= 0) return out;
    let passed = 0;
    let short = false;
    walk: for (const rank of this.#ranks) {
      for (const entry of this.#byRank.get(rank) ?? []) {
        // In flight: the caller has it already (whole or not here).
        if (skip?.has(entry.id) === true) continue;
        const action = entry.action;
        if (action === undefined) {
          short = true;
          break walk;
        }
        passed += 1;
        if (!entry.durable) continue;
        out.push(action);
        if (out.length >= n) break walk;
      }
    }
    // Read on while half the window is still ahead, so that the drain seldom waits.
    if (short || (!this.#all && this.#windowed - passed < this.limits.readAhead / 2)) this.#readAhead();
    return out;
  }

  /**
   * Every queued action whose write is on disk, in drain order, as memory keeps it (its action whole only
   * within the window), leaving out `skip`. For a periodic sweep (expiry), not every send.
   */
  waiting(skip?: ReadonlySet<string>): QueuedAction[] {
    const out: QueuedAction[] = [];
    for (const rank of this.#ranks) {
      for (const entry of this.#byRank.get(rank) ?? []) {
        if (entry.durable && skip?.has(entry.id) !== true) out.push(entry);
      }
    }
    return out;
  }

  /**
   * Forgets an action that leaves unsent (it waited past its `ttl`); an id not queued is ignored. Resolves with
   * the action, read back from LevelDB before its delete is written when it was not in memory.
   */
  async remove(id: string): Promise<Action | undefined> {
    if (this.#closed) throw new StoreIoError('the outbox is closed');
    const entry = this.#byId.get(id);
    if (entry === undefined) return undefined;
    this.#take(entry);
    const batch = this.#commits.batch();
    batch.ops.push(delOp(this.#prefix + formatKey(entry.rank, entry.seq)));
    if (entry.action === undefined) this.#unread.push(entry);
    await batch.committed;
    return entry.action;
  }

  /**
   * The cloud acknowledged `id` (PUBACK) at gateway time `atMs`: the action leaves the outbox and its id is
   * remembered, in one write, so that the same action decided again is not sent again. Not synced on its own
   * (a `kill -9` keeps what was written; a power cut may lose the last writes, and those actions are sent again,
   * which the cloud drops by their id). Memory forgets the action at once; when the write fails the promise
   * rejects, and the outbox writes it again itself, backing off (`deleteErrors`, `retryingDeletes`).
   */
  markDelivered(id: string, atMs: number): Promise<void> {
    if (this.#closed) return Promise.reject(new StoreIoError('the outbox is closed'));
    const entry = this.#byId.get(id);
    if (entry !== undefined) this.#take(entry);
    const evicted: string[] = [];
    const at = this.#delivered.add(id, atMs, evicted);
    if (entry === undefined && at === undefined) return Promise.resolve();
    const batch = this.#commits.batch();
    const tracked = this.#deliveryOpsOf(batch);
    if (entry !== undefined) both(batch.ops, tracked, delOp(this.#prefix + formatKey(entry.rank, entry.seq)));
    // As the `delivered` area's own encoding (CBOR) writes it.
    if (at !== undefined) both(batch.ops, tracked, putOp(this.#deliveredPrefix + id, encodeCbor(at)));
    for (const key of evicted) both(batch.ops, tracked, delOp(this.#deliveredPrefix + key));
    this.#deliveredDropped += evicted.length;
    // The batch's own promise: every writer of the batch shares it (no frame, no promise of its own).
    return batch.committed;
  }

  /**
   * Forgets the ids delivered, and those dropped for room, before gateway time `atMs`, when no recovery can decide
   * those actions again; deleted a chunk per write, behind the writes already waiting. Resolves with how many were
   * forgotten.
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
      const dropped = this.#dropped.takeBefore(this.#forgetBefore, FORGET_CHUNK - ids.length);
      if (ids.length + dropped.length === 0) break;
      const batch = this.#commits.batch();
      for (const key of ids) batch.ops.push(delOp(this.#deliveredPrefix + key));
      for (const key of dropped) batch.ops.push(delOp(this.#droppedPrefix + key));
      forgotten += ids.length + dropped.length;
      // A failed delete leaves the ids on disk: the next open loads them, and a later checkpoint forgets them.
      await batch.committed.catch(() => undefined);
    }
    return forgotten;
  }

  /** Waits for pending writes (a delete that failed is tried once more at once), then refuses new ones. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const wake of [...this.#wakes]) wake();
    await this.#reading;
    await this.#forgetting;
    await this.#rewriting;
    await this.#commits.idle();
  }

  // The delivery writes of `batch`: one outcome handler per batch, not per acknowledgement.
  #deliveryOpsOf(batch: Batch): EncodedOp[] {
    const tracked = this.#deliveries;
    if (tracked?.batch === batch) return tracked.ops;
    const ops: EncodedOp[] = [];
    this.#deliveries = { batch, ops };
    batch.committed.then(
      () => {
        this.#deleteFailures = 0;
      },
      (err: unknown) => this.#deliveriesFailed(ops, err),
    );
    return ops;
  }

  #deliveriesFailed(ops: readonly EncodedOp[], err: unknown): void {
    this.#deleteErrors += 1;
    this.#deleteFailures += 1;
    this.#hooks.onDeleteError?.(err, this.#deleteFailures);
    for (const op of ops) this.#undelivered.push(op);
    if (this.#closed) return;
    this.#rewriting ??= this.#rewrite().finally(() => {
      this.#rewriting = undefined;
    });
  }

  // Writes the failed delivery writes again, backing off, until they are on disk; on close, once more at once. Until
  // then those actions stay on disk, and a restart would send them again (the cloud drops them by their id).
  async #rewrite(): Promise<void> {
    while (this.#undelivered.length > 0) {
      if (!this.#closed) await this.#pause(retryAfterMs(this.#deleteFailures));
      const ops = this.#stillToWrite(this.#undelivered.splice(0));
      if (ops.length > 0) {
        const batch = this.#commits.batch();
        const tracked = this.#deliveryOpsOf(batch);
        for (const op of ops) both(batch.ops, tracked, op);
        // A failure puts them back (`#deliveriesFailed`) before this wait ends.
        await batch.committed.catch(() => undefined);
      }
      if (this.#closed) return;
    }
  }

  // An action's delete always; a delivered id only while it is remembered, and a delete of one only while it is not
  // (forgotten or remembered again meanwhile).
  #stillToWrite(ops: readonly EncodedOp[]): EncodedOp[] {
    const prefix = this.#deliveredPrefix;
    return ops.filter(
      (op) =>
        !op.key.startsWith(prefix) ||
        this.#delivered.has(op.key.slice(prefix.length)) === (op.type === 'put'),
    );
  }

  #write(ops: EncodedOp[], sync: boolean): Promise<void> {
    const unread = this.#unread;
    if (unread.length === 0) return storeIo('writing the outbox', () => this.#writes.write(ops, sync));
    this.#unread = [];
    return storeIo('reading back the actions the outbox drops', () => this.#readBack(unread)).then(() =>
      storeIo('writing the outbox', () => this.#writes.write(ops, sync)),
    );
  }

  // Before the batch that deletes them is written: their puts are on disk (an entry without its action is).
  async #readBack(entries: readonly Entry[]): Promise<void> {
    const values = await this.#level.getMany(entries.map((e) => formatKey(e.rank, e.seq)));
    entries.forEach((entry, i) => {
      const value = values[i];
      if (value !== undefined) entry.action = decodeAction(value);
    });
  }

  // Starts reading back the actions of the window not in memory, widening it by half its size first.
  #readAhead(): void {
    if (this.#reading !== undefined || this.#closed) return;
    const wanted = this.#widen(Math.max(1, Math.ceil(this.limits.readAhead / 2)));
    if (wanted.length === 0) return;
    this.#reading = this.#load(wanted).finally(() => {
      this.#reading = undefined;
    });
  }

  // Moves the edge on by up to `by` entries; returns the entries of the window without their action.
  #widen(by: number): Entry[] {
    const wanted: Entry[] = [];
    let widened = 0;
    for (const rank of this.#ranks) {
      for (const entry of this.#byRank.get(rank) ?? []) {
        if (!this.#covers(entry)) {
          if (widened >= by) return wanted;
          this.#setEdge(entry);
          this.#windowed += 1;
          widened += 1;
        }
        if (entry.action === undefined) wanted.push(entry);
      }
    }
    this.#all = true;
    return wanted;
  }

  // Reads the actions back, tried again after a failure (backing off) until they are read or the outbox closes.
  async #load(wanted: readonly Entry[]): Promise<void> {
    const keys = wanted.map((e) => formatKey(e.rank, e.seq));
    for (let attempt = 1; !this.#closed; attempt++) {
      let values: Array<Buffer | undefined>;
      try {
        values = await storeIo('reading ahead in the outbox', () => readKeys(this.#level, keys));
      } catch (err) {
        this.#readErrors += 1;
        this.#hooks.onReadError?.(err, attempt);
        await this.#pause(retryAfterMs(attempt));
        continue;
      }
      this.#fill(wanted, values);
      return;
    }
  }

  #fill(wanted: readonly Entry[], values: ReadonlyArray<Buffer | undefined>): void {
    wanted.forEach((entry, i) => {
      // Left meanwhile (delivered, evicted, expired), already back, or no longer in the window.
      if (entry.action !== undefined || this.#byId.get(entry.id) !== entry || !this.#covers(entry)) return;
      const value = values[i];
      const action = value === undefined ? undefined : decodeAction(value);
      if (action !== undefined) {
        entry.action = action;
        this.#loaded += 1;
        return;
      }
      // Not on disk, or not an action: it cannot be sent, and the drain must not wait for it.
      this.#readErrors += 1;
      this.#hooks.onReadError?.(new StoreIoError(`outbox entry ${entry.id} cannot be read back`), 1);
      this.#take(entry);
    });
  }

  #pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.#wakes.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      timer.unref();
      this.#wakes.add(done);
    });
  }

  // Narrows the window to the first `readAhead` entries: the actions past them leave memory (those on disk).
  #trim(): void {
    const keep = this.limits.readAhead;
    const was = { all: this.#all, rank: this.#edgeRank, seq: this.#edgeSeq };
    let kept = 0;
    walk: for (const rank of this.#ranks) {
      for (const entry of this.#byRank.get(rank) ?? []) {
        if (kept < keep) {
          kept += 1;
          if (kept === keep) this.#setEdge(entry);
          continue;
        }
        if (!was.all && !before(entry, was.rank, was.seq)) break walk;
        this.#windowed -= 1;
        if (entry.durable && entry.action !== undefined) {
          entry.action = undefined;
          this.#loaded -= 1;
        }
      }
    }
  }

  // Once the batch is on disk, its entries past the window need not keep their actions.
  #settleAfter(batch: Batch): void {
    if (this.#settling === batch) return;
    this.#settling = batch;
    batch.committed.then(
      () => {
        for (const entry of batch.added) {
          if (entry.action === undefined || this.#covers(entry) || this.#byId.get(entry.id) !== entry)
            continue;
          entry.action = undefined;
          this.#loaded -= 1;
        }
      },
      () => undefined,
    );
  }

  #setEdge(entry: Entry): void {
    this.#all = false;
    this.#edgeRank = entry.rank;
    this.#edgeSeq = entry.seq;
  }

  #covers(entry: Entry): boolean {
    return this.#all || before(entry, this.#edgeRank, this.#edgeSeq);
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
      bucket = new Set();
      this.#byRank.set(entry.rank, bucket);
      this.#ranks = [...this.#byRank.keys()].sort((a, b) => b - a);
    }
    bucket.add(entry);
    this.#byId.set(entry.id, entry);
    this.#bytes += entry.bytes;
    if (this.#covers(entry)) this.#windowed += 1;
    if (entry.action !== undefined) this.#loaded += 1;
  }

  // The entry keeps its action (if in memory): whoever took it may report it.
  #take(entry: Entry): void {
    this.#byId.delete(entry.id);
    this.#bytes -= entry.bytes;
    if (this.#covers(entry)) this.#windowed -= 1;
    if (entry.action !== undefined) this.#loaded -= 1;
    const bucket = this.#byRank.get(entry.rank);
    bucket?.delete(entry);
    if (bucket?.size === 0) {
      this.#byRank.delete(entry.rank);
      this.#ranks = this.#ranks.filter((r) => r !== entry.rank);
    }
  }

  // Memory follows the disk again: the actions of a failed batch are not queued, the ones it was to
  // evict still are. Removals are not undone: those actions were delivered.
  #rollBack(batch: Batch): void {
    for (const entry of batch.added) if (this.#byId.get(entry.id) === entry) this.#take(entry);
    if (batch.evicted.length === 0) return;
    const touched = new Set<number>();
    for (const entry of batch.evicted) {
      if (!entry.durable || this.#byId.has(entry.id)) continue;
      // Read back to be reported: kept only within the window.
      if (!this.#covers(entry)) entry.action = undefined;
      this.#insert(entry);
      touched.add(entry.rank);
    }
    for (const rank of touched) {
      const bucket = this.#byRank.get(rank);
      if (bucket === undefined) continue;
      const ordered = [...bucket].sort((a, b) => a.seq - b.seq);
      bucket.clear();
      for (const entry of ordered) bucket.add(entry);
    }
  }
}

/** The entry of an action found on disk, with its action when `whole`. */
function entryOf(
  action: Action,
  at: { rank: number; seq: number },
  bytes: number,
  whole: boolean,
  category: string,
): Entry {
  const entry = new Entry(action, category, at.rank, at.seq, bytes);
  if (!whole) entry.action = undefined;
  return entry;
}

/** A write of a batch (`ops`) that is also one of its delivery writes (`tracked`). */
function both(ops: EncodedOp[], tracked: EncodedOp[], op: EncodedOp): void {
  ops.push(op);
  tracked.push(op);
}

/** Whether the entry comes at or before (rank, seq) in drain order. */
function before(entry: Entry, rank: number, seq: number): boolean {
  return entry.rank > rank || (entry.rank === rank && entry.seq <= seq);
}

/** One string for each category: entries decoded from disk would otherwise each hold a copy. */
function intern(categories: Map<string, string>, category: string): string {
  const known = categories.get(category);
  if (known !== undefined) return known;
  if (categories.size < MAX_CATEGORIES) categories.set(category, category);
  return category;
}

/** The actions of entries taken from the outbox (read back before their delete was written). */
function actionsOf(entries: readonly Entry[]): Action[] {
  const out: Action[] = [];
  for (const entry of entries) if (entry.action !== undefined) out.push(entry.action);
  return out;
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

/** The outbox's areas: the queued actions (raw values: it encodes them itself), the delivered and dropped ids. */
export interface OutboxLevels {
  outbox: Sublevel<Buffer>;
  delivered: Sublevel;
  dropped: Sublevel;
}

/** The ids of an area of ids (delivered, dropped) and their times, oldest first; entries not a time are skipped. */
async function readDelivered(what: string, level: Sublevel): Promise<Array<[id: string, at: number]>> {
  const delivered: Array<[string, number]> = [];
  await readAll(what, level, (id, at) => {
    if (typeof at === 'number' && Number.isFinite(at)) delivered.push([id, at]);
  });
  return delivered.sort((a, b) => a[1] - b[1]);
}

/** Deletes the ids a lowered cap left out on open. */
async function trim(what: string, level: Sublevel, ids: readonly string[]): Promise<void> {
  if (ids.length === 0) return;
  await storeIo(what, () => level.batch(ids.map((key) => ({ type: 'del' as const, key }))));
}

/**
 * The values of `keys` (sorted, near one another: the window's), undefined where there is none. One pass of an
 * iterator over their range: far cheaper than as many lookups, since neighbouring keys share LevelDB's blocks.
 */
async function readKeys(
  level: Sublevel<Buffer>,
  keys: readonly string[],
): Promise<Array<Buffer | undefined>> {
  const values = new Array<Buffer | undefined>(keys.length).fill(undefined);
  const first = keys[0];
  const last = keys[keys.length - 1];
  if (first === undefined || last === undefined) return values;
  const it = level.iterator({ gte: first, lte: last });
  try {
    let i = 0;
    for (;;) {
      const chunk = await it.nextv(1_000);
      if (chunk.length === 0) break;
      for (const [key, value] of chunk) {
        // Keys in the range that are not wanted: actions loaded already, or left but not yet deleted on disk.
        while (i < keys.length && (keys[i] as string) < key) i += 1;
        if (keys[i] === key) values[i++] = value;
      }
    }
  } finally {
    await it.close();
  }
  return values;
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
