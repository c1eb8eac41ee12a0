import { performance } from 'node:perf_hooks';
import { crc32 } from 'node:zlib';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { Arbiter } from '../actions/index.js';
import { parseTimerKey, type EmittedInput, type Engine, type EngineOptions } from '../engine/index.js';
import type { RuleSet, Scenario } from '../rules/index.js';
import {
  DataFormatError,
  QueueFullError,
  releaseVersion,
  type Event,
  type Profile,
  yieldToIo,
} from '../shared/index.js';
import { BoundMetrics } from './bound-metrics.js';
import { CheckpointEncoder, Checkpoints, type CheckpointState } from './checkpoint.js';
import type { Clock, WallChange, WallState } from './clock.js';
import { DurabilityMetrics } from './durability-metrics.js';
import { CHECKPOINT_BYTES_PER_RECORD, checkpointBudgetMs, checkpointDue } from './checkpoint-policy.js';
import { DuplicateFilter } from './duplicate-filter.js';
import { Journal, type Persist } from './journal.js';
import {
  decodeRecord,
  encodeRecordInPlace,
  recordFormat,
  recordAt,
  type InputRecord,
  type ProfileChange,
  type PublishOrigin,
  type RulesRecord,
} from './journal-records.js';
import { fileJournalStorage, type JournalStorage } from './journal-storage.js';
import { actorOf, applyRecord, continueFrom, firstRecordTime, scanTail } from './journal-tail.js';
import type { DecisionLoop } from './decision-loop.js';
import { LastSeen, type LastSeenNeeds } from './last-seen.js';
import { RecordedContext } from './recorded-context.js';
import { armFromLastSeen, graceMs, restoreEngine, type RuleChanges } from './recovery.js';
import { oldestRetained, type Retained, type RetentionSettings } from './retention.js';
import { rulesOfRecord } from './rules-record.js';
import type { RulesInForce } from './rules-in-force.js';
import type { SwapReport } from './rules-swap.js';
import { UnappliedInputs } from './unapplied-inputs.js';

/** How the gateway records its inputs and checkpoints its state (`durability` in the config). */
export interface DurabilitySettings {
  /** A checkpoint is taken this often when anything happened since the last one. */
  checkpointIntervalMs: number;
  /** ...and after this many journal records, whichever comes first. */
  checkpointRecords: number;
  /**
   * ...and after this many, the most a restart replays before it decides again, unless the state is so large that
   * checkpointing it that often would exceed the write budget (src/runtime/checkpoint-policy.ts).
   */
  replayRecords: number;
  /** The longest grace period of a timer whose deadline passed while the gateway was down. */
  maxGraceMs: number;
  /** Records that do not wait for an fdatasync (QoS 0, connections, timers) are synced at least this often. */
  syncIntervalMs: number;
  /** How long a QoS 1 commit waits for more records to share its fdatasync (0: none). */
  commitWindowMs: number;
  /**
   * How long the commit of a device's connection or disconnection may wait for more records while nothing else waits
   * for one (0: none). Nobody is acknowledged on these records, so a reconnect storm shares a write among the devices
   * of a few milliseconds rather than paying one a turn of the event loop.
   */
  presenceCommitMs: number;
  /** Checkpoints and journal kept beyond what recovery needs, for `vigil replay --journal`. */
  retention: RetentionSettings;
}

export const DEFAULT_DURABILITY: DurabilitySettings = {
  checkpointIntervalMs: 5 * 60_000,
  checkpointRecords: 500_000,
  replayRecords: 50_000,
  maxGraceMs: 5 * 60_000,
  syncIntervalMs: 1_000,
  commitWindowMs: 0,
  presenceCommitMs: 10,
  retention: { maxAgeMs: 24 * 3_600_000, maxBytes: 128 * 1024 * 1024 },
};

export interface DurableInputsOptions {
  /** Directory of the journal and the checkpoints. */
  dir: string;
  logger: Logger;
  registry: Registry;
  storage?: JournalStorage | undefined;
  settings?: Partial<DurabilitySettings> | undefined;
  /**
   * After each checkpoint is written, with the gateway time of the oldest checkpoint kept (recovery falls back to
   * it when the newest cannot be read): nothing decided before that time can be decided again by a recovery.
   */
  onCheckpoint?: ((replayFromAt: number) => void) | undefined;
  /** Bounds on what is held in memory (`limits` in the config). */
  limits?: Partial<InputLimits> | undefined;
}

/** Bounds on the inputs waiting and the devices whose last-seen time is kept. */
export interface InputLimits {
  /** Inputs being recorded or waiting to be applied; past it device and cloud events are refused. */
  maxHeld: number;
  /** Devices whose last-seen time is kept. */
  maxLastSeen: number;
}

export const DEFAULT_INPUT_LIMITS: InputLimits = { maxHeld: 200_000, maxLastSeen: 200_000 };

/** Profiles as recovery reads them: the cache, and a read that may go to disk. */
export interface ProfileLookup {
  peek(actor: string): { hit: true; profile: Profile | undefined } | { hit: false };
  get(actor: string): Promise<Profile | undefined>;
  /** Reads the profiles of many actors into the cache at once, ahead of their `get`s. */
  prefetch?(actors: Iterable<string>): Promise<unknown>;
}

export interface RecoveryDeps {
  loop: DecisionLoop;
  clock: Clock;
  profiles: ProfileLookup;
  /** Writes still in progress that a checkpoint must wait for (the outbox's): an action decided from a record
   *  the checkpoint covers has to be on disk before that record may be forgotten. */
  pendingWrites: () => Iterable<Promise<unknown>>;
  /** Makes those writes durable (they are not synced on their own); a checkpoint waits for it. */
  syncWrites?: (() => Promise<void>) | undefined;
  /**
   * A count that moves while devices connect (`Broker.connectionSteps`): the replay and the checkpoint's encoding give
   * them most of the loop meanwhile (see `yieldToIo`).
   */
  connectionSteps?: (() => number) | undefined;
  /** Each event as it is applied live (not during replay): the dashboard, the `--record` file. */
  onLiveEvent?: ((ev: Event) => void) | undefined;
  /** Each input once the live loop applied it (not during replay), with its profile: the shadow rules. */
  afterLive?: ((input: InputRecord, profile: Profile | undefined) => void) | undefined;
  /**
   * Hands a business event emitted for another actor to that actor's entrance, which submits it (`submitEmitted`)
   * with the actor's profile, in the actor's order (see `emitted`).
   */
  forward: (input: EmittedInput) => void;
}

/** What start-up recovery did. */
export interface RecoveryReport {
  /** The journal record the checkpoint it started from included; undefined without a checkpoint. */
  checkpointSeq: number | undefined;
  replayed: number;
  ms: number;
  /** Timers whose deadline passed while the gateway was down; they fire after a grace period. */
  overdueTimers: number;
  /** Groups of new or changed `absent` scenarios armed from last-seen times. */
  armed: number;
  changes: RuleChanges;
}

