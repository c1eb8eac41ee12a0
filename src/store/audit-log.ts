import type { Action } from '../shared/index.js';
import type { Sublevel } from './level-types.js';
import { storeIo } from './store-io.js';

/** One decision about an action: sent (no `reason`), or not sent and why. */
export interface AuditEntry {
  /** When it was decided, or dropped (reason `ttl`). */
  at: number;
  id: string;
  scenario: string;
  actor: string;
  group?: string;
  category: string;
  priority: number;
  /** Why it was not sent (`contact`, `cooldown`, `exclusive:<category>`, `ttl`); absent when it was sent. */
  reason?: string;
}

export interface AuditQuery {
  actor?: string | undefined;
  /** Only actions that were not sent. */
  suppressed?: boolean | undefined;
  /** At most this many, newest first; default 100. */
  limit?: number | undefined;
}

export interface AuditLogOptions {
  /** Suppressions kept, the newest; default 100,000. */
  maxSuppressed?: number;
  /** Sent actions kept, the newest, apart from the suppressions so that a busy day does not push those out; default 100,000. */
  maxSent?: number;
  /** How long entries wait to be written together; default 200 ms. */
  flushEveryMs?: number;
  /** Entries waiting to be written, at most: past it new ones are counted in `lost`, not kept. Default 50,000. */
  maxPending?: number;
  /** A write that failed; its entries are lost (it is diagnostics, not acknowledged state). */
  onError?: (err: unknown) => void;
}

export const DEFAULT_AUDIT_LIMIT = 100;
/** The largest `limit` one query may ask for: the whole log of one kind. */
export const MAX_AUDIT_LIMIT = 100_000;
const DEFAULT_MAX_ENTRIES = 100_000;
const DEFAULT_FLUSH_EVERY_MS = 200;
const DEFAULT_MAX_PENDING = 50_000;
/** A write starts at once when this many entries wait, rather than at the next tick of the timer. */
const FLUSH_AT_ENTRIES = 1_000;
const READ_CHUNK = 500;

type Kind = 'suppressed' | 'sent';
const KINDS: readonly Kind[] = ['suppressed', 'sent'];
/** Each kind has its own key range, numbered without gaps, so that trimming knows its oldest key. */
const PREFIX: Readonly<Record<Kind, string>> = { suppressed: 's!', sent: 'd!' };

/** What is stored: the entry and its place among all entries of both kinds, to list them merged. */
type Stored = AuditEntry & { seq: number };

interface Range {
  /** Number of the oldest stored entry of the kind, and of the next one to write. */
  first: number;
  next: number;
  readonly max: number;
}

/** The entry that records a decision about `action`. */
export function auditEntryOf(action: Action, at: number, reason?: string): AuditEntry {
  const entry: AuditEntry = {
    at,
    id: action.id,
    scenario: action.scenario,
    actor: action.actor,
    category: action.category,
    priority: action.priority,
  };
  if (action.group !== undefined) entry.group = action.group;
  if (reason !== undefined) entry.reason = reason;
  return entry;
}

/**
 * The capped log of arbitration decisions (store sublevel `audit`), so that an operator can answer "why did
 * this customer get nothing?". Suppressions and sent actions are capped apart, the newest kept. Entries are
 * collected in memory and written in unsynced batches: a crash may lose the last fraction of a second of
 * them, which diagnostics can afford and the hot path cannot (one sync per decision).
 */
export class AuditLog {
  readonly #level: Sublevel;
  readonly #ranges: Record<Kind, Range>;
  readonly #flushEveryMs: number;
  readonly #maxPending: number;
  readonly #onError: ((err: unknown) => void) | undefined;
  #seq: number;
  #pending: Array<{ kind: Kind; entry: Stored }> = [];
  #timer: NodeJS.Timeout | undefined;
  #writing: Promise<void> | undefined;
  #closed = false;
  #lost = 0;

