import type { Action } from '../shared/index.js';
import { StoreIoError } from '../shared/index.js';
import { decodeCbor, encodeCbor } from './cbor-encoding.js';
import { GroupCommit, type GroupBatch } from './group-commit.js';
import type { Sublevel } from './level-types.js';
import { storeIo } from './store-io.js';
import { delOp, prefixOf, putOp, type EncodedOp, type StoreWrites } from './store-writes.js';

/** How much the command outbox holds, and how long it remembers what devices acknowledged. */
export interface CommandOutboxLimits {
  /** Commands queued for all devices together. */
  maxCount: number;
  /** Bytes they take on disk (keys and encoded values). */
  maxBytes: number;
  /** Commands queued for one device; past it, that device's oldest is dropped. */
  maxPerDevice: number;
  /** Acknowledged ids remembered; past it, the oldest is forgotten. */
  maxAcknowledged: number;
  /** Ids of commands dropped unsent to make room, remembered; past it, the oldest is forgotten. */
  maxDropped: number;
  /** How long an acknowledged id, or the id of a command dropped to make room, is remembered. */
  acknowledgedForMs: number;
}

export const DEFAULT_COMMAND_OUTBOX_LIMITS: CommandOutboxLimits = {
  maxCount: 10_000,
  maxBytes: 16 * 1024 * 1024,
  maxPerDevice: 100,
  maxAcknowledged: 100_000,
  maxDropped: 100_000,
  acknowledgedForMs: 24 * 60 * 60 * 1000,
};

/** Why a queued command left unsent to make room: the whole outbox was full, or its device's share. */
export type CommandDropReason = 'full' | 'device-full';

export interface DroppedCommand {
  readonly action: Action;
  readonly reason: CommandDropReason;
}

/**
 * What `add` did: `queued` (with the commands dropped to make room), `duplicate` (the id is queued
 * already), `acknowledged` (its device acknowledged that id already), `dropped` (that id was dropped unsent to
 * make room already), or `too-large` (the command alone is over the byte bound; not queued).
 */
export type CommandAddResult =
  | { status: 'queued'; dropped: readonly DroppedCommand[] }
  | { status: 'duplicate' | 'acknowledged' | 'dropped' | 'too-large' };

interface Entry {
  readonly action: Action;
  readonly seq: number;
  readonly bytes: number;
  // Set once the batch that wrote it is on disk: only then may it be sent.
  durable: boolean;
  committed: Promise<void>;
}

type Batch = GroupBatch<EncodedOp, Entry>;

const QUEUED = 'q!';
const ACKNOWLEDGED = 'a!';

// What `add` hands out when it has nothing of its own to say: no object per command.
const NO_VICTIMS: ReadonlyArray<{ entry: Entry; reason: CommandDropReason }> = Object.freeze([]);
const QUEUED_RESULT: CommandAddResult = Object.freeze({ status: 'queued', dropped: Object.freeze([]) });
const DUPLICATE_RESULT: CommandAddResult = Object.freeze({ status: 'duplicate' });
const ACKNOWLEDGED_RESULT: CommandAddResult = Object.freeze({ status: 'acknowledged' });
const DROPPED_RESULT: CommandAddResult = Object.freeze({ status: 'dropped' });
const TOO_LARGE: CommandAddResult = Object.freeze({ status: 'too-large' });
const queuedAlone = (): CommandAddResult => QUEUED_RESULT;
const duplicate = (): CommandAddResult => DUPLICATE_RESULT;

function closedError(): StoreIoError {
  return new StoreIoError('the command outbox is closed');
}

/**
 * Commands decided for devices, durable until their device took them, keyed by action id. A command is
 * written (group commit, synced) before it may be sent; an id already queued, one its device acknowledged,
 * or one dropped unsent to make room, is not queued again (an action decided again after a crash has the
 * same id). Per device, commands are kept in the order they were decided.
 */
export class CommandOutbox {
  readonly limits: Readonly<CommandOutboxLimits>;
  /** Entries found on open that could not be decoded; they are left on disk and ignored. */
  readonly unreadableOnOpen: number;