export type DurabilityState = 'recovering' | 'ok' | 'storage-fault' | 'closed';

/** What the health endpoint says about the journal and the checkpoints. */
export interface DurabilityHealth {
  state: DurabilityState;
  /** Inputs waiting to be recorded or applied. */
  held: number;
  /** QoS 0 device events shed since start because the journal could not write. */
  shed: number;
  /** Set while the journal cannot write. */
  fault?: { since: string; error: string; diskFull: boolean };
  /** Set while checkpoints fail (the journal then grows and is kept whole). */
  checkpointFault?: { since: string; error: string };
  /**
   * What `vigil replay --journal` can replay: from the journal record `fromSeq` (0: from empty state) and gateway
   * time `from`, in `checkpoints` checkpoints and the journal after the oldest, `bytes` on disk. Set from the
   * first checkpoint on.
   */
  retained?: { fromSeq: number; from: string; checkpoints: number; bytes: number };
}

/** Where a device publish came from, for telling resends from new publishes. */
export interface PublishSource extends PublishOrigin {
  /** Which connection of the client (a number the broker gives each connection). */
  connection: number;
}

interface Held {
  seq: number;
  input: InputRecord;
  profile: Profile | undefined;
}

/** How long closing waits for the journal to record what is left before it gives up on it. */
const CLOSE_SYNC_MS = 5_000;
/**
 * The replay yields to I/O after this many records or this long, whichever comes first, so the broker keeps
 * accepting and acknowledging during recovery.
 */
const REPLAY_BATCH_RECORDS = 2_000;
const REPLAY_BATCH_MS = 10;
/**
 * A replay batch after a longer turn of I/O may run as long as that turn took, up to this (and as many more records):
 * under sustained traffic the replay keeps about half of the loop rather than 10 ms in every few hundred. While devices
 * connect, `yieldToIo` gives them more (the replay keeps about a tenth).
 */
const REPLAY_BATCH_MAX_MS = 50;
/** Groups (or other entries) a checkpoint encodes between two turns of the event loop (about a millisecond's work). */
const CHECKPOINT_ENTRIES_PER_CHUNK = 2_000;
/** Past this many inputs waiting, QoS 0 publishes wait for their record too (back-pressure on devices). */
const CONGESTED_AT = 10_000;
/** After a checkpoint failed, one due by the record count waits this long (one due by the interval does not). */
const CHECKPOINT_RETRY_MS = 10_000;

/**
 * When the replay yields to I/O: after `REPLAY_BATCH_RECORDS` records or `REPLAY_BATCH_MS`, whichever comes first (the
 * clock read every few records); a batch after a longer turn of I/O may run as long as that turn took, up to
 * `REPLAY_BATCH_MAX_MS`, and as many more records.
 */
class ReplayPace {
  private batchFrom = 0;
  private batchAt = performance.now();
  private batchMs = REPLAY_BATCH_MS;
  private batchRecords = REPLAY_BATCH_RECORDS;

  /** `connectionSteps`: while it moves, devices are connecting, and yields last longer (see `yieldToIo`). */
  constructor(private readonly connectionSteps: (() => number) | undefined) {}

  /** Whether the batch is over once `replayed` records are applied. */
  due(replayed: number): boolean {
    const inBatch = replayed - this.batchFrom;
    if (inBatch >= this.batchRecords) return true;
    return (inBatch & 31) === 0 && performance.now() - this.batchAt >= this.batchMs;
  }

  async yield(replayed: number): Promise<void> {
    const turnMs = await yieldToIo(performance.now() - this.batchAt, this.connectionSteps);
    this.batchFrom = replayed;
    this.batchAt = performance.now();
    this.batchMs = Math.min(REPLAY_BATCH_MAX_MS, Math.max(REPLAY_BATCH_MS, turnMs));
    this.batchRecords = (REPLAY_BATCH_RECORDS * this.batchMs) / REPLAY_BATCH_MS;
  }
}

/**
 * Nothing acknowledged is lost: every input of the engine (device events with their arrival time, connection
 * changes, cloud events, fired timers) is recorded in the journal before it is applied, and a QoS 1 publish is
 * acknowledged once its record is synced. Inputs are applied in journal order, so the journal replays exactly
 * what happened. Checkpoints of the engine and arbiter state (with each device's last-seen time and the
 * recorded QoS 1 packet ids) bound the replay; recovery is the latest checkpoint plus the journal after it.
 */
export class DurableInputs {
  readonly metrics: DurabilityMetrics;
  private readonly duplicates = new DuplicateFilter({ whenRecorded: () => this.journal.recorded() });
  readonly bounds: BoundMetrics;
  private readonly lastSeen: LastSeen;
  private readonly maxHeld: number;
  private held: Held[] = [];
  /** Appended to the journal, not yet recorded: applied (or held) by the commit that records them. */
  private readonly unapplied = new UnappliedInputs<InputRecord, Profile>();
  private loop: DecisionLoop | undefined;
  private deps: RecoveryDeps | undefined;
  private live = false;
  private stopping = false;
  private closed = false;
  private appliedSeq: number;
  private sinceCheckpoint = 0;
  /** The size of the last checkpoint written, encoded (before compression). */
  private checkpointBytes = 0;
  /** The state's encoded size when it was last checkpointed or recovered: the next checkpoint's size, about. */
  private stateBytes: number;
  private checkpointing: Promise<void> | undefined;
  private checkpointDue = false;
  private checkpointTimer: NodeJS.Timeout | undefined;
  private recovering: Promise<RecoveryReport> | undefined;
  private savedEngineTaken = false;
  private closing: Promise<void> | undefined;
  private rules: RuleSet | undefined;
  /** The rules loaded at start, when they differ from those of the recovered state: swapped in after the replay. */
  private startup: { rules: RuleSet; record: RulesRecord } | undefined;
  private engineOpts: EngineOptions | undefined;
  private changes: RuleChanges = { kept: [], changed: [], removed: [], added: [] };
  private readonly settings: DurabilitySettings;
  /** QoS 0 device events shed since start, and during the current storage fault. */
  private shedTotal = 0;
  private shedInFault = 0;
  private checkpointFault: { sinceMs: number; message: string } | undefined;
  private checkpointRetryAt = 0;
  private onCheckpoint: DurableInputsOptions['onCheckpoint'];
  /** When the newest checkpoint kept was taken. */
  private checkpointAt: number | undefined;
  /** The time of the journal's first record, while the journal still begins there (a replay from empty state). */
  private firstRecordAt: number | undefined;
  private retained: Retained | undefined;
  /** The ids of the emitted events the journal tail holds (with how many records carry each), until recovery ends. */
  private recordedEmits: Map<string, number>;
  /** Emitted events recovery decided again that the journal does not hold: handed on once it is done. */
  private unrecorded: EmittedInput[] = [];
  /** Whose inputs the journal tail holds (see `TailScan.actors`), until the replay reads their profiles. */
  private tailActors: ReadonlySet<string> | undefined;