  private constructor(level: Sublevel, ranges: Record<Kind, Range>, seq: number, opts: AuditLogOptions) {
    this.#level = level;
    this.#ranges = ranges;
    this.#seq = seq;
    this.#flushEveryMs = opts.flushEveryMs ?? DEFAULT_FLUSH_EVERY_MS;
    this.#maxPending = opts.maxPending ?? DEFAULT_MAX_PENDING;
    this.#onError = opts.onError;
  }

  /** Opens the log kept in `level` (values CBOR-encoded, as the store's sublevels are). */
  static async open(level: Sublevel, opts: AuditLogOptions = {}): Promise<AuditLog> {
    const limits: Record<Kind, number> = {
      suppressed: opts.maxSuppressed ?? DEFAULT_MAX_ENTRIES,
      sent: opts.maxSent ?? DEFAULT_MAX_ENTRIES,
    };
    for (const [name, value] of Object.entries(limits)) {
      if (!Number.isInteger(value) || value < 1)
        throw new RangeError(`audit log ${name} limit must be a positive integer, got ${value}`);
    }
    let seq = 0;
    const ranges = {} as Record<Kind, Range>;
    await storeIo('opening the audit log', async () => {
      for (const kind of KINDS) {
        const bounds = { gte: PREFIX[kind], lt: after(PREFIX[kind]) };
        const [oldest] = await level.keys({ ...bounds, limit: 1 }).all();
        const [newest] = await level.iterator({ ...bounds, limit: 1, reverse: true }).all();
        const first = oldest === undefined ? 0 : numberOf(oldest);
        const next = newest === undefined ? 0 : numberOf(newest[0]) + 1;
        ranges[kind] = { first: Math.min(first, next), next, max: limits[kind] };
        const last = newest?.[1] as Partial<Stored> | undefined;
        if (typeof last?.seq === 'number') seq = Math.max(seq, last.seq + 1);
      }
    });
    return new AuditLog(level, ranges, seq, opts);
  }

  /** Entries dropped since opening because writes could not keep up, or failed. */
  get lost(): number {
    return this.#lost;
  }

