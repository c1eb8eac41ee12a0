import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { crc32 } from 'node:zlib';
import type { Logger } from 'pino';
import { DATA_FORMATS, DataFormatError, StoreIoError } from '../shared/index.js';
import { FrameRing } from './journal-frames.js';
import { fileJournalStorage, type JournalFile, type JournalStorage } from './journal-storage.js';

/**
 * How far a record must get before it counts as recorded: `sync` waits for fdatasync (it survives a power
 * cut), `write` for the write to the operating system (it survives the process being killed).
 */
export type Persist = 'sync' | 'write';

/** The journal cannot write: since when, and why. */
export interface JournalFault {
  sinceMs: number;
  message: string;
  code: string | undefined;
}

/** One group commit, for metrics. */
export interface CommitInfo {
  records: number;
  bytes: number;
  synced: boolean;
  ms: number;
}

export interface JournalOptions {
  dir: string;
  logger: Logger;
  storage?: JournalStorage | undefined;
  /** Sequence numbers go on after this one even if the files end earlier (a checkpoint got further). */
  afterSeq?: number | undefined;
  /** A segment is closed and a new one started once it holds this much; default 16 MiB. */
  segmentBytes?: number | undefined;
  /** Records kept at `write` are synced at least this often; default 1 s. */
  syncIntervalMs?: number | undefined;
  /**
   * How long a commit that has to sync waits for more records to join it, when it starts from idle; default 0
   * (at once). A few milliseconds trade that much latency for fewer fdatasyncs, which rewrite a whole page of
   * flash each.
   */
  commitWindowMs?: number | undefined;
  /**
   * How long the commit of records appended with `appendDeferred` may wait for more records, when nothing else waits
   * for one; default 0 (they are committed as any other record).
   */
  deferredCommitMs?: number | undefined;
  /** Back-off between attempts while the storage fails: doubles from `retryMinMs` up to `retryMaxMs`. */
  retryMinMs?: number | undefined;
  retryMaxMs?: number | undefined;
  /** Called when writing starts failing (with the fault) and when it works again (undefined). */
  onFault?: ((fault: JournalFault | undefined) => void) | undefined;
  /** After each commit; `info` is one object the journal reuses, to be read during the call. */
  onCommit?: ((info: CommitInfo) => void) | undefined;
  /**
   * After each commit, before the promises of `recorded()` settle: every record through `throughSeq` is recorded as
   * its `persist` asked. Called in order, once per commit (a group commit, not once per record).
   */
  onRecorded?: ((throughSeq: number) => void) | undefined;
  /** Every failed attempt to write or sync, for counting. */
  onError?: ((err: unknown) => void) | undefined;
}

/**
 * Frame: u32 payload length, u32 CRC-32 of the next 8 bytes and the payload, u48 sequence number, u16 the format of
 * the record (0 in frames written before formats were numbered: format 1).
 */
const HEADER_BYTES = 16;
const MAX_RECORD_BYTES = 16 * 1024 * 1024;
/** The slab frames are written into (a larger record gets one of its own size). */
const SLAB_BYTES = 64 * 1024;
const DEFAULT_SEGMENT_BYTES = 16 * 1024 * 1024;
const DEFAULT_SYNC_INTERVAL_MS = 1_000;
const DEFAULT_RETRY_MIN_MS = 50;
const DEFAULT_RETRY_MAX_MS = 5_000;
/** While the storage keeps failing, a reminder is logged this often. */
const FAULT_REMINDER_MS = 10_000;
const SEGMENT_NAME = /^(\d{16})-(\d{8})\.wal$/;
const MAX_BATCH = 4_096;
const NO_REQUESTS: readonly Request[] = Object.freeze([]);

interface Segment {
  first: number;
  gen: number;
  path: string;
  /** Last sequence number that counts in it; undefined while it is the active segment. */
  end: number | undefined;
  /** Its size once it is no longer written (the active segment's is `#fileBytes`). */
  bytes: number;
}

/** A segment as retention weighs it: its records (none when `end` < `first`) and its size. */
export interface SegmentSpan {
  first: number;
  end: number;
  bytes: number;
}

interface Request {
  /** The last record appended when it was asked for. */
  through: number;
  sync: boolean;
  rotate: boolean;
  resolve: () => void;
  reject: (err: Error) => void;
  /** The promise of `recorded()`, which callers may not wait for: it is made handled before it is rejected. */
  shared: Promise<void> | undefined;
}

/**
 * The write-ahead journal: records appended in order, each with a sequence number, written in group
 * commits (what arrives while one commit is being written and synced goes into the next one), in segment
 * files that are deleted once a checkpoint covers them.
 *
 * A crash leaves a prefix of what was appended: frames carry a CRC, and reading stops at the first one that
 * does not check out (a torn write). When the storage fails, the journal does not give up and does not
 * pretend: the batch and everything after it wait, and each retry writes whatever was not yet synced into a
 * fresh segment (after a failed fsync the old file's pages cannot be trusted), which supersedes the old one
 * from its first record on.
 */