  private constructor(
    private readonly journal: Journal,
    private readonly checkpoints: Checkpoints,
    private readonly saved: CheckpointState | undefined,
    private readonly context: RecordedContext,
    private readonly logger: Logger,
    metrics: DurabilityMetrics,
    settings: DurabilitySettings,
    /** The latest gateway time the checkpoint and the journal know of. */
    readonly lastKnownAt: number | undefined,
    recordedEmits: Map<string, number>,
    /** How wall time related to gateway time when the journal ends (its last clock record, or the checkpoint's). */
    readonly recordedWall: WallState | undefined,
    bounds: BoundMetrics,
    limits: InputLimits,
  ) {
    this.recordedEmits = recordedEmits;
    this.metrics = metrics;
    this.settings = settings;
    this.bounds = bounds;
    this.maxHeld = limits.maxHeld;
    this.lastSeen = new LastSeen(saved?.lastSeen ?? [], limits.maxLastSeen, (reason, n) =>
      bounds.evicted(reason, n),
    );
    bounds.measure('held', () => this.journal.queued + this.held.length);
    this.appliedSeq = saved?.seq ?? 0;
    this.checkpointAt = saved?.at;
    this.stateBytes = saved === undefined ? 0 : checkpoints.latestEncodedBytes;
  }

  /**
   * Opens the journal and the latest checkpoint, and reads the journal after it for the QoS 1 packet ids it
   * holds (a device may resend one as soon as the broker listens). The engine replay comes later, in `recover`.
   */
  static async open(opts: DurableInputsOptions): Promise<DurableInputs> {
    const storage = opts.storage ?? fileJournalStorage();
    const settings = { ...DEFAULT_DURABILITY, ...opts.settings };
    let inputs: DurableInputs | undefined;
    const metrics = new DurabilityMetrics(opts.registry, () => inputs?.health().held ?? 0);
    const bounds = new BoundMetrics(opts.registry, () => inputs?.lastSeen.size ?? 0);
    const checkpoints = new Checkpoints(opts.dir, storage, opts.logger);
    await storage.ensureDir(opts.dir);
    const saved = await checkpoints.latest();
    const journal = await Journal.open({
      dir: opts.dir,
      logger: opts.logger,
      storage,
      afterSeq: saved?.seq,
      syncIntervalMs: settings.syncIntervalMs,
      commitWindowMs: settings.commitWindowMs,
      deferredCommitMs: settings.presenceCommitMs,
      onFault: (fault) => {
        metrics.storageFault.set(fault === undefined ? 0 : 1);
        if (fault === undefined) inputs?.faultEnded();
      },
      onError: () => metrics.writeErrors.inc(),
      onRecorded: (through) => inputs?.recordedThrough(through),
      onCommit: (c) => {
        if (c.synced) metrics.committed.synced++;
        else metrics.committed.unsynced++;
        metrics.committed.bytes += c.bytes;
        metrics.commitSeconds.observe(c.ms / 1_000);
      },
    });
    const from = saved?.seq ?? 0;
    let tail: Awaited<ReturnType<typeof scanTail>>;
    try {
      tail = await scanTail(journal.readChunks(from));
    } catch (err) {
      // A record of a newer format: nothing more is written here.
      await journal.close();
      throw err;
    }
    const latestAt =
      saved === undefined || tail.latestAt === undefined
        ? (tail.latestAt ?? saved?.at)
        : Math.max(saved.at, tail.latestAt);
    const context = new RecordedContext(saved?.rules, tail.profileBase, opts.logger);
    inputs = new DurableInputs(
      journal,
      checkpoints,
      saved,
      context,
      opts.logger,
      metrics,
      settings,
      latestAt,
      tail.emitted,
      tail.clock ?? saved?.clock,
      bounds,
      { ...DEFAULT_INPUT_LIMITS, ...opts.limits },
    );
    inputs.onCheckpoint = opts.onCheckpoint;
    inputs.tailActors = tail.actors;
    // A tail read from the journal's start has its first records' time already.
    inputs.firstRecordAt = from === 0 && journal.firstSeq <= 1 ? tail.firstAt : await firstRecordAt(journal);
    inputs.duplicates.restore(saved?.duplicates ?? []);
    for (const { origin, at } of tail.origins) {
      inputs.duplicates.remember(origin.clientId, -1, origin.messageId, origin.hash, at);
    }
    opts.logger.info(
      {
        dir: opts.dir,
        checkpoint: saved?.seq ?? null,
        journalTail: journal.recoveredThrough - (saved?.seq ?? 0),
      },
      'journal opened',
    );
    return inputs;
  }

  /** The hash a resend is recognised by: CRC-32 of the topic and the payload. */
  static hashPublish(topic: string, payload: Buffer): number {
    return crc32(payload, crc32(topic));
  }

  /**
   * The engine and arbiter as the checkpoint left them. When the checkpoint names the rules it was taken under and
   * they are not `rules` (the rules loaded now), the state continues under its own rules, the journal after it is
   * replayed through them (and the swaps it records), and `rules` are swapped in after the replay; otherwise the
   * state continues under `rules` at once (see `restoreEngine`).
   */
  restore(
    startupRules: RuleSet,
    engineOpts: EngineOptions,
    record: RulesRecord,
  ): { rules: RuleSet; engine: Engine; arbiter: Arbiter } {
    this.engineOpts = engineOpts;
    let rules = startupRules;
    const savedRules = this.saved?.rules;
    if (savedRules !== undefined && savedRules.hash !== record.hash) {
      try {
        rules = rulesOfRecord(savedRules);
        this.startup = { rules: startupRules, record };
      } catch (err) {
        this.logger.error(
          { err },
          'the rules of the checkpoint cannot be compiled; the journal is replayed through the rules loaded now',
        );
      }
    }
    if (this.startup === undefined && this.context.inForce?.hash !== record.hash) {
      this.startup = { rules: startupRules, record };
    }
    if (this.startup !== undefined) {
      // Recorded before anything else after the tail (the broker is not listening yet), so a later replay swaps
      // to these rules exactly where this start does: after the tail, before what comes in meanwhile.
      this.record({ kind: 'rules', at: this.lastKnownAt ?? 0, rules: record }, undefined, 'write').catch(
        () => undefined,
      );
    }
    this.rules = rules;
    // The checkpoint's engine state, decoded for this start alone, is taken over by the first engine made from it.
    const owned = !this.savedEngineTaken;
    this.savedEngineTaken = true;
    const { engine, arbiter, changes } = continueFrom(rules, engineOpts, this.saved, this.logger, owned);
    // Its lists of entries are not needed again (the groups live on in the engine).
    if (owned) for (const s of this.saved?.engine.scenarios ?? []) s.groups = [];
    this.changes = changes;
    return { rules, engine, arbiter };
  }

