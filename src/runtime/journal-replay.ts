import type { Logger } from 'pino';
import type { EngineOptions } from '../engine/index.js';
import type { RuleSet } from '../rules/index.js';
import { VigilError, type Event, type Profile } from '../shared/index.js';
import { Checkpoints, type CheckpointState } from './checkpoint.js';
import { JournalReader } from './journal.js';
import type { ProfileLookup } from './durable-inputs.js';
import { decodeRecord, type RulesRecord } from './journal-records.js';
import { fileJournalStorage, type JournalStorage } from './journal-storage.js';
import {
  actorOf,
  applyRecord,
  continueFrom,
  firstRecordTime,
  scanTail,
  type TailScan,
} from './journal-tail.js';
import { RecordedContext } from './recorded-context.js';
import { VirtualRun, type ReplayError, type ReplayOutput } from './replay.js';
import { RulesInForce } from './rules-in-force.js';
import { rulesOfRecord } from './rules-record.js';

export interface JournalReplayOptions {
  /** The journal's directory (`DATA/journal`); it is only read. */
  dir: string;
  /** Stamped on the actions (`gateway`); action ids do not depend on it. */
  gateway: string;
  /** Gateway time: only actions decided from `fromMs` through `toMs` are returned. */
  fromMs?: number | undefined;
  toMs?: number | undefined;
  /**
   * The profile store as it is now (a copy of the gateway's): the profile of every device whose profile the
   * retained journal records no change of. Without it such devices have no profile unless `profiles` gives one.
   */
  store?: ProfileLookup | undefined;
  /** Profiles that replace the store's, for the devices whose profile the retained journal records no change of. */
  profiles?: ReadonlyMap<string, Profile> | undefined;
  logger: Logger;
  storage?: JournalStorage | undefined;
}

/** What the journal retains: from its oldest start (a checkpoint, or empty state at record 0) to its last record. */
export interface RetainedRange {
  fromSeq: number;
  fromAt: number;
  toSeq: number;
  toAt: number;
}

export interface JournalReplay {
  /** The start the replay began from: a checkpoint's journal record, or 0 for empty state. */
  startSeq: number;
  startAt: number;
  /** Records applied after the start. */
  records: number;
  retained: RetainedRange;
  /** Verdicts decided within the range, in the order they were decided. */
  actions: ReplayOutput[];
  /** Expressions that could not be evaluated within the range, in the order they failed. */
  errors: ReplayError[];
  /** Without a store: devices judged without a profile (the journal records no profile of theirs, none was given). */
  unprofiled: string[];
}

/** `--from`/`--to` ask for a time the retained journal does not cover. */
export class ReplayRangeError extends VigilError {
  constructor(message: string, hint: string) {
    super('VIGIL_REPLAY_RANGE', message, { hint });
  }
}

interface Start {
  seq: number;
  at: number;
  state: CheckpointState | undefined;
}

/**
 * Replays the retained journal as recovery would: from the newest start at or before `fromMs` (a checkpoint, or
 * empty state while the journal begins at its first record), each record through `applyRecord` on a decision loop
 * on virtual time, the profiles and rules as the journal records them at each point. Nothing in `dir` is written.
 */