export class Journal {
  readonly dir: string;
  /** The last record found on disk when the journal was opened. */
  readonly recoveredThrough: number;
  readonly #storage: JournalStorage;
  readonly #logger: Logger;
  readonly #segmentBytes: number;
  readonly #commitWindowMs: number;
  readonly #deferredCommitMs: number;
  readonly #retryMinMs: number;
  readonly #retryMaxMs: number;
  readonly #onFault: JournalOptions['onFault'];
  readonly #onCommit: JournalOptions['onCommit'];
  readonly #onRecorded: JournalOptions['onRecorded'];
  readonly #onError: JournalOptions['onError'];
  readonly #segments: Segment[];
  #gen: number;
  #file: JournalFile | undefined;
  #fileBytes = 0;
  #nextSeq: number;
  #writtenThrough: number;
  /**
   * Where the frames of the records not yet synced lie (`#frames.first` on): those written (or being written) up to
   * `#queuedFrom - 1`, then those waiting for a commit, up to `#nextSeq - 1`.
   */
  readonly #frames: FrameRing;
  /** The first record no commit has taken. */
  #queuedFrom: number;
  /** The last record appended that asked for a sync. */
  #lastSyncSeq = 0;
  /** The last record appended whose commit may not be deferred (`appendDeferred`). */
  #lastUrgentSeq = 0;
  /** The timer of a deferred commit, while one is scheduled. */
  #deferTimer: NodeJS.Timeout | undefined;
  #requests: Request[] = [];
  /** The request `recorded()` shares among everyone who asks before the next commit takes the queue. */
  #open: Request | undefined;
  #openPromise: Promise<void> | undefined;
  /**
   * Frames are written one after the other into a slab, not a buffer each; a full slab is left to the records in
   * it (never written over: a rewrite after a fault may need them) and a new one taken.
   */
  #slab = Buffer.allocUnsafeSlow(SLAB_BYTES);
  #slabUsed = 0;
  #broken = false;
  #flushing = false;
  #scheduled = false;
  #closing = false;
  #closed = false;
  #closeDeadlineMs = Number.POSITIVE_INFINITY;
  #fault: JournalFault | undefined;
  #lastReminderMs = 0;
  #inCommit = 0;
  /** The commit under way: its records (none when `#batchThrough` < `#batchFrom`), what it answers, its bytes, its start. */
  #batchFrom = 0;
  #batchThrough = 0;
  #batchRequests: readonly Request[] = NO_REQUESTS;
  #batchBytes = 0;
  #batchStartedMs = 0;
  readonly #info: CommitInfo = { records: 0, bytes: 0, synced: false, ms: 0 };
  #idle: Array<() => void> = [];
  /** The periodic sync of records kept at `write` is due; it runs beside the commits, nobody waits for it. */
  #syncDue = false;
  #background: Promise<void> | undefined;
  /** Ends the back-off wait early, so that closing does not wait out a long retry delay. */
  #wakeRetry: (() => void) | undefined;
  readonly #syncTimer: NodeJS.Timeout;