  get state(): DurabilityState {
    if (this.closed) return 'closed';
    if (this.journal.fault !== undefined) return 'storage-fault';
    return this.live ? 'ok' : 'recovering';
  }

  /** For the health endpoint. */
  health(): DurabilityHealth {
    const fault = this.journal.fault;
    const health: DurabilityHealth = {
      state: this.state,
      held: this.journal.queued + this.held.length,
      shed: this.shedTotal,
    };
    if (fault !== undefined) {
      health.fault = {
        since: new Date(fault.sinceMs).toISOString(),
        error: fault.message,
        diskFull: fault.code === 'ENOSPC' || fault.code === 'EDQUOT',
      };
    }
    if (this.checkpointFault !== undefined) {
      const { sinceMs, message } = this.checkpointFault;
      health.checkpointFault = { since: new Date(sinceMs).toISOString(), error: message };
    }
    if (this.retained !== undefined) {
      const { start, starts, bytes } = this.retained;
      const checkpoints = start.seq === 0 ? starts - 1 : starts;
      health.retained = { fromSeq: start.seq, from: new Date(start.at).toISOString(), checkpoints, bytes };
    }
    return health;
  }

  /**
   * Up to `max` actors likely to reconnect first after a restart: those the journal tail names, then the others the
   * checkpoint saw, the most recently seen first. Complete until recovery reads the tail's profiles (`recover`).
   */
  recentActors(max: number): string[] {
    const recent = new Set<string>();
    for (const actor of this.tailActors ?? []) {
      if (recent.size >= max) return [...recent];
      recent.add(actor);
    }
    const seen = [...this.lastSeen.times.keys()];
    for (let i = seen.length - 1; i >= 0 && recent.size < max; i--) recent.add(seen[i] as string);
    return [...recent];
  }

  /** Whether the journal (or the checkpoint it continues) has an input from or about `actor`. */
  hasSeen(actor: string): boolean {
    return this.lastSeen.has(actor);
  }

  /**
   * Forgets the last-seen time of the devices last seen at or before `seenBefore` that are neither connected, nor
   * waited on by a timer, nor known (see `LastSeen`). Returns how many were forgotten.
   */
  unneededLastSeen(needs: LastSeenNeeds, seenBefore: number): Promise<string[]> {
    return this.lastSeen.unneeded(needs, seenBefore);
  }

  /** The sequence number of the last input applied: how many inputs have been, for a rate. */
  get appliedThrough(): number {
    return this.appliedSeq;
  }

  /** Many inputs are waiting to be recorded or applied: QoS 0 publishes should wait too. */
  get congested(): boolean {
    return this.journal.fault !== undefined || this.journal.queued + this.held.length >= CONGESTED_AT;
  }

  /**
   * A QoS 1 publish that was already recorded and is being sent again: a promise that settles once the
   * original is recorded, to acknowledge it without processing it again. Undefined for a publish to process.
   * `sequentialIds`: the sender numbers its packets in sequence, as a broker does (see `DuplicateFilter`).
   */
  resent(source: PublishSource, dup: boolean, sequentialIds = false): Promise<void> | undefined {
    const resend = this.duplicates.resent(
      source.clientId,
      source.connection,
      source.messageId,
      dup,
      source.hash,
      sequentialIds,
    );
    if (resend) this.metrics.duplicates.inc();
    return resend;
  }

  /**
   * Records an event and applies it once recorded, in journal order. The promise settles once it is
   * recorded as `persist` asks (QoS 1: synced), or rejects if the gateway closed first.
   */
  submitEvent(
    ev: Event,
    profile: Profile | undefined,
    persist: Persist,
    source?: PublishSource,
  ): Promise<void> {
    if (this.sheds(ev, persist, source)) return Promise.resolve();
    if (ev.source !== 'broker' && this.journal.queued + this.held.length >= this.maxHeld) {
      this.bounds.refused.inc({ queue: 'held' });
      // QoS 0 has no acknowledgement to withhold: it is dropped. QoS 1 is not acknowledged, and sent again.
      return persist === 'sync'
        ? Promise.reject(new QueueFullError('held', this.maxHeld))
        : Promise.resolve();
    }
    const origin: PublishOrigin | undefined = source && {
      clientId: source.clientId,
      messageId: source.messageId,
      hash: source.hash,
    };
    const input: InputRecord = origin ? { kind: 'event', event: ev, origin } : { kind: 'event', event: ev };
    const seq = this.append(input, profile, persist);
    if (source && seq >= 0) {
      this.duplicates.remember(source.clientId, source.connection, source.messageId, source.hash, ev.at, seq);
    }
    return this.journal.recorded();
  }

  /**
   * A QoS 0 device event whose publisher waits for its record only while the gateway is congested: recorded and
   * applied as `submitEvent` does, but the promise of its record is made only when `waits()`, asked once the event is
   * appended, says someone will wait for it. At a few events per commit that promise, its functions and its guard were
   * most of what recording an event made. Undefined when nobody waits.
   */
  submitUnawaited(ev: Event, profile: Profile | undefined, waits: () => boolean): Promise<void> | undefined {
    if (this.sheds(ev, 'write', undefined)) return undefined;
    if (ev.source !== 'broker' && this.journal.queued + this.held.length >= this.maxHeld) {
      this.bounds.refused.inc({ queue: 'held' });
      return undefined;
    }
    this.append({ kind: 'event', event: ev }, profile, 'write');
    return waits() ? this.journal.recorded() : undefined;
  }

  /**
   * While the journal cannot write, a QoS 0 device event is shed (counted) rather than held: it has no
   * acknowledgement to withhold, a backlog of them would only grow, and nothing is decided that the journal
   * does not hold. Connections, cloud events and timer firings are held, in order, like QoS 1.
   */
  private sheds(ev: Event, persist: Persist, source: PublishSource | undefined): boolean {
    if (persist !== 'write' || source !== undefined || ev.source !== 'device') return false;
    if (this.journal.fault === undefined) return false;
    if (this.shedInFault === 0) {
      this.logger.warn(
        'QoS 0 device events are shed (counted, not processed) while the journal cannot write',
      );
    }
    this.shedInFault++;
    this.shedTotal++;
    this.metrics.shed.inc({ reason: 'storage-fault' });
    return true;
  }

  private faultEnded(): void {
    if (this.shedInFault === 0) return;
    this.logger.warn(
      { shed: this.shedInFault },
      'QoS 0 device events were shed while the journal could not write',
    );
    this.shedInFault = 0;
  }