export async function replayJournal(opts: JournalReplayOptions): Promise<JournalReplay | undefined> {
  const opened = await openRetained(opts);
  if (opened === undefined) return undefined;
  const { reader, start, tail, retained } = opened;
  checkRange(retained, opts);

  const actions: ReplayOutput[] = [];
  const errors: ReplayError[] = [];
  const fromMs = opts.fromMs ?? Number.NEGATIVE_INFINITY;
  const toMs = opts.toMs ?? Number.POSITIVE_INFINITY;
  const within = (at: number): boolean => at >= fromMs && at <= toMs;
  const { run, context, profiles } = startRun(start, tail, opts, {
    verdict: (line) => {
      if (within(line.decidedAt)) actions.push(line);
    },
    error: (error) => {
      if (within(error.at)) errors.push(error);
    },
  });
  // Actions are stamped with wall time as the live gateway stamped them: from the checkpoint's offset on.
  if (start.state?.clock) run.loop.wall.set(start.state.clock);
  const engineOpts: EngineOptions = { gateway: opts.gateway };
  let records = 0;
  for await (const { seq, payload } of reader.read(start.seq)) {
    const input = decodeRecord(payload);
    if (input === undefined) {
      opts.logger.error({ seq }, 'journal record cannot be decoded; it is skipped');
      continue;
    }
    const actor = actorOf(input);
    const profile = actor === undefined ? undefined : await profiles.read(actor);
    applyRecord(run.loop, context, engineOpts, seq, input, profile, true);
    records++;
  }
  const unprofiled = [...profiles.unprofiled];
  return { startSeq: start.seq, startAt: start.at, records, retained, actions, errors, unprofiled };
}

/** The retained journal opened for a replay from its oldest start (or the newest at or before `fromMs`). */
interface OpenedJournal {
  reader: JournalReader;
  start: Start;
  tail: TailScan;
  retained: RetainedRange;
}

async function openRetained(
  opts: Pick<JournalReplayOptions, 'dir' | 'storage' | 'logger' | 'fromMs'>,
): Promise<OpenedJournal | undefined> {
  const storage = opts.storage ?? fileJournalStorage();
  const reader = await JournalReader.open(opts.dir, storage, opts.logger);
  if (reader === undefined) return undefined;
  const starts = await startsOf(reader, new Checkpoints(opts.dir, storage, opts.logger), opts.fromMs);
  const oldest = starts[0];
  if (oldest === undefined) {
    throw new ReplayRangeError(
      `the journal in ${opts.dir} holds records ${reader.firstSeq} to ${reader.lastSeq}, and no checkpoint it can be replayed from`,
      'the records kept begin after every readable checkpoint; a replay is possible again after the next checkpoint',
    );
  }
  const start = starts[starts.length - 1] as Start;
  const tail = await scanTail(reader.readChunks(start.seq));
  await profilesBefore(reader, start.seq, tail.profileBase);
  const lastAt = tail.latestAt ?? start.at;
  const retained = { fromSeq: oldest.seq, fromAt: oldest.at, toSeq: reader.lastSeq, toAt: lastAt };
  return { reader, start, tail, retained };
}

/** One input of the retained journal, for a run by other rules: an event with its actor's profile at that moment. */
export interface RetainedEvent {
  event: Event;
  profile: Profile | undefined;
}

/** What `retainedEvents` reads: the journal, its start, and the profile of any actor as of the current record. */
export interface RetainedEvents {
  /** The start the events follow: its engine and arbiter state (undefined for empty state) are what a run continues from. */
  start: { seq: number; at: number; state: CheckpointState | undefined };
  retained: RetainedRange;
  /** The recorded events in journal order; profile records move `profileOf` as they are passed. */
  events(): AsyncIterable<RetainedEvent>;
  /** The profile of `actor` as of the last event handed out (for timers and emitted events of a run). */
  profileOf(actor: string): Profile | undefined;
  /** Devices judged without a profile (no profile record, none given, no store). */
  unprofiled(): string[];
}

/**
 * The recorded events of the retained journal from its oldest start, each with the profile its actor had then,
 * for running them through rules other than those recorded (`vigil backtest --journal`). Timer firings, emitted
 * events, rules swaps and prunes are left out: a run by other rules makes its own.
 */