  private constructor(opts: JournalOptions, storage: JournalStorage, segments: Segment[], lastSeq: number) {
    this.dir = opts.dir;
    this.#storage = storage;
    this.#logger = opts.logger;
    this.#segmentBytes = opts.segmentBytes ?? DEFAULT_SEGMENT_BYTES;
    this.#commitWindowMs = opts.commitWindowMs ?? 0;
    this.#deferredCommitMs = opts.deferredCommitMs ?? 0;
    this.#retryMinMs = opts.retryMinMs ?? DEFAULT_RETRY_MIN_MS;
    this.#retryMaxMs = opts.retryMaxMs ?? DEFAULT_RETRY_MAX_MS;
    this.#onFault = opts.onFault;
    this.#onCommit = opts.onCommit;
    this.#onRecorded = opts.onRecorded;
    this.#onError = opts.onError;
    this.#segments = segments;
    this.#gen = segments.reduce((max, s) => Math.max(max, s.gen), 0) + 1;
    this.recoveredThrough = lastSeq;
    this.#nextSeq = lastSeq + 1;
    this.#writtenThrough = lastSeq;
    this.#frames = new FrameRing(lastSeq + 1);
    this.#queuedFrom = lastSeq + 1;
    // The active segment is created by the first commit, through the same path a retry takes.
    this.#broken = true;
    const syncIntervalMs = opts.syncIntervalMs ?? DEFAULT_SYNC_INTERVAL_MS;
    this.#syncTimer = setInterval(() => {
      if (this.#hasUnsynced() || (this.#broken && this.#fault !== undefined)) {
        this.#syncDue = true;
        this.#schedule();
      }
    }, syncIntervalMs);
    this.#syncTimer.unref();
  }

  /** Opens the journal in `dir` (creating it), finds where its records end, and starts a new segment. */
  static async open(opts: JournalOptions): Promise<Journal> {
    const storage = opts.storage ?? fileJournalStorage();
    try {
      await storage.ensureDir(opts.dir);
    } catch (err) {
      throw new StoreIoError(`cannot create the journal directory ${opts.dir}: ${messageOf(err)}`, {
        cause: err,
      });
    }
    const found = await scanSegments(storage, opts.dir, opts.logger);
    const journal = new Journal(opts, storage, found.segments, Math.max(opts.afterSeq ?? 0, found.lastSeq));
    // Not awaited: a disk that fails from the start is a fault like any other, reported and retried, and the
    // gateway still starts (holding what it cannot record).
    journal.sync().catch(() => undefined);
    return journal;
  }

  /** The sequence number the next record gets. */
  get nextSeq(): number {
    return this.#nextSeq;
  }

  /** Records appended and not yet recorded (waiting for a commit, or for the storage to work again). */
  get queued(): number {
    return this.#nextSeq - this.#queuedFrom + (this.#flushing ? this.#inCommit : 0);
  }

  /** Set while the storage refuses writes. */
  get fault(): JournalFault | undefined {
    return this.#fault;
  }

  /**
   * Appends a record; returns its sequence number, or -1 when the journal is closing (the record is dropped).
   * It is recorded by a later commit, which `onRecorded` and `recorded()` report for all its records at once.
   * `format`: the format of the record's encoding, which a build that reads only older ones refuses. The record is
   * the bytes of `payload` from `start` to `end`, copied at once (a buffer the caller reuses will do).
   */
  append(payload: Uint8Array, persist: Persist, format = 1, start = 0, end = payload.length): number {
    const seq = this.#append(payload, persist, format, start, end);
    if (seq >= 0) this.#lastUrgentSeq = seq;
    this.#schedule();
    return seq;
  }

  /**
   * As `append` at `write`, for a record nobody waits for promptly (a device's connection or disconnection): while
   * nothing else waits for a commit, it waits up to `deferredCommitMs` for more records to share its write, so that a
   * storm of connections costs a write per few milliseconds rather than one per turn of the event loop. A record
   * appended with `append`, a sync, a rotation or closing brings the commit forward.
   */
  appendDeferred(payload: Uint8Array, format = 1, start = 0, end = payload.length): number {
    const seq = this.#append(payload, 'write', format, start, end);
    this.#schedule();
    return seq;
  }

  #append(payload: Uint8Array, persist: Persist, format: number, start: number, end: number): number {
    if (this.#closing) return -1;
    if (end - start > MAX_RECORD_BYTES) throw new RangeError(`journal record of ${end - start} bytes`);
    const seq = this.#nextSeq++;
    const bytes = HEADER_BYTES + end - start;
    if (this.#slabUsed + bytes > this.#slab.length) {
      this.#slab = Buffer.allocUnsafeSlow(Math.max(SLAB_BYTES, bytes));
      this.#slabUsed = 0;
    }
    const slab = this.#slab;
    const at = this.#slabUsed;
    writeFrame(slab, at, seq, payload, start, end, format);
    this.#slabUsed = at + bytes;
    this.#frames.push(seq, slab, at, at + bytes, persist === 'sync');
    if (persist === 'sync') this.#lastSyncSeq = seq;
    return seq;
  }

  /**
   * Settles once every record appended so far is recorded as its `persist` asked (after `onRecorded` was called for
   * it), or rejects if the journal closed before that. Everyone who asks between two commits shares one promise:
   * one per commit, not one per record.
   */
  recorded(): Promise<void> {
    if (this.#closing) return Promise.reject(closedError());
    const through = this.#nextSeq - 1;
    if (this.#open !== undefined && this.#openPromise !== undefined) {
      this.#open.through = through;
      return this.#openPromise;
    }
    const promise = new Promise<void>((resolve, reject) => {
      this.#open = { through, sync: false, rotate: false, resolve, reject, shared: undefined };
    });
    (this.#open as Request).shared = promise;
    this.#requests.push(this.#open as Request);
    this.#openPromise = promise;
    this.#schedule();
    return promise;
  }

  /** Resolves once everything appended so far is synced. */
  sync(): Promise<void> {
    return this.#request(true, false);
  }

  /** Syncs and starts a new segment, so that the records before it can be deleted once covered. */
  rotate(): Promise<void> {
    return this.#request(true, true);
  }

  /**
   * The records after `afterSeq` up to `throughSeq`, in order, from the segments found when the journal was
   * opened (records appended since are not read back).
   */
  read(afterSeq: number, throughSeq: number = this.recoveredThrough): AsyncGenerator<JournalEntry> {
    return readSegments(this.#storage, this.#segments, afterSeq, Math.min(throughSeq, this.recoveredThrough));
  }

  /** The same records as `read`, handed out a chunk at a time (see `readChunks`): no promise per record. */
  readChunks(
    afterSeq: number,
    throughSeq: number = this.recoveredThrough,
  ): AsyncGenerator<readonly JournalEntry[]> {
    const through = Math.min(throughSeq, this.recoveredThrough);
    return readSegmentChunks(this.#storage, this.#segments, afterSeq, through);
  }

  /** The first record the journal still holds (1 while nothing was ever deleted). */
  get firstSeq(): number {
    return this.#segments[0]?.first ?? this.#nextSeq;
  }

  /** Each segment's records (`end` < `first`: none) and size, the one being written included. */
  spans(): SegmentSpan[] {
    const active = this.#active();
    return this.#segments.map((seg) =>
      seg === active
        ? { first: seg.first, end: this.#writtenThrough, bytes: this.#fileBytes }
        : { first: seg.first, end: seg.end ?? seg.first - 1, bytes: seg.bytes },
    );
  }

  /** Deletes the segments whose records all come at or before `seq`; returns how many. */
  async dropThrough(seq: number): Promise<number> {
    let dropped = 0;
    for (let i = 0; i < this.#segments.length;) {
      const seg = this.#segments[i] as Segment;
      if (seg.end === undefined || seg.end > seq || seg === this.#active()) {
        i++;
        continue;
      }
      try {
        await this.#storage.remove(seg.path);
      } catch (err) {
        this.#logger.warn(
          { err, segment: seg.path },
          'old journal segment not deleted; it is tried again later',
        );
        i++;
        continue;
      }
      this.#segments.splice(i, 1);
      dropped++;
    }
    return dropped;
  }

  /**
   * Records what was appended, then closes. While the storage fails it keeps trying until `timeoutMs`, then
   * gives up on what is left (those records were never acknowledged).
   */
  async close(timeoutMs = 5_000): Promise<void> {
    if (this.#closed) return;
    if (!this.#closing) {
      this.#closing = true;
      this.#closeDeadlineMs = performance.now() + timeoutMs;
      clearInterval(this.#syncTimer);
      if (this.#nextSeq > this.#queuedFrom || this.#hasUnsynced())
        this.#requests.push(noopRequest(this.#nextSeq - 1, true));
      this.#schedule();
      this.#wakeRetry?.();
    }
    await this.#whenIdle();
    await this.#settleBackground();
    if (this.#closed) return;
    this.#closed = true;
    const file = this.#file;
    this.#file = undefined;
    if (file) await file.close().catch(() => undefined);
  }

  #active(): Segment | undefined {
    return this.#file === undefined ? undefined : this.#segments[this.#segments.length - 1];
  }

  #request(sync: boolean, rotate: boolean): Promise<void> {
    if (this.#closing) return Promise.reject(closedError());
    return new Promise<void>((resolve, reject) => {
      this.#requests.push({ through: this.#nextSeq - 1, sync, rotate, resolve, reject, shared: undefined });
      this.#schedule();
    });
  }

  #schedule(): void {
    if (this.#flushing) return;
    const defer = this.#mayDefer();
    if (this.#scheduled) {
      // A deferred commit is brought forward by anything that may not wait.
      if (this.#deferTimer === undefined || defer) return;
      clearTimeout(this.#deferTimer);
      this.#deferTimer = undefined;
    }
    this.#scheduled = true;
    // After the current turn: the publishes of one socket read, and of every socket readable now, join one
    // commit; with a commit window, so do those of the next milliseconds when the commit will have to sync.
    if (defer) this.#deferTimer = setTimeout(this.#start, this.#deferredCommitMs);
    else if (this.#commitWindowMs > 0 && this.#lastSyncSeq >= this.#queuedFrom)
      setTimeout(this.#start, this.#commitWindowMs);
    else setImmediate(this.#start);
  }

  /** Whether the next commit may wait: it carries only deferred records, and nobody asked for a sync or to close. */
  #mayDefer(): boolean {
    if (this.#deferredCommitMs <= 0 || this.#closing || this.#syncDue) return false;
    if (this.#nextSeq === this.#queuedFrom || this.#lastUrgentSeq >= this.#queuedFrom) return false;
    for (let i = 0; i < this.#requests.length; i++) {
      const r = this.#requests[i] as Request;
      if (r.sync || r.rotate) return false;
    }
    return true;
  }

  /** Made once, not per commit. */
  readonly #start = (): void => {
    this.#scheduled = false;
    this.#deferTimer = undefined;
    this.#flush();
  };

  #whenIdle(): Promise<void> {
    if (
      !this.#flushing &&
      !this.#scheduled &&
      this.#nextSeq === this.#queuedFrom &&
      this.#requests.length === 0
    ) {
      return Promise.resolve();
    }
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  /**
   * Starts the next commit, or ends the flushing when nothing waits for one. A plain function, not an async one: the
   * commit calls back (`#committed`) and that starts the next. Never fails: a failure is retried, and reported to the
   * callers only when the journal closes.
   */
  #flush(): void {
    this.#flushing = true;
    if (this.#nextSeq === this.#queuedFrom && this.#requests.length === 0 && !this.#syncDue) {
      this.#flushEnd();
      return;
    }
    // A commit takes at most MAX_BATCH records: a backlog (the storage failed for a while) goes in slices.
    const from = this.#queuedFrom;
    const through = Math.min(this.#nextSeq - 1, from + MAX_BATCH - 1);
    this.#queuedFrom = through + 1;
    // What is appended from here on is recorded by a later commit: it shares a new promise.
    this.#open = undefined;
    this.#openPromise = undefined;
    // A sync or rotation asked for covers what was appended before it, so it goes with the slice that ends there.
    const requests = this.#takeRequests(through >= from ? through : this.#writtenThrough);
    this.#inCommit = through - from + 1;
    let sync = through >= from && this.#frames.anySync(from, through);
    let rotate = false;
    for (let i = 0; i < requests.length; i++) {
      const r = requests[i] as Request;
      sync ||= r.sync;
      rotate ||= r.rotate;
    }
    const due = this.#syncDue;
    this.#syncDue = false;
    this.#batchFrom = from;
    this.#batchThrough = through;
    this.#batchRequests = requests;
    this.#batchBytes = through >= from ? this.#frames.bytes(from, through) : 0;
    this.#batchStartedMs = performance.now();
    this.#commit(sync, rotate, due);
  }

  /** The commit under way is done (`ok`) or given up (the journal closes): its callers are told, and the next starts. */
  readonly #committed = (ok: boolean): void => {
    this.#inCommit = 0;
    const requests = this.#batchRequests;
    this.#batchRequests = NO_REQUESTS;
    if (!ok) {
      const err = closedError();
      rejectAll(requests, err);
      rejectAll(this.#requests, err);
      this.#requests = [];
      // Never written: nothing is left to write.
      this.#queuedFrom = this.#nextSeq;
      this.#frames.dropThrough(this.#nextSeq - 1);
      this.#flushEnd();
      return;
    }
    if (this.#batchThrough >= this.#batchFrom) this.#reportRecorded(this.#batchThrough);
    for (let i = 0; i < requests.length; i++) (requests[i] as Request).resolve();
    // What was appended meanwhile goes next, unless it may wait for more (then `#flushEnd` defers it).
    if (this.#mayDefer()) this.#flushEnd();
    else this.#flush();
  };

  #flushEnd(): void {
    this.#flushing = false;
    if (this.#nextSeq > this.#queuedFrom || this.#requests.length > 0) {
      this.#schedule();
      return;
    }
    if (this.#idle.length === 0) return;
    const idle = this.#idle;
    this.#idle = [];
    for (const wake of idle) wake();
  }

  /** Whether records were written (or are being written) and not yet synced. */
  #hasUnsynced(): boolean {
    return this.#queuedFrom > this.#frames.first;
  }

  /** The requests the commit through `through` answers, taken out of those waiting (no arrays when none wait). */
  #takeRequests(through: number): readonly Request[] {
    const waiting = this.#requests;
    if (waiting.length === 0) return NO_REQUESTS;
    if (waiting.every((r) => r.through <= through)) {
      this.#requests = [];
      return waiting;
    }
    this.#requests = waiting.filter((r) => r.through > through);
    return waiting.filter((r) => r.through <= through);
  }

  /**
   * Writes the batch (and syncs, rotates); retries until it works or the journal closes, then `#committed`. `due`:
   * start the periodic sync in the background, so that records at `write` never wait for a sync.
   */
  #commit(sync: boolean, rotate: boolean, due: boolean): void {
    const from = this.#batchFrom;
    const through = this.#batchThrough;
    const plain = !this.#broken && through >= from && !sync && !rotate && !due;
    if (plain && this.#fileBytes + this.#batchBytes < this.#segmentBytes) {
      // The usual commit is one write and nothing else: it waits on the write alone, without a promise or a suspended
      // frame (an async function's frame and promise cost more than the write's own allocations), and when its frames
      // lie end to end in one slab (all but the commit that crosses to a new slab), without a list of them.
      const file = this.#file as JournalFile;
      const frames = this.#frames;
      if (file.write !== undefined && frames.oneRun(from, through))
        file.write(frames.slabOf(from), frames.startOf(from), frames.endOf(through), this.#plainDone);
      else file.append(frames.runs(from, through)).then(this.#plainWritten, this.#plainFailed);
      return;
    }
    void this.#commitWithRetries(sync, rotate, due, undefined).then(this.#committed);
  }

  readonly #plainDone = (err: Error | null): void => {
    if (err) this.#plainFailed(err);
    else this.#plainWritten();
  };

  /** After the write of a plain commit: as `#attempt` goes on after its write. */
  readonly #plainWritten = (): void => {
    try {
      this.#fileBytes += this.#batchBytes;
      this.#checkBackground();
      this.#writtenThrough = this.#batchThrough;
      this.#healthy();
      this.#reportCommit(false);
    } catch (err) {
      this.#plainFailed(err);
      return;
    }
    this.#committed(true);
  };

  /** A plain commit that failed goes on as any failed commit: the storage is broken, and it is retried. */
  readonly #plainFailed = (err: unknown): void => {
    void this.#commitWithRetries(false, false, false, { err }).then(this.#committed);
  };

  #reportCommit(synced: boolean): void {
    if (this.#onCommit === undefined) return;
    const info = this.#info;
    info.records = Math.max(0, this.#batchThrough - this.#batchFrom + 1);
    info.bytes = this.#batchBytes;
    info.synced = synced;
    info.ms = performance.now() - this.#batchStartedMs;
    this.#onCommit(info);
  }

  async #commitWithRetries(
    sync: boolean,
    rotate: boolean,
    due: boolean,
    failed: { err: unknown } | undefined,
  ): Promise<boolean> {
    let delayMs = this.#retryMinMs;
    for (;;) {
      if (failed === undefined) {
        try {
          await this.#attempt(sync, rotate, due);
          return true;
        } catch (err) {
          failed = { err };
        }
      }
      this.#broken = true;
      this.#failing(failed.err);
      failed = undefined;
      if (this.#closing && performance.now() >= this.#closeDeadlineMs) return false;
      const waitMs = this.#closing ? Math.min(delayMs, this.#closeDeadlineMs - performance.now()) : delayMs;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.max(1, waitMs));
        this.#wakeRetry = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.#wakeRetry = undefined;
      delayMs = Math.min(this.#retryMaxMs, delayMs * 2);
    }
  }

  /** One attempt at the commit under way: throws when the storage fails. */
  async #attempt(sync: boolean, rotate: boolean, due: boolean): Promise<void> {
    const from = this.#batchFrom;
    const through = this.#batchThrough;
    let synced = false;
    if (this.#broken) {
      await this.#settleBackground();
      await this.#reopen();
      synced = true;
    } else if (through >= from) {
      await (this.#file as JournalFile).append(this.#frames.runs(from, through));
      this.#fileBytes += this.#batchBytes;
      this.#checkBackground();
    }
    if (through >= from) this.#writtenThrough = through;
    if (sync && this.#hasUnsynced()) {
      const syncThrough = this.#queuedFrom - 1;
      await (this.#file as JournalFile).datasync();
      this.#checkBackground();
      this.#syncedThrough(syncThrough);
      synced = true;
    } else if (due && this.#hasUnsynced() && this.#background === undefined) {
      this.#syncInBackground();
    }
    if ((rotate || this.#fileBytes >= this.#segmentBytes) && this.#fileBytes > 0) {
      await this.#settleBackground();
      this.#checkBackground();
      await this.#rotate();
    }
    this.#healthy();
    this.#reportCommit(synced);
  }

  #reportRecorded(through: number): void {
    try {
      this.#onRecorded?.(through);
    } catch (err) {
      // The records are written all the same: the waiters are told so, and the journal goes on.
      this.#logger.error({ err, through }, 'handling recorded journal records failed');
    }
  }

  #syncInBackground(): void {
    const file = this.#file as JournalFile;
    const through = this.#queuedFrom - 1;
    const running = file.datasync().then(
      () => this.#syncedThrough(through),
      (err: unknown) => {
        if (this.#file !== file) return;
        this.#broken = true;
        this.#failing(err);
        this.#syncDue = true;
        this.#schedule();
      },
    );
    const settled: Promise<void> = running.finally(() => {
      if (this.#background === settled) this.#background = undefined;
    });
    this.#background = settled;
  }

  async #settleBackground(): Promise<void> {
    while (this.#background !== undefined) await this.#background;
  }

  /** After a failed background sync the file cannot be trusted: what the commit did on it is done again. */
  #checkBackground(): void {
    if (this.#broken) throw new Error('a sync of the journal failed');
  }

  #syncedThrough(seq: number): void {
    this.#frames.dropThrough(Math.min(seq, this.#queuedFrom - 1));
  }

  /** A fresh segment holding everything not yet synced; the old file is closed and superseded from there on. */
  async #reopen(): Promise<void> {
    const rewrite = this.#hasUnsynced();
    const through = this.#queuedFrom - 1;
    const first = rewrite ? this.#frames.first : this.#writtenThrough + 1;
    const old = this.#file;
    this.#file = undefined;
    const previous = this.#segments[this.#segments.length - 1];
    if (previous && previous.end === undefined) {
      previous.end = first - 1;
      previous.bytes = this.#fileBytes;
    }
    if (old) await old.close().catch(() => undefined);
    const seg: Segment = { first, gen: this.#gen++, path: '', end: undefined, bytes: 0 };
    seg.path = join(this.dir, segmentName(seg));
    const file = await this.#storage.create(seg.path);
    let bytes = 0;
    try {
      await this.#storage.syncDir(this.dir);
      if (rewrite) {
        await file.append(this.#frames.runs(first, through));
        bytes = this.#frames.bytes(first, through);
      }
      await file.datasync();
    } catch (err) {
      // Nothing in it was synced, so nothing acknowledged depends on it; on a full disk it would only take
      // room, and every retry would leave one more.
      await file.close().catch(() => undefined);
      await this.#storage.remove(seg.path).catch(() => undefined);
      throw err;
    }
    this.#segments.push(seg);
    this.#file = file;
    this.#fileBytes = bytes;
    this.#frames.dropThrough(through);
    this.#broken = false;
  }

  async #rotate(): Promise<void> {
    const file = this.#file as JournalFile;
    if (this.#hasUnsynced()) {
      const through = this.#queuedFrom - 1;
      await file.datasync();
      this.#frames.dropThrough(through);
    }
    const previous = this.#segments[this.#segments.length - 1] as Segment;
    this.#file = undefined;
    previous.end = this.#writtenThrough;
    previous.bytes = this.#fileBytes;
    await file.close();
    const seg: Segment = {
      first: this.#writtenThrough + 1,
      gen: this.#gen++,
      path: '',
      end: undefined,
      bytes: 0,
    };
    seg.path = join(this.dir, segmentName(seg));
    this.#broken = true; // until the new segment exists
    const next = await this.#storage.create(seg.path);
    this.#segments.push(seg);
    this.#file = next;
    this.#fileBytes = 0;
    await this.#storage.syncDir(this.dir);
    this.#broken = false;
  }

  #failing(err: unknown): void {
    this.#onError?.(err);
    const code = (err as { code?: unknown }).code;
    const now = performance.now();
    if (this.#fault === undefined) {
      this.#fault = {
        sinceMs: Date.now(),
        message: messageOf(err),
        code: typeof code === 'string' ? code : undefined,
      };
      this.#lastReminderMs = now;
      this.#logger.error(
        { err, dir: this.dir, held: this.queued },
        'STORAGE FAULT: the journal cannot write; QoS 1 publishes are not acknowledged, QoS 0 device events are shed and other inputs are held until it can',
      );
      this.#onFault?.(this.#fault);
    } else if (now - this.#lastReminderMs >= FAULT_REMINDER_MS) {
      this.#lastReminderMs = now;
      this.#logger.error(
        { err, dir: this.dir, held: this.queued, failingForMs: Date.now() - this.#fault.sinceMs },
        'STORAGE FAULT: the journal still cannot write; inputs are held',
      );
    }
  }

  #healthy(): void {
    if (this.#fault === undefined) return;
    const failedForMs = Date.now() - this.#fault.sinceMs;
    this.#fault = undefined;
    this.#logger.warn({ dir: this.dir, failedForMs }, 'storage writable again: the journal goes on');
    this.#onFault?.(undefined);
  }
}

/** One record read back from the journal. */
export interface JournalEntry {
  seq: number;
  payload: Buffer;
}

/**
 * The journal in `dir` opened only to read, beside a gateway that may be writing it: nothing is created, written
 * or deleted. It reads the records the segments held when it was opened.
 */
export class JournalReader {
  private constructor(
    private readonly storage: JournalStorage,
    private readonly segments: readonly Segment[],
    /** The last record found. */
    readonly lastSeq: number,
  ) {}

  /** Undefined when `dir` holds no journal segment. */
  static async open(
    dir: string,
    storage: JournalStorage,
    logger: Logger,
  ): Promise<JournalReader | undefined> {
    const exists = await storage.list(dir).then(
      () => true,
      (err: unknown) => {
        if ((err as { code?: unknown }).code === 'ENOENT') return false;
        throw err;
      },
    );
    if (!exists) return undefined;
    const found = await scanSegments(storage, dir, logger);
    if (found.segments.length === 0) return undefined;
    return new JournalReader(storage, found.segments, found.lastSeq);
  }

  /** The first record held (1 while nothing was ever deleted); `lastSeq` + 1 when there is none. */
  get firstSeq(): number {
    return this.segments.find((seg) => (seg.end ?? 0) >= seg.first)?.first ?? this.lastSeq + 1;
  }

  read(afterSeq: number, throughSeq: number = this.lastSeq): AsyncGenerator<JournalEntry> {
    return readSegments(this.storage, this.segments, afterSeq, Math.min(throughSeq, this.lastSeq));
  }

  readChunks(afterSeq: number, throughSeq: number = this.lastSeq): AsyncGenerator<readonly JournalEntry[]> {
    return readSegmentChunks(this.storage, this.segments, afterSeq, Math.min(throughSeq, this.lastSeq));
  }
}

/**
 * The segments in `dir`, each with where its valid records end, and the last record found (0 for none). Each
 * segment's own valid records count first; then a later segment supersedes earlier ones from its first valid
 * record on (a retry after a storage fault rewrote them there).
 */
async function scanSegments(
  storage: JournalStorage,
  dir: string,
  logger: Logger,
): Promise<{ segments: Segment[]; lastSeq: number }> {
  const segments: Segment[] = [];
  for (const name of await storage.list(dir)) {
    const m = SEGMENT_NAME.exec(name);
    if (m) {
      const seg = { first: Number(m[1]), gen: Number(m[2]), path: join(dir, name), end: undefined, bytes: 0 };
      segments.push(seg);
    }
  }
  segments.sort((a, b) => a.first - b.first || a.gen - b.gen);
  const lasts: number[] = [];
  for (const seg of segments) {
    const buf = await storage.read(seg.path);
    seg.bytes = buf.length;
    const parsed = parseFrames(buf, seg.first, Number.POSITIVE_INFINITY);
    if (parsed.newest !== undefined && parsed.newest.format > DATA_FORMATS.journal) {
      throw new DataFormatError('journal', parsed.newest.format, `${seg.path} (record ${parsed.newest.seq})`);
    }
    lasts.push(parsed.count > 0 ? seg.first + parsed.count - 1 : seg.first - 1);
    if (parsed.validBytes < buf.length) {
      logger.warn(
        { segment: seg.path, droppedBytes: buf.length - parsed.validBytes },
        'journal segment ends with an incomplete record (a write cut short); it is ignored',
      );
    }
  }
  let lastSeq = 0;
  let expected: number | undefined;
  for (let i = 0; i < segments.length; i++) {
    const seg = segments[i] as Segment;
    let end = lasts[i] as number;
    for (let j = i + 1; j < segments.length; j++) {
      const later = segments[j] as Segment;
      if ((lasts[j] as number) >= later.first) {
        end = Math.min(end, later.first - 1);
        break;
      }
    }
    seg.end = end;
    if (end < seg.first) continue;
    if (expected !== undefined && seg.first > expected) {
      logger.error(
        { missingFrom: expected, missingTo: seg.first - 1, segment: seg.path },
        'journal records are missing (a damaged segment); recovery goes on without them',
      );
    }
    expected = end + 1;
    lastSeq = Math.max(lastSeq, end);
  }
  return { segments, lastSeq };
}

/** The records after `afterSeq` up to `throughSeq` in `segments`, in order. */
async function* readSegments(
  storage: JournalStorage,
  segments: readonly Segment[],
  afterSeq: number,
  throughSeq: number,
): AsyncGenerator<JournalEntry> {
  for await (const chunk of readSegmentChunks(storage, segments, afterSeq, throughSeq)) yield* chunk;
}

/** Records a chunk of `readSegmentChunks` holds at most. */
const CHUNK_RECORDS = 4_096;

/**
 * The records after `afterSeq` up to `throughSeq` in `segments`, in order, in chunks of up to `CHUNK_RECORDS`: a
 * replay goes through a chunk without waiting on a promise per record.
 */
async function* readSegmentChunks(
  storage: JournalStorage,
  segments: readonly Segment[],
  afterSeq: number,
  throughSeq: number,
): AsyncGenerator<readonly JournalEntry[]> {
  for (const seg of segments) {
    const end = Math.min(seg.end ?? Number.NEGATIVE_INFINITY, throughSeq);
    if (end < seg.first || end <= afterSeq) continue;
    const buf = await storage.read(seg.path);
    let seq = seg.first;
    let offset = 0;
    let chunk: JournalEntry[] = [];
    for (;;) {
      if (seq > end) break;
      const next = readFrame(buf, offset, seq);
      if (next === undefined) break;
      if (seq > afterSeq) chunk.push({ seq, payload: buf.subarray(offset + HEADER_BYTES, next) });
      if (chunk.length >= CHUNK_RECORDS) {
        yield chunk;
        chunk = [];
      }
      offset = next;
      seq++;
    }
    if (chunk.length > 0) yield chunk;
  }
}

function segmentName(seg: { first: number; gen: number }): string {
  return `${String(seg.first).padStart(16, '0')}-${String(seg.gen).padStart(8, '0')}.wal`;
}

function ignore(): void {}

/** Writes the frame of record `seq` (the bytes of `payload` from `start` to `end`) into `slab` at `at`. */
function writeFrame(
  slab: Buffer,
  at: number,
  seq: number,
  payload: Uint8Array,
  start: number,
  end: number,
  format: number,
): void {
  slab.writeUInt32LE(end - start, at);
  slab.writeUIntLE(seq, at + 8, 6);
  slab.writeUInt16LE(format, at + 14);
  // Copied without a view of the range: `copy` takes the range itself.
  if (Buffer.isBuffer(payload)) payload.copy(slab, at + HEADER_BYTES, start, end);
  else slab.set(payload.subarray(start, end), at + HEADER_BYTES);
  slab.writeUInt32LE(crc32Of(slab, at + 8, at + HEADER_BYTES + end - start), at + 4);
}

/**
 * CRC-32 (that of zlib's `crc32`) of `buf` from `start` to `end`, without a view of the range; four bytes a step
 * (slice-by-4), which for a record of a hundred-odd bytes is quicker than zlib's call with the view it needs.
 */
function crc32Of(buf: Uint8Array, start: number, end: number): number {
  const t = CRC_TABLES;
  let crc = -1;
  let i = start;
  for (; i + 4 <= end; i += 4) {
    crc ^=
      (buf[i] as number) |
      ((buf[i + 1] as number) << 8) |
      ((buf[i + 2] as number) << 16) |
      ((buf[i + 3] as number) << 24);
    crc =
      (t[768 + (crc & 0xff)] as number) ^
      (t[512 + ((crc >>> 8) & 0xff)] as number) ^
      (t[256 + ((crc >>> 16) & 0xff)] as number) ^
      (t[crc >>> 24] as number);
  }
  for (; i < end; i++) crc = (t[(crc ^ (buf[i] as number)) & 0xff] as number) ^ (crc >>> 8);
  return (crc ^ -1) >>> 0;
}

/** Table k (at 256·k) gives the CRC of a byte followed by k zero bytes. */
const CRC_TABLES = ((): Int32Array => {
  const t = new Int32Array(1024);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c;
  }
  for (let k = 1; k < 4; k++) {
    for (let n = 0; n < 256; n++) {
      const prev = t[(k - 1) * 256 + n] as number;
      t[k * 256 + n] = (t[prev & 0xff] as number) ^ (prev >>> 8);
    }
  }
  return t;
})();

/** The offset after the frame at `offset` if it is whole, checks out and carries `seq`; else undefined. */
function readFrame(buf: Buffer, offset: number, seq: number): number | undefined {
  if (offset + HEADER_BYTES > buf.length) return undefined;
  const length = buf.readUInt32LE(offset);
  if (length > MAX_RECORD_BYTES) return undefined;
  const end = offset + HEADER_BYTES + length;
  if (end > buf.length) return undefined;
  if (buf.readUIntLE(offset + 8, 6) !== seq) return undefined;
  if (crc32(buf.subarray(offset + 8, end)) !== buf.readUInt32LE(offset + 4)) return undefined;
  return end;
}

/** The whole frames from the start of `buf`: how many, their bytes, and the first of the newest format among them. */
function parseFrames(
  buf: Buffer,
  first: number,
  limit: number,
): { count: number; validBytes: number; newest: { format: number; seq: number } | undefined } {
  let offset = 0;
  let count = 0;
  let newest: { format: number; seq: number } | undefined;
  while (first + count < limit) {
    const next = readFrame(buf, offset, first + count);
    if (next === undefined) break;
    const format = Math.max(1, buf.readUInt16LE(offset + 14));
    if (newest === undefined || format > newest.format) newest = { format, seq: first + count };
    offset = next;
    count++;
  }
  return { count, validBytes: offset, newest };
}

function noopRequest(through: number, sync: boolean): Request {
  return {
    through,
    sync,
    rotate: false,
    resolve: () => undefined,
    reject: () => undefined,
    shared: undefined,
  };
}

/**
 * Callers that do not wait for the promise of `recorded()` (QoS 0) must not see an unhandled rejection when the journal
 * closes: it is made handled here, not when it is made (a derived promise per commit for a rejection that comes once).
 */
function rejectAll(requests: readonly Request[], err: Error): void {
  for (const r of requests) {
    r.shared?.catch(ignore);
    r.reject(err);
  }
}

function closedError(): StoreIoError {
  return new StoreIoError('the journal is closed; the record was not written');
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