  /** Records a timer firing at `at` and applies it once written. */
  submitTimer(
    timer: string,
    at: number,
    actor: string | undefined,
    profile: Profile | undefined,
  ): Promise<void> {
    const recorded = this.record({ kind: 'timer', timer, at, actor }, profile, 'write');
    recorded.catch((err: unknown) => {
      // Closing: the timer is still pending in the state, and fires (after a grace period) on the next start.
      this.logger.debug({ err, timer }, 'timer firing not recorded');
    });
    return recorded;
  }

  /**
   * Records that the wall clock stepped against gateway time (or became synchronised); once written, actions are
   * stamped with the new offset. Synced: the step is a fact about the past that replays must agree on.
   */
  submitClock(change: WallChange): Promise<void> {
    const { at, offsetMs, synced, stepMs } = change;
    const recorded = this.record({ kind: 'clock', at, offsetMs, synced, stepMs }, undefined, 'sync');
    recorded.catch((err: unknown) => this.logger.debug({ err }, 'clock step not recorded'));
    return recorded;
  }

  /**
   * Records a housekeeping pass: once written, the engine forgets the groups that can no longer fire at `at`, the
   * arbiter what its windows no longer see, and the last-seen times of `forget` go. Recovery and replay prune at the
   * same place in the journal, so they hold the state the live gateway held.
   */
  submitPrune(at: number, forget?: readonly string[]): Promise<void> {
    const recorded = this.record(
      { kind: 'prune', at, ...(forget?.length ? { forget } : {}) },
      undefined,
      'write',
    );
    recorded.catch((err: unknown) => this.logger.debug({ err }, 'housekeeping pass not recorded'));
    return recorded;
  }

  /**
   * Records a business event a scenario emitted for another actor (see `emitted`), with that actor's profile, and
   * applies it once written. One that is not recorded (the gateway is closing) is decided again from the input that
   * emitted it on the next start.
   */
  submitEmitted(input: EmittedInput, profile: Profile | undefined): Promise<void> {
    const recorded = this.record({ kind: 'emitted', input }, profile, 'write');
    recorded.catch((err: unknown) => {
      this.logger.debug({ err, id: input.id, actor: input.event.actor }, 'emitted event not recorded');
    });
    return recorded;
  }

  /**
   * A business event the decision loop emitted for another actor: an input of its own, handed to `deps.forward`.
   * While recovery replays the journal, one the journal already holds (by its id) is not handed on again: its own
   * record is applied where it is. One decided before the crash and never recorded (the crash came between the two)
   * is handed on once the replay is done.
   */
  emitted(input: EmittedInput, replay: boolean): void {
    if (!replay) {
      this.deps?.forward(input);
      return;
    }
    const recorded = this.recordedEmits.get(input.id) ?? 0;
    if (recorded === 0) this.unrecorded.push(input);
    else if (recorded === 1) this.recordedEmits.delete(input.id);
    else this.recordedEmits.set(input.id, recorded - 1);
  }

  /**
   * Records profile changes before they are written to the store (the caller writes them once this settles), so a
   * replay judges each input by the profile of its moment.
   */
  submitProfiles(changes: ProfileChange[], at: number): Promise<void> {
    if (changes.length === 0) return Promise.resolve();
    if (!this.live) this.context.changedDuringReplay(changes);
    return this.record({ kind: 'profiles', at, changes }, undefined, 'sync');
  }

  /**
   * Records a rules swap and carries it out when the record is applied, between two inputs in journal order;
   * settles with what became of each scenario.
   */
  submitRules(rules: RuleSet, record: RulesRecord, at: number): Promise<SwapReport> {
    let swapped: Promise<SwapReport> | undefined;
    const recorded = this.record({ kind: 'rules', at, rules: record }, undefined, 'sync', (seq) => {
      swapped = this.context.expectSwap(seq, rules);
    });
    return recorded.then(() => swapped ?? Promise.reject(new Error('the journal is closed')));
  }

  /**
   * Appends the input to the journal; it is applied once its commit is done (`recordedThrough`). Returns the promise
   * of that commit, shared by every input it carries, or a rejected one when the journal is closing.
   */
  private record(
    input: InputRecord,
    profile: Profile | undefined,
    persist: Persist,
    onSeq?: (seq: number) => void,
  ): Promise<void> {
    this.append(input, profile, persist, onSeq);
    return this.journal.recorded();
  }

  /**
   * Appends the input to the journal, to be applied once its commit is done; returns its sequence number, or -1 when
   * the journal is closing (nothing is appended).
   */
  private append(
    input: InputRecord,
    profile: Profile | undefined,
    persist: Persist,
    onSeq?: (seq: number) => void,
  ): number {
    this.metrics.recorded[persist]++;
    const encoded = encodeRecordInPlace(input);
    const format = recordFormat(input);
    const seq =
      persist === 'write' && input.kind === 'event' && input.event.source === 'broker'
        ? this.journal.appendDeferred(encoded.bytes, format, encoded.start, encoded.end)
        : this.journal.append(encoded.bytes, persist, format, encoded.start, encoded.end);
    if (seq < 0) return seq;
    this.unapplied.push(seq, input, profile);
    onSeq?.(seq);
    return seq;
  }

  /** A commit recorded everything through `seq`: applied in journal order, or held while recovering. */
  private recordedThrough(seq: number): void {
    this.duplicates.recordedThrough(seq);
    this.unapplied.takeThrough(seq, this.applyRecorded);
  }

  /** Made once, not per commit. */
  private readonly applyRecorded = (seq: number, input: InputRecord, profile: Profile | undefined): void => {
    if (this.live) this.apply(seq, input, profile, false);
    else this.held.push({ seq, input, profile });
  };

  /** Schedules a checkpoint when the journal since the last one asks for it (`checkpointDue`). */
  private checkpointIfDue(): void {
    if (
      this.checkpointDue ||
      this.checkpointing !== undefined ||
      !checkpointDue(this.sinceCheckpoint, this.checkpointBytes, this.settings) ||
      performance.now() < this.checkpointRetryAt
    ) {
      return;
    }
    this.checkpointDue = true;
    setImmediate(() => {
      this.checkpointDue = false;
      void this.checkpoint();
    });
  }

  private apply(seq: number, input: InputRecord, profile: Profile | undefined, replay: boolean): void {
    if (this.firstRecordAt === undefined && seq <= 16 && this.journal.firstSeq <= 1 && recordAt(input) > 0) {
      this.firstRecordAt = recordAt(input);
    }
    try {
      if (input.kind === 'event') {
        const ev = input.event;
        if (ev.source === 'device' || ev.source === 'broker') this.lastSeen.see(ev);
        if (!replay) this.deps?.onLiveEvent?.(ev);
      }
      if (input.kind === 'prune' && input.forget) this.lastSeen.drop(input.forget, input.at);
      const loop = this.loop as DecisionLoop;
      applyRecord(loop, this.context, this.engineOpts as EngineOptions, seq, input, profile, replay);
      if (!replay) this.deps?.afterLive?.(input, profile);
    } catch (err) {
      // One input that breaks a later stage must not stop the ones after it.
      this.logger.error({ err, seq, kind: input.kind }, 'applying an input failed');
    }
    this.appliedSeq = seq;
    this.sinceCheckpoint++;
    if (!replay && this.sinceCheckpoint >= this.settings.replayRecords) this.checkpointIfDue();
    else if (!replay && this.sinceCheckpoint >= this.settings.checkpointRecords) this.checkpointIfDue();
  }