export async function retainedEvents(
  opts: Pick<JournalReplayOptions, 'dir' | 'storage' | 'logger' | 'store' | 'profiles'>,
): Promise<RetainedEvents | undefined> {
  const opened = await openRetained({ ...opts, fromMs: undefined });
  if (opened === undefined) return undefined;
  const { reader, start, tail, retained } = opened;
  const context = new RecordedContext(undefined, tail.profileBase, opts.logger);
  const profiles = new ReplayProfiles(context, opts.profiles, opts.store);
  // Every actor's store profile is read before the run: a timer or an emitted event needs it at once.
  for await (const { payload } of reader.read(start.seq)) {
    const input = decodeRecord(payload);
    const actor = input === undefined ? undefined : actorOf(input);
    if (actor !== undefined) await profiles.load(actor);
  }
  async function* events(): AsyncIterable<RetainedEvent> {
    for await (const { seq, payload } of reader.read(start.seq)) {
      const input = decodeRecord(payload);
      if (input === undefined) {
        opts.logger.error({ seq }, 'journal record cannot be decoded; it is skipped');
        continue;
      }
      if (input.kind === 'profiles') context.onProfiles(input.changes, true);
      if (input.kind === 'event') yield { event: input.event, profile: profiles.of(input.event.actor) };
    }
  }
  return {
    start,
    retained,
    events,
    profileOf: (actor) => profiles.of(actor),
    unprofiled: () => [...profiles.unprofiled],
  };
}

/**
 * The starts a replay can use, oldest first, up to the one it starts from: the oldest readable one, and the newest
 * at or before `fromMs` (the oldest when `fromMs` is unset). A checkpoint is usable when the journal holds every
 * record after it; the empty state when the journal holds its first record.
 */
async function startsOf(
  reader: JournalReader,
  checkpoints: Checkpoints,
  fromMs: number | undefined,
): Promise<Start[]> {
  const seqs = (await checkpoints.scan()).filter(
    (seq) => seq >= reader.firstSeq - 1 && seq <= reader.lastSeq,
  );
  const candidates: Array<() => Promise<Start | undefined>> = seqs.map((seq) => async () => {
    const state = await checkpoints.read(seq);
    return state === undefined ? undefined : { seq, at: state.at, state };
  });
  if (reader.firstSeq <= 1) candidates.unshift(() => emptyStart(reader));
  let oldest: Start | undefined;
  let oldestIndex = 0;
  for (; oldestIndex < candidates.length && oldest === undefined; oldestIndex++) {
    oldest = await (candidates[oldestIndex] as () => Promise<Start | undefined>)();
  }
  if (oldest === undefined) return [];
  if (fromMs === undefined || fromMs <= oldest.at) return [oldest];
  for (let i = candidates.length - 1; i >= oldestIndex; i--) {
    const start = await (candidates[i] as () => Promise<Start | undefined>)();
    if (start !== undefined && start.at <= fromMs) return [oldest, start];
  }
  return [oldest];
}

/**
 * Adds to `base` the profiles the journal before `seq` recorded and the tail does not change: as the last record of
 * each left it. A profile changed only before the journal kept begins is not known.
 */
async function profilesBefore(
  reader: JournalReader,
  seq: number,
  base: Map<string, Profile | null>,
): Promise<void> {
  if (seq < reader.firstSeq) return;
  const before = new Map<string, Profile | null>();
  for await (const { payload } of reader.read(reader.firstSeq - 1, seq)) {
    const record = decodeRecord(payload);
    if (record?.kind === 'profiles') for (const c of record.changes) before.set(c.id, c.after);
  }
  for (const [id, profile] of before) if (!base.has(id)) base.set(id, profile);
}

/** The state before the journal's first record. */
async function emptyStart(reader: JournalReader): Promise<Start | undefined> {
  const at = await firstRecordTime(reader.read(0));
  return at === undefined ? undefined : { seq: 0, at, state: undefined };
}