  /** Records a decision; it is written with the next batch. Ignored once the log is closed. */
  append(entry: AuditEntry): void {
    if (this.#closed) return;
    if (this.#pending.length >= this.#maxPending) {
      this.#lost += 1;
      return;
    }
    const kind: Kind = entry.reason === undefined ? 'sent' : 'suppressed';
    this.#pending.push({ kind, entry: { ...entry, seq: this.#seq++ } });
    if (this.#pending.length >= FLUSH_AT_ENTRIES) this.#startWrite();
    else this.#timer ??= setTimeout(() => this.#startWrite(), this.#flushEveryMs).unref();
  }

  /** Resolves once everything appended so far is written (or its write failed). */
  async flush(): Promise<void> {
    while (this.#writing !== undefined || this.#pending.length > 0) {
      this.#startWrite();
      await this.#writing;
    }
  }

  /** Decisions, newest first, both kinds merged unless `suppressed` asks for suppressions only. */
  async list(query: AuditQuery = {}): Promise<AuditEntry[]> {
    const limit = query.limit ?? DEFAULT_AUDIT_LIMIT;
    if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`limit must be at least 1, got ${limit}`);
    await this.flush();
    const kinds = query.suppressed === true ? (['suppressed'] as const) : KINDS;
    const streams = kinds.map((kind) => this.#newestFirst(kind));
    const heads: Array<Stored | undefined> = [];
    const out: AuditEntry[] = [];
    try {
      for (const [i, stream] of streams.entries()) heads[i] = await headOf(stream);
      while (out.length < limit) {
        // The newest of the heads is the one with the largest seq.
        let pick: number | undefined;
        for (const [i, head] of heads.entries()) {
          if (head !== undefined && (pick === undefined || head.seq > (heads[pick]?.seq ?? -1))) pick = i;
        }
        const head = pick === undefined ? undefined : heads[pick];
        const stream = pick === undefined ? undefined : streams[pick];
        if (pick === undefined || head === undefined || stream === undefined) break;
        if (query.actor === undefined || head.actor === query.actor) {
          const { seq: _seq, ...entry } = head;
          out.push(entry);
        }
        heads[pick] = await headOf(stream);
      }
    } finally {
      await Promise.all(streams.map((s) => s.return(undefined)));
    }
    return out;
  }

  /** Writes what is pending, then refuses new entries. */
  async close(): Promise<void> {
    if (this.#closed) return;
    await this.flush();
    this.#closed = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #startWrite(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#writing !== undefined || this.#pending.length === 0) return;
    const batch = this.#pending;
    this.#pending = [];
    this.#writing = this.#write(batch).finally(() => {
      this.#writing = undefined;
      // What was appended during the write goes in the next one.
      if (this.#pending.length >= FLUSH_AT_ENTRIES) this.#startWrite();
      else if (this.#pending.length > 0 && !this.#closed)
        this.#timer ??= setTimeout(() => this.#startWrite(), this.#flushEveryMs).unref();
    });
  }

  async #write(batch: Array<{ kind: Kind; entry: Stored }>): Promise<void> {
    const ops: Array<{ type: 'put'; key: string; value: Stored } | { type: 'del'; key: string }> = [];
    const ranges = { suppressed: { ...this.#ranges.suppressed }, sent: { ...this.#ranges.sent } };
    for (const { kind, entry } of batch) {
      const range = ranges[kind];
      ops.push({ type: 'put', key: keyOf(kind, range.next), value: entry });
      range.next += 1;
    }
    for (const kind of KINDS) {
      const range = ranges[kind];
      // Past the cap, the oldest go; one put in this very batch is deleted after it (a batch applies in order).
      for (; range.next - range.first > range.max; range.first += 1) {
        ops.push({ type: 'del', key: keyOf(kind, range.first) });
      }
    }
    try {
      // Not synced (LevelDB's default): the OS writes it out in its own time.
      await storeIo('writing the audit log', () => this.#level.batch(ops));
      this.#ranges.suppressed = ranges.suppressed;
      this.#ranges.sent = ranges.sent;
    } catch (err) {
      this.#lost += batch.length;
      this.#onError?.(err);
    }
  }

  async *#newestFirst(kind: Kind): AsyncGenerator<Stored, void, undefined> {
    const it = this.#level.iterator({ gte: PREFIX[kind], lt: after(PREFIX[kind]), reverse: true });
    try {
      for (;;) {
        const chunk = await storeIo('reading the audit log', () => it.nextv(READ_CHUNK));
        if (chunk.length === 0) return;
        for (const [, value] of chunk) {
          const entry = asStored(value);
          if (entry !== undefined) yield entry;
        }
      }
    } finally {
      await it.close();
    }
  }
}

async function headOf(stream: AsyncGenerator<Stored, void, undefined>): Promise<Stored | undefined> {
  const result = await stream.next();
  return result.done === true ? undefined : result.value;
}

// Fixed-width numbers sort in order as strings.
function keyOf(kind: Kind, n: number): string {
  return `${PREFIX[kind]}${String(n).padStart(16, '0')}`;
}

function numberOf(key: string): number {
  const n = Number(key.slice(2));
  return Number.isSafeInteger(n) && n >= 0 ? n : 0;
}

/** The first string after every key that starts with `prefix`. */
function after(prefix: string): string {
  return prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1);
}

/** A stored value, if it has the shape of an entry (the log is read back across versions). */
function asStored(value: unknown): Stored | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const v = value as Partial<Record<keyof Stored, unknown>>;
  if (
    typeof v.at !== 'number' ||
    typeof v.seq !== 'number' ||
    typeof v.id !== 'string' ||
    typeof v.scenario !== 'string' ||
    typeof v.actor !== 'string' ||
    typeof v.category !== 'string' ||
    typeof v.priority !== 'number' ||
    (v.group !== undefined && typeof v.group !== 'string') ||
    (v.reason !== undefined && typeof v.reason !== 'string')
  ) {
    return undefined;
  }
  return value as Stored;
}