  /**
   * Brings the state up to date (replays the journal after the checkpoint through `deps.loop`, arms new
   * `absent` scenarios from last-seen times, re-arms timers, those overdue after a grace period), then applies
   * what was recorded meanwhile and goes live. Runs while the broker already accepts and acknowledges.
   */
  recover(deps: RecoveryDeps): Promise<RecoveryReport> {
    this.recovering ??= this.runRecovery(deps);
    return this.recovering;
  }

  private async runRecovery(deps: RecoveryDeps): Promise<RecoveryReport> {
    const started = performance.now();
    this.loop = deps.loop;
    this.deps = deps;
    const engineOpts = this.engineOpts;
    if (this.rules === undefined || engineOpts === undefined)
      throw new Error('restore() must come before recover()');
    if (this.saved?.clock) deps.loop.wall.set(this.saved.clock);
    const replayStarted = performance.now();
    const replayed = await this.replay(deps.profiles);
    const replayMs = performance.now() - replayStarted;
    if (this.stopping) return this.stoppedInRecovery(started, replayed, replayMs);
    // The connections the replay saw open ended with the gateway: connections recorded since are applied next.
    this.lastSeen.forgetConnections();
    this.metrics.recoveryRecords.inc(replayed);
    const rules = this.swapToStartupRules(deps.loop, engineOpts);

    const armedFor = [...this.changes.added, ...this.changes.changed];
    const needsProfiles = rules.scenarios.some(
      (sc) => armedFor.includes(sc.id) && sc.when.kind === 'silence' && sc.by !== undefined,
    );
    if (needsProfiles && !this.stopping) {
      for (const actor of this.lastSeen.times.keys()) await profileOf(deps.profiles, actor, this.logger);
    }
    const { engine, armed } = armFromLastSeen(
      deps.loop.rules.engine,
      rules,
      engineOpts,
      armedFor,
      this.lastSeen.times,
      (actor) => {
        const cached = deps.profiles.peek(actor);
        return cached.hit ? cached.profile : undefined;
      },
    );
    if (engine !== deps.loop.rules.engine) deps.loop.rules.useEngine(engine);
    if (armed > 0) {
      this.logger.info(
        { scenarios: armedFor, groups: armed },
        'new absent scenarios armed from last-seen times',
      );
    }

    const overdueTimers = await this.armTimers(deps, rules);
    const ms = performance.now() - started;
    this.metrics.recoverySeconds.set(ms / 1_000);
    this.metrics.timersOverdue.set(overdueTimers);
    const report: RecoveryReport = {
      checkpointSeq: this.saved?.seq,
      replayed,
      ms,
      overdueTimers,
      armed,
      changes: this.changes,
    };
    if (this.stopping) return this.stoppedInRecovery(started, replayed, replayMs);
    this.logger.info(
      {
        checkpoint: report.checkpointSeq ?? null,
        replayed,
        replayMs: Math.round(replayMs),
        ms: Math.round(ms),
        overdueTimers,
        pendingTimers: deps.loop.scheduler.pending,
        recordedMeanwhile: this.held.length,
      },
      'state recovered',
    );

    this.live = true;
    this.forwardUnrecorded(deps);
    const held = this.held;
    this.held = [];
    for (const h of held) this.apply(h.seq, h.input, h.profile, false);
    this.checkpointTimer = setInterval(() => {
      if (this.sinceCheckpoint > 0) void this.checkpoint();
    }, this.settings.checkpointIntervalMs);
    this.checkpointTimer.unref();
    // The replay, the armed scenarios and the restart's grace periods are folded into a checkpoint now, so the
    // next start does not replay the same journal again.
    if (replayed > 0 || armed > 0 || this.saved === undefined) void this.checkpoint();
    return report;
  }

  /**
   * The gateway was stopped before its state was up to date: nothing is checkpointed (close() takes none), so the
   * next start replays the same journal from the same checkpoint.
   */
  private stoppedInRecovery(started: number, replayed: number, replayMs: number): RecoveryReport {
    const checkpointSeq = this.saved?.seq;
    this.logger.info(
      { checkpoint: checkpointSeq ?? null, replayed, replayMs: Math.round(replayMs) },
      'recovery stopped by the shutdown before it ended; the next start replays the journal again',
    );
    const ms = performance.now() - started;
    return { checkpointSeq, replayed, ms, overdueTimers: 0, armed: 0, changes: this.changes };
  }

  /**
   * Replays the journal after the checkpoint, read a chunk at a time, each record decoded once as it is applied.
   * Yields to I/O between batches (see `ReplayPace`); inputs recorded meanwhile are held and applied after the replay,
   * in journal order. Returns how many records were applied.
   */
  private async replay(profiles: ProfileLookup): Promise<number> {
    await this.prefetchProfiles(profiles);
    const pace = new ReplayPace(this.deps?.connectionSteps);
    // Each actor's profile as the store has it, read once: the store changes only through profile records, and those
    // the overlay of `context` answers for first (a change recorded while the tail is replayed included).
    const stored = new Map<string, Profile | undefined>();
    let replayed = 0;
    try {
      for await (const chunk of this.journal.readChunks(this.saved?.seq ?? 0)) {
        for (const { seq, payload } of chunk) {
          if (this.stopping) return replayed;
          const input = decodeRecord(payload);
          if (input === undefined) {
            this.logger.error({ seq }, 'journal record cannot be decoded; it is skipped');
            continue;
          }
          const actor = actorOf(input);
          let profile: Profile | undefined;
          if (actor !== undefined) {
            const recorded = this.context.recordedProfile(actor);
            if (recorded !== undefined) profile = recorded ?? undefined;
            else if (stored.has(actor)) profile = stored.get(actor);
            else profile = await this.storedProfile(profiles, actor, stored);
          }
          this.apply(seq, input, profile, true);
          if (pace.due(++replayed)) await pace.yield(replayed);
        }
      }
    } catch (err) {
      if (err instanceof DataFormatError) throw err;
      this.logger.error(
        { err, afterSeq: this.appliedSeq },
        'the journal could not be read to the end; the state goes on from the last record read',
      );
    }
    return replayed;
  }