function checkRange(retained: RetainedRange, opts: JournalReplayOptions): void {
  const { fromMs, toMs } = opts;
  const outside =
    (fromMs !== undefined && (fromMs < retained.fromAt || fromMs > retained.toAt)) ||
    (toMs !== undefined && toMs < retained.fromAt) ||
    (fromMs !== undefined && toMs !== undefined && toMs < fromMs);
  if (!outside) return;
  const iso = (ms: number | undefined): string => (ms === undefined ? '…' : new Date(ms).toISOString());
  throw new ReplayRangeError(
    `${iso(fromMs)} to ${iso(toMs)} is not within what the journal in ${opts.dir} retains: ` +
      `${iso(retained.fromAt)} (record ${retained.fromSeq}) to ${iso(retained.toAt)} (record ${retained.toSeq})`,
    'choose --from and --to within the retained range; durability.retention sets how much is kept',
  );
}

/** The decision loop continuing from `start`, its recorded context, and the profile each device is judged by. */
function startRun(
  start: Start,
  tail: TailScan,
  opts: JournalReplayOptions,
  on: { verdict: (line: ReplayOutput) => void; error: (error: ReplayError) => void },
): { run: VirtualRun; context: RecordedContext; profiles: ReplayProfiles } {
  const record: RulesRecord | undefined = start.state?.rules ?? tail.firstRules?.rules;
  if (record === undefined) {
    throw new ReplayRangeError(
      `the journal in ${opts.dir} records no rules from record ${start.seq} on, and the checkpoint names none`,
      'a checkpoint written by an older version names no rules: replay from a later --from',
    );
  }
  const rules: RuleSet = rulesOfRecord(record);
  const engineOpts: EngineOptions = { gateway: opts.gateway };
  const { engine, arbiter } = continueFrom(rules, engineOpts, start.state, opts.logger);
  const context = new RecordedContext(record, tail.profileBase, opts.logger);
  const profiles = new ReplayProfiles(context, opts.profiles, opts.store);
  const run = new VirtualRun(
    new RulesInForce(rules, engine, arbiter),
    (actor) => profiles.of(actor),
    {
      verdict: (v) => {
        const line: ReplayOutput = { ...v.candidate.action, to: v.candidate.to };
        if (v.suppressed !== undefined) line.suppressed = v.suppressed;
        on.verdict(line);
      },
      error: (e, now) => on.error({ ...e, at: now }),
    },
    true,
  );
  return { run, context, profiles };
}

/**
 * The profile a replayed input is judged by: as the journal's profile records say it was at that moment; for a
 * device they record no change of, the given one, else the store's (as it is now, which it has been all along).
 */
class ReplayProfiles {
  /** Devices judged without a profile while there is no store. */
  readonly unprofiled = new Set<string>();
  /** Profiles read from the store ahead of a run (`load`). */
  private readonly loaded = new Map<string, Profile | undefined>();

  constructor(
    private readonly context: RecordedContext,
    private readonly given: ReadonlyMap<string, Profile> | undefined,
    private readonly store: ProfileLookup | undefined,
  ) {}

  /** What is known without a read: the store's cache, for what comes from the store (another device's profile). */
  of(actor: string): Profile | undefined {
    const recorded = this.context.replayProfile(actor);
    if (recorded.known) return recorded.profile;
    const given = this.given?.get(actor);
    if (given !== undefined) return given;
    if (this.store === undefined) {
      this.unprofiled.add(actor);
      return undefined;
    }
    if (this.loaded.has(actor)) return this.loaded.get(actor);
    const cached = this.store.peek(actor);
    return cached.hit ? cached.profile : undefined;
  }

  /** The profile of `actor`, read from the store when it comes from there and is not cached. */
  async read(actor: string): Promise<Profile | undefined> {
    const fromStore =
      this.store !== undefined && !this.context.replayProfile(actor).known && !this.given?.has(actor);
    if (fromStore && !this.store.peek(actor).hit) return this.store.get(actor);
    return this.of(actor);
  }

  /** Reads the store's profile of `actor` once and keeps it, so that `of` answers it without a read. */
  async load(actor: string): Promise<void> {
    if (this.store === undefined || this.loaded.has(actor)) return;
    this.loaded.set(actor, await this.store.get(actor));
  }
}