  // The keys' prefix in the root: the command outbox writes its entries already encoded (`StoreWrites`).
  readonly #prefix: string;
  // Insertion order is decision order: the first entry is the oldest.
  #queued = new Map<string, Entry>();
  readonly #byDevice = new Map<string, Map<string, Entry>>();
  // Acknowledged ids with the time of their acknowledgement, oldest first.
  readonly #acknowledged = new Map<string, number>();
  // Ids dropped unsent to make room, with the gateway time of the decision that made room, oldest first.
  readonly #dropped = new Map<string, number>();
  #droppedLatestAt = Number.NEGATIVE_INFINITY;
  readonly #droppedPrefix: string;
  #bytes = 0;
  #nextSeq: number;
  readonly #commits: GroupCommit<EncodedOp, Entry>;
  #closed = false;

  private constructor(
    writes: StoreWrites,
    levels: CommandOutboxLevels,
    limits: CommandOutboxLimits,
    nextSeq: number,
    unreadable: number,
  ) {
    this.#prefix = prefixOf(levels.commands);
    this.#droppedPrefix = prefixOf(levels.dropped);
    this.limits = limits;
    this.#nextSeq = nextSeq;
    this.unreadableOnOpen = unreadable;
    this.#commits = new GroupCommit(
      (ops, sync) => storeIo('writing the command outbox', () => writes.write(ops, sync)),
      (batch) => this.#rollBack(batch),
    );
  }

  /** Loads what a previous run left: the queued commands, the acknowledged ids and the ids dropped for room. */
  static async open(
    writes: StoreWrites,
    levels: CommandOutboxLevels,
    limits: Partial<CommandOutboxLimits> = {},
  ): Promise<CommandOutbox> {
    const resolved = { ...DEFAULT_COMMAND_OUTBOX_LIMITS, ...limits };
    for (const [name, value] of Object.entries(resolved)) {
      if (!Number.isInteger(value) || value < 1)
        throw new RangeError(`command outbox ${name} must be a positive integer, got ${value}`);
    }
    const queued: Entry[] = [];
    const acknowledged: Array<[string, number]> = [];
    let unreadable = 0;
    await storeIo('loading the command outbox', async () => {
      for await (const [key, value] of levels.commands.iterator()) {
        if (key.startsWith(ACKNOWLEDGED)) {
          const at = decodeSafely(value);
          if (typeof at === 'number') acknowledged.push([key.slice(ACKNOWLEDGED.length), at]);
          else unreadable += 1;
          continue;
        }
        const record = key.startsWith(QUEUED) ? decodeQueued(value) : undefined;
        if (record === undefined || record.action.id !== key.slice(QUEUED.length)) {
          unreadable += 1;
          continue;
        }
        const bytes = key.length + value.length;
        queued.push({ ...record, bytes, durable: true, committed: Promise.resolve() });
      }
    });
    const dropped = await readDropped(levels.dropped);
    unreadable += dropped.unreadable;
    queued.sort((a, b) => a.seq - b.seq);
    acknowledged.sort((a, b) => a[1] - b[1]);
    const nextSeq = (queued.at(-1)?.seq ?? -1) + 1;
    const outbox = new CommandOutbox(writes, levels, resolved, nextSeq, unreadable);
    for (const [id, at] of acknowledged) outbox.#acknowledged.set(id, at);
    for (const [id, at] of dropped.ids) outbox.#dropped.set(id, at);
    outbox.#droppedLatestAt = dropped.ids.at(-1)?.[1] ?? Number.NEGATIVE_INFINITY;
    for (const entry of queued) if (!outbox.#acknowledged.has(entry.action.id)) outbox.#insert(entry);
    return outbox;
  }

  /** Commands queued, including those whose write is still being synced. */
  get size(): number {
    return this.#queued.size;
  }

  /** Bytes the queued commands take on disk. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Acknowledged ids remembered. */
  get acknowledgedSize(): number {
    return this.#acknowledged.size;
  }

  /** Ids of commands dropped to make room, remembered. */
  get droppedSize(): number {
    return this.#dropped.size;
  }

  has(id: string): boolean {
    return this.#queued.has(id);
  }

  /**
   * What `add` would answer for `id` without writing anything, when that needs no wait: `acknowledged`, `queued`
   * (queued and on disk), `dropped` (dropped unsent to make room), otherwise undefined (not known, or its write is
   * still under way: only `add` can say).
   */
  known(id: string): 'queued' | 'acknowledged' | 'dropped' | undefined {
    if (this.#acknowledged.has(id)) return 'acknowledged';
    const entry = this.#queued.get(id);
    if (entry !== undefined) return entry.durable ? 'queued' : undefined;
    return this.#dropped.has(id) ? 'dropped' : undefined;
  }

  /** Whether the command was dropped unsent to make room (as far as it is remembered). */
  isDropped(id: string): boolean {
    return this.#dropped.has(id);
  }

  /** Whether the device acknowledged this id (as far as it is remembered). */
  isAcknowledged(id: string): boolean {
    return this.#acknowledged.has(id);
  }

  /** Devices with commands queued. */
  devices(): string[] {
    return [...this.#byDevice.keys()];
  }

  /** The commands queued for `device` that are on disk, in the order they were decided. */
  pending(device: string): Action[] {
    const out: Action[] = [];
    for (const entry of this.#byDevice.get(device)?.values() ?? []) if (entry.durable) out.push(entry.action);
    return out;
  }

  /** Every queued command, oldest first. */
  all(): Action[] {
    return [...this.#queued.values()].map((entry) => entry.action);
  }

  /**
   * Queues a command for its device (`action.actor`); resolves once it is written, and synced when `sync` (a
   * command from the cloud, acknowledged once it is stored; a decided one is synced by the next checkpoint). To
   * make room, the device's oldest command goes when it has `maxPerDevice`, the oldest of all when the outbox is
   * full; the ids of those are remembered in the same write, so that a recovery deciding them again does not queue
   * them again (`dropped`; a command from the cloud with such an id is queued again).
   */
  add(action: Action, sync = false): Promise<CommandAddResult> {
    // Not an async function: its suspended frame cost more than the write it waits for (see docs/benchmarks.md).
    try {
      return this.#add(action, sync);
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
  }

  #add(action: Action, sync: boolean): Promise<CommandAddResult> {
    if (this.#closed) throw closedError();
    if (this.#acknowledged.has(action.id)) return Promise.resolve(ACKNOWLEDGED_RESULT);
    const existing = this.#queued.get(action.id);
    if (existing !== undefined) return existing.committed.then(duplicate);
    // A decided command dropped already is not queued again; a command from the cloud (`sync`) is: the cloud was
    // told it was refused, and may send it again.
    if (!sync && this.#dropped.has(action.id)) return Promise.resolve(DROPPED_RESULT);
    const seq = this.#nextSeq++;
    const key = QUEUED + action.id;
    const value = encodeCbor({ seq, action });
    const bytes = key.length + value.length;
    if (bytes > this.limits.maxBytes) return Promise.resolve(TOO_LARGE);

    const dropped = this.#victimsFor(action.actor, bytes);
    const batch = this.#commits.batch();
    if (this.#dropped.delete(action.id)) batch.ops.push(delOp(this.#droppedPrefix + action.id));
    for (const victim of dropped) {
      this.#take(victim.entry);
      batch.ops.push(delOp(this.#prefix + QUEUED + victim.entry.action.id));
      batch.evicted.push(victim.entry);
    }
    if (dropped.length > 0) this.#rememberDropped(dropped, gatewayTimeOf(action), batch);
    const entry: Entry = { action, seq, bytes, durable: false, committed: batch.committed };
    this.#insert(entry);
    batch.ops.push(putOp(this.#prefix + key, value));
    batch.added.push(entry);
    // A decided command is not synced on its own, like the outbox's actions: the next checkpoint syncs the store
    // before it forgets the input. A command from the cloud has no input in the journal: synced before its PUBACK.
    if (sync) batch.sync = true;
    if (dropped.length === 0) return batch.committed.then(queuedAlone);
    const result: CommandAddResult = {
      status: 'queued',
      dropped: dropped.map((v) => ({ action: v.entry.action, reason: v.reason })),
    };
    return batch.committed.then(() => result);
  }

  /**
   * The device took the command (PUBACK, or written to it at QoS 0): it leaves the outbox and its id is
   * remembered, so that deciding it again after a crash does not send it again. Not synced on its own: an
   * acknowledgement lost to a crash means the command is sent once more, and the device can tell by its id.
   */
  acknowledge(id: string, atMs: number): Promise<void> {
    if (this.#closed) return Promise.reject(closedError());
    const batch = this.#dequeue(id);
    if (batch === undefined) return Promise.resolve();
    this.#acknowledged.delete(id);
    this.#acknowledged.set(id, atMs);
    batch.ops.push(putOp(this.#prefix + ACKNOWLEDGED + id, encodeCbor(atMs)));
    for (const oldest of this.#acknowledged.keys()) {
      if (this.#acknowledged.size <= this.limits.maxAcknowledged) break;
      this.#acknowledged.delete(oldest);
      batch.ops.push(delOp(this.#prefix + ACKNOWLEDGED + oldest));
    }
    // The batch's own promise: every writer of the batch shares it (no frame, no promise of its own).
    return batch.committed;
  }

  /** Drops a queued command unsent (its ttl passed); an id not queued is ignored. */
  async remove(id: string): Promise<void> {
    await this.#dequeue(id)?.committed;
  }

  /**
   * Forgets the ids acknowledged, and those dropped to make room, `acknowledgedForMs` or longer before `nowMs`;
   * resolves with how many.
   */
  async forgetAcknowledged(nowMs: number): Promise<number> {
    if (this.#closed) return 0;
    const before = nowMs - this.limits.acknowledgedForMs;
    const acknowledged = idsUntil(this.#acknowledged, before);
    const dropped = idsUntil(this.#dropped, before);
    if (acknowledged.length + dropped.length === 0) return 0;
    const batch = this.#commits.batch();
    for (const id of acknowledged) {
      this.#acknowledged.delete(id);
      batch.ops.push(delOp(this.#prefix + ACKNOWLEDGED + id));
    }
    for (const id of dropped) {
      this.#dropped.delete(id);
      batch.ops.push(delOp(this.#droppedPrefix + id));
    }
    await batch.committed;
    return acknowledged.length + dropped.length;
  }

  /** Waits for pending writes, then refuses new ones. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#commits.idle();
  }

  // Takes a queued command out of memory and deletes it in the next batch; undefined when it is not queued.
  #dequeue(id: string): Batch | undefined {
    if (this.#closed) throw closedError();
    const entry = this.#queued.get(id);
    if (entry === undefined) return undefined;
    this.#take(entry);
    const batch = this.#commits.batch();
    batch.ops.push(delOp(this.#prefix + QUEUED + id));
    return batch;
  }

  // The ids of commands dropped to make room are remembered in the batch that deletes them, oldest forgotten past
  // `maxDropped`. Times are kept in order: one earlier than the latest (a recovery deciding the past again) is kept
  // as the latest, which keeps the id longer, never shorter.
  #rememberDropped(victims: ReadonlyArray<{ entry: Entry }>, atMs: number, batch: Batch): void {
    const at = Math.max(atMs, this.#droppedLatestAt);
    this.#droppedLatestAt = at;
    const value = encodeCbor(at);
    for (const { entry } of victims) {
      const id = entry.action.id;
      this.#dropped.delete(id);
      this.#dropped.set(id, at);
      batch.ops.push(putOp(this.#droppedPrefix + id, value));
    }
    for (const oldest of this.#dropped.keys()) {
      if (this.#dropped.size <= this.limits.maxDropped) break;
      this.#dropped.delete(oldest);
      batch.ops.push(delOp(this.#droppedPrefix + oldest));
    }
  }

  #victimsFor(device: string, bytes: number): ReadonlyArray<{ entry: Entry; reason: CommandDropReason }> {
    const own = this.#byDevice.get(device);
    const { maxPerDevice, maxCount, maxBytes } = this.limits;
    // The common case, room for one more: no arrays.
    if ((own?.size ?? 0) < maxPerDevice && this.#queued.size < maxCount && this.#bytes + bytes <= maxBytes)
      return NO_VICTIMS;
    const victims: Array<{ entry: Entry; reason: CommandDropReason }> = [];
    const chosen = new Set<Entry>();
    if (own !== undefined) {
      let count = own.size + 1;
      for (const entry of own.values()) {
        if (count <= maxPerDevice) break;
        victims.push({ entry, reason: 'device-full' });
        chosen.add(entry);
        count -= 1;
      }
    }
    let count = this.#queued.size + 1 - victims.length;
    let total = this.#bytes + bytes - victims.reduce((sum, v) => sum + v.entry.bytes, 0);
    for (const entry of this.#queued.values()) {
      if (count <= maxCount && total <= maxBytes) break;
      if (chosen.has(entry)) continue;
      victims.push({ entry, reason: 'full' });
      count -= 1;
      total -= entry.bytes;
    }
    return victims;
  }

  #insert(entry: Entry): void {
    const id = entry.action.id;
    this.#queued.set(id, entry);
    let own = this.#byDevice.get(entry.action.actor);
    if (own === undefined) {
      own = new Map();
      this.#byDevice.set(entry.action.actor, own);
    }
    own.set(id, entry);
    this.#bytes += entry.bytes;
  }

  #take(entry: Entry): void {
    const id = entry.action.id;
    if (this.#queued.get(id) !== entry) return;
    this.#queued.delete(id);
    this.#bytes -= entry.bytes;
    const own = this.#byDevice.get(entry.action.actor);
    own?.delete(id);
    if (own?.size === 0) this.#byDevice.delete(entry.action.actor);
  }

  // Memory follows the disk again: the commands of a failed batch are not queued, the ones it was to evict
  // still are (in decision order), and their ids are not remembered as dropped (an add tried again may drop them
  // then). Acknowledgements and removals are not undone: those commands were done.
  #rollBack(batch: Batch): void {
    for (const entry of batch.added) this.#take(entry);
    for (const entry of batch.evicted) this.#dropped.delete(entry.action.id);
    const back = batch.evicted.filter((e) => e.durable && !this.#queued.has(e.action.id));
    if (back.length === 0) return;
    for (const entry of back) this.#insert(entry);
    this.#queued = new Map([...this.#queued.entries()].sort((a, b) => a[1].seq - b[1].seq));
    for (const [device, own] of this.#byDevice) {
      this.#byDevice.set(device, new Map([...own.entries()].sort((a, b) => a[1].seq - b[1].seq)));
    }
  }
}

/** The command outbox's areas, `commands` and `commands-dropped`, with raw values: it encodes them itself. */
export interface CommandOutboxLevels {
  commands: Sublevel<Buffer>;
  dropped: Sublevel<Buffer>;
}

/**
 * Gateway time of a decision (`decidedOnGatewayAt` in actions/, which the store does not import): the wall time it
 * carries less the offset it was stamped with.
 */
export function gatewayTimeOf(action: Action): number {
  return action.decidedAt - (action.clockOffsetMs ?? 0);
}

// The ids remembered at or before `atMs`, from the oldest on.
function idsUntil(remembered: ReadonlyMap<string, number>, atMs: number): string[] {
  const ids: string[] = [];
  for (const [id, at] of remembered) {
    if (at > atMs) break;
    ids.push(id);
  }
  return ids;
}

/** The dropped ids and their times, oldest first; entries that are not a time are counted and skipped. */
async function readDropped(
  level: Sublevel<Buffer>,
): Promise<{ ids: Array<[string, number]>; unreadable: number }> {
  const ids: Array<[string, number]> = [];
  let unreadable = 0;
  await storeIo('loading the dropped command ids', async () => {
    for await (const [id, value] of level.iterator()) {
      const at = decodeSafely(value);
      if (typeof at === 'number' && Number.isFinite(at)) ids.push([id, at]);
      else unreadable += 1;
    }
  });
  ids.sort((a, b) => a[1] - b[1]);
  return { ids, unreadable };
}

function decodeSafely(value: Buffer): unknown {
  try {
    return decodeCbor(value);
  } catch {
    return undefined;
  }
}

function decodeQueued(value: Buffer): { seq: number; action: Action } | undefined {
  const decoded = decodeSafely(value);
  if (typeof decoded !== 'object' || decoded === null) return undefined;
  const { seq, action } = decoded as { seq?: unknown; action?: Partial<Action> };
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq)) return undefined;
  if (typeof action !== 'object' || action === null) return undefined;
  if (typeof action.id !== 'string' || typeof action.actor !== 'string') return undefined;
  if (typeof action.action !== 'string' || typeof action.decidedAt !== 'number') return undefined;
  return { seq, action: action as Action };
}