  /** The profile of `actor` in the store, from its cache or read; kept in `stored` once known. */
  private async storedProfile(
    profiles: ProfileLookup,
    actor: string,
    stored: Map<string, Profile | undefined>,
  ): Promise<Profile | undefined> {
    const cached = profiles.peek(actor);
    if (cached.hit) {
      stored.set(actor, cached.profile);
      return cached.profile;
    }
    try {
      const profile = await profiles.get(actor);
      stored.set(actor, profile);
      return profile;
    } catch (err) {
      // Not kept: the next input of the actor reads it again.
      this.logger.warn(
        { err, actor },
        'profile read failed during recovery; the input goes on without the profile',
      );
      return undefined;
    }
  }

  /**
   * The profiles of the devices the tail names, read in a few batches rather than one read per device as the replay
   * reaches it. A failure only costs the batching: the replay reads each profile it misses.
   */
  private async prefetchProfiles(profiles: ProfileLookup): Promise<void> {
    const actors = this.tailActors;
    this.tailActors = undefined;
    if (profiles.prefetch === undefined || actors === undefined) return;
    try {
      await profiles.prefetch(actors);
    } catch (err) {
      this.logger.warn({ err }, 'profiles could not be read ahead of the replay; each is read as it comes');
    }
  }

  /** Hands on the emitted events recovery decided again and found no record of, in the order decided. */
  private forwardUnrecorded(deps: RecoveryDeps): void {
    const unrecorded = this.unrecorded;
    this.unrecorded = [];
    this.recordedEmits.clear();
    if (unrecorded.length === 0) return;
    this.logger.info(
      { emitted: unrecorded.length },
      'emitted events decided before the crash and not recorded',
    );
    for (const input of unrecorded) deps.forward(input);
  }

  /**
   * After the replay: the rules loaded at start replace those the state was replayed through, when they differ,
   * (their record follows the journal tail, see `restore`). Returns the rules in force.
   */
  private swapToStartupRules(loop: DecisionLoop, engineOpts: EngineOptions): RuleSet {
    const startup = this.startup;
    if (startup === undefined) return loop.rules.rules;
    if (this.context.inForce?.hash !== startup.record.hash && loop.rules.rules !== startup.rules) {
      const { engine, changes } = restoreEngine(
        startup.rules,
        engineOpts,
        loop.rules.engine.snapshot(),
        this.logger,
        true,
      );
      const arbiter = Arbiter.restore(startup.rules.policy, loop.rules.arbiter.snapshot());
      loop.rules.use(engine, arbiter, startup.rules);
      this.changes = changes;
    }
    this.context.inForce = startup.record;
    this.rules = startup.rules;
    return startup.rules;
  }

  /**
   * Timers the state waits on; one whose deadline passed while the gateway was down waits a grace period. Yields to
   * I/O between batches, like the replay.
   */
  private async armTimers(deps: RecoveryDeps, rules: RuleSet): Promise<number> {
    const byId = new Map<string, Scenario>(rules.scenarios.map((sc) => [sc.id, sc]));
    const now = deps.clock.now();
    let overdue = 0;
    let armed = 0;
    let batchAt = performance.now();
    for (const t of deps.loop.rules.engine.pendingTimers()) {
      if (++armed % REPLAY_BATCH_RECORDS === 0 || performance.now() - batchAt >= REPLAY_BATCH_MS) {
        await yieldToIo(performance.now() - batchAt, deps.connectionSteps);
        if (this.stopping) break;
        batchAt = performance.now();
      }
      let dueAt = t.dueAt;
      if (dueAt <= now) {
        dueAt = now + graceMs(byId.get(parseTimerKey(t.timer)?.id ?? ''), this.settings.maxGraceMs);
        overdue++;
      }
      deps.loop.armTimer(t.timer, t.actor, dueAt);
    }
    if (overdue > 0) {
      this.logger.info(
        { overdue, maxGraceMs: this.settings.maxGraceMs },
        'timers whose deadline passed while the gateway was down fire after a grace period, unless the awaited event comes first',
      );
    }
    return overdue;
  }

  /**
   * Takes a checkpoint of the state as of the last applied record: waits for the writes its decisions started
   * (the outbox), syncs the journal, writes the checkpoint, and deletes the journal segments it covers.
   */
  checkpoint(): Promise<void> {
    if (!this.live || this.closed) return Promise.resolve();
    this.checkpointing ??= this.takeCheckpoint().finally(() => {
      this.checkpointing = undefined;
      // The records applied while it was taken count towards the next, which they may have made due.
      if (!this.stopping) this.checkpointIfDue();
    });
    return this.checkpointing;
  }

  /**
   * A checkpoint when anything was applied since the last one, or the one under way (before a collection that it
   * would undo if it came after, see `QuietRelease`); nothing otherwise.
   */
  checkpointIfOwed(): Promise<void> {
    if (this.sinceCheckpoint > 0) return this.checkpoint();
    return this.checkpointing ?? Promise.resolve();
  }

  /**
   * The checkpoint's file, encoded a chunk at a time with the event loop free in between (the broker goes on
   * accepting and acknowledging), handed out a batch at a time for `Checkpoints.writeStreamed` to write: what is
   * written is let go of, so the file is never in memory whole. Inputs go on being applied meanwhile: the engine's
   * groups are encoded from the view taken with the checkpoint (`Engine.checkpointView`), which later inputs do not
   * reach, and the other lists are copies. `ready` runs last, before the file is put in place.
   */
  private async *encodeState(
    encoder: CheckpointEncoder,
    ready: () => Promise<void>,
  ): AsyncGenerator<readonly Buffer[], void> {
    // One chunk between two turns of I/O, or as many as fit in the time the last turn and the write took (see
    // `checkpointBudgetMs`): under sustained load the checkpoint keeps about half of the loop and still ends.
    const connectionSteps = this.deps?.connectionSteps;
    const stepThrough = async function* (
      steps: Generator<void, void>,
    ): AsyncGenerator<readonly Buffer[], void> {
      let budgetMs = 0;
      for (;;) {
        const from = performance.now();
        do {
          if (steps.next().done === true) return;
        } while (performance.now() - from < budgetMs);
        const yieldedAt = performance.now();
        yield encoder.take();
        const writtenMs = performance.now() - yieldedAt;
        const turnMs = await yieldToIo(yieldedAt - from, connectionSteps);
        budgetMs = checkpointBudgetMs(writtenMs, turnMs);
      }
    };
    yield* stepThrough(encoder.engineGroups());
    yield* stepThrough(encoder.copies());
    yield encoder.take();
    await ready();
  }

  private async takeCheckpoint(): Promise<void> {
    const { rules } = this.loop as DecisionLoop;
    const deps = this.deps as RecoveryDeps;
    const started = performance.now();
    const now = deps.clock.now();
    const state = { seq: this.appliedSeq, at: now };
    const { encoder, release } = this.checkpointOf(rules, state);
    // What inputs wait for: the state taken, in one step; the rest runs between them.
    const heldMs = performance.now() - started;
    // The records it includes: those applied after it are applied while it is encoded, and count towards the next.
    const counted = this.sinceCheckpoint;
    // Once it is encoded, before it is in place: the writes its decisions started, and the journal up to it. Under
    // load these are the parts that grow, so the debug line says how long each took.
    const took = { encodedMs: NaN, readyMs: NaN, waitedWrites: 0 };
    const ready = async (): Promise<void> => {
      const from = performance.now();
      took.encodedMs = from - started;
      const writes = [...deps.pendingWrites()];
      took.waitedWrites = writes.length;
      await Promise.all(writes);
      await deps.syncWrites?.();
      await this.journal.rotate();
      took.readyMs = performance.now() - from;
    };
    // About the size it will encode to, for the compressor's memory: the state's when last checkpointed or recovered,
    // plus the policy's bytes for each record since. A state that grew faster is compressed with a shorter reach, once.
    const bytesHint = this.stateBytes + counted * CHECKPOINT_BYTES_PER_RECORD;
    let replayFromAt: number | undefined;
    try {
      const bytes = await this.checkpoints
        .writeStreamed(state, this.encodeState(encoder, ready), bytesHint)
        .finally(release);
      replayFromAt = this.checkpointAt;
      this.checkpointAt = state.at;
      const dropped = await this.retain(state.seq);
      this.sinceCheckpoint = Math.max(0, this.sinceCheckpoint - counted);
      // The next waits by the state's encoded size, before compression: what encoding it costs the loop, and more
      // than it writes (docs/durability.md, "Checkpoints").
      this.checkpointBytes = encoder.size;
      this.stateBytes = encoder.size;
      const ms = performance.now() - started;
      this.metrics.checkpoints.inc({ result: 'written' });
      this.metrics.checkpointBytes.set(bytes);
      this.metrics.checkpointSeconds.set(ms / 1_000);
      this.checkpointRetryAt = 0;
      if (this.checkpointFault !== undefined) {
        this.logger.info({ seq: state.seq }, 'checkpoint written again');
        this.checkpointFault = undefined;
      }
      this.logger.debug(
        {
          seq: state.seq,
          bytes,
          encodedBytes: encoder.size,
          ms: Math.round(ms),
          heldMs: Math.round(heldMs * 10) / 10,
          encodedMs: Math.round(took.encodedMs),
          readyMs: Math.round(took.readyMs),
          waitedWrites: took.waitedWrites,
          segmentsDropped: dropped,
          records: counted,
        },
        'checkpoint written',
      );
    } catch (err) {
      this.metrics.checkpoints.inc({ result: 'failed' });
      this.checkpointRetryAt = performance.now() + CHECKPOINT_RETRY_MS;
      this.checkpointFault ??= {
        sinceMs: Date.now(),
        message: err instanceof Error ? err.message : String(err),
      };
      this.logger.warn(
        { err, seq: state.seq },
        'checkpoint not written; the journal is kept and it is tried again',
      );
    }
    if (replayFromAt !== undefined) this.onCheckpoint?.(replayFromAt);
  }

  /**
   * The state as of the last applied record, to encode: the engine's groups as a view that inputs applied meanwhile do
   * not reach (`Engine.checkpointView`; `release` once it is written or given up), the other long lists copied
   * compactly and made into entries as they are encoded.
   */
  private checkpointOf(
    rules: RulesInForce,
    state: { seq: number; at: number },
  ): { encoder: CheckpointEncoder; release: () => void } {
    this.duplicates.prune(state.at);
    const arbiter = rules.arbiter.checkpointState();
    const lastSeen = this.lastSeen.frozenEntries();
    const duplicates = this.duplicates.snapshot();
    const inForce = this.context.inForce;
    const engine = rules.engine.checkpointView();
    try {
      const source = {
        version: 1 as const,
        ...state,
        engine: engine.state,
        arbiter,
        lastSeen,
        duplicates,
        ...(inForce ? { rules: inForce } : {}),
        clock: (this.loop as DecisionLoop).wall.state(),
        writtenBy: releaseVersion(),
      };
      return {
        encoder: new CheckpointEncoder(source, CHECKPOINT_ENTRIES_PER_CHUNK),
        release: engine.release,
      };
    } catch (err) {
      engine.release();
      throw err;
    }
  }

  /**
   * Deletes the checkpoints and journal segments that retention no longer keeps (`settings.retention`): the journal
   * kept always begins at a state it can be replayed from. Returns how many segments were deleted.
   */
  private async retain(newestSeq: number): Promise<number> {
    const starts = await this.checkpoints.list();
    if (this.journal.firstSeq <= 1 && this.firstRecordAt !== undefined) {
      starts.unshift({ seq: 0, at: this.firstRecordAt, bytes: 0 });
    }
    const retained = oldestRetained(starts, this.journal.spans(), this.settings.retention);
    const fromSeq = Math.min(retained?.start.seq ?? newestSeq, this.checkpoints.retainAfterSeq ?? newestSeq);
    await this.checkpoints.dropBefore(fromSeq);
    const dropped = await this.journal.dropThrough(fromSeq);
    if (fromSeq > 0) this.firstRecordAt = undefined;
    this.retained = retained;
    return dropped;
  }

  /**
   * Records and applies what is still waiting, takes a last checkpoint (so the next start replays nothing), and
   * closes the journal. With the storage failing it gives up after a few seconds: what it held was never
   * acknowledged.
   */
  close(): Promise<void> {
    this.closing ??= this.shutDown();
    return this.closing;
  }

  private async shutDown(): Promise<void> {
    this.stopping = true;
    if (this.checkpointTimer) clearInterval(this.checkpointTimer);
    await this.recovering?.catch(() => undefined);
    if (this.live && this.journal.fault === undefined) {
      try {
        await withTimeout(this.journal.sync(), CLOSE_SYNC_MS);
        await this.checkpointing;
        if (this.journal.fault === undefined) await this.checkpoint();
      } catch (err) {
        this.logger.warn({ err }, 'no checkpoint on shutdown; the next start replays the journal');
      }
    }
    this.closed = true;
    await this.journal.close();
  }
}

async function profileOf(
  profiles: ProfileLookup,
  actor: string,
  logger: Logger,
): Promise<Profile | undefined> {
  const cached = profiles.peek(actor);
  if (cached.hit) return cached.profile;
  try {
    return await profiles.get(actor);
  } catch (err) {
    logger.warn({ err, actor }, 'profile read failed during recovery; the input goes on without the profile');
    return undefined;
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`not done within ${ms} ms`)), ms);
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(err instanceof Error ? err : new Error(String(err)));
      },
    );
  });
}

/** The time of the journal's first records, when the journal still holds them. */
function firstRecordAt(journal: Journal): Promise<number | undefined> {
  return journal.firstSeq > 1 ? Promise.resolve(undefined) : firstRecordTime(journal.read(0));
}
