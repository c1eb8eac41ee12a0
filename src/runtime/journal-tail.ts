import type { Logger } from 'pino';
import { Arbiter } from '../actions/index.js';
import type { Engine, EngineOptions } from '../engine/index.js';
import type { RuleSet } from '../rules/index.js';
import type { Profile } from '../shared/index.js';
import type { CheckpointState } from './checkpoint.js';
import type { DecisionLoop } from './decision-loop.js';
import type { JournalEntry } from './journal.js';
import {
  decodeRecord,
  peekEventRecord,
  recordAt,
  type InputRecord,
  type PublishOrigin,
} from './journal-records.js';
import type { RecordedContext } from './recorded-context.js';
import { restoreEngine, type RuleChanges } from './recovery.js';

/** What a replay needs to know of the journal after its start before it applies the first record. */
export interface TailScan {
  /** The latest gateway time a record carries. */
  latestAt: number | undefined;
  /** The QoS 1 publishes recorded, with their time. */
  origins: Array<{ origin: PublishOrigin; at: number }>;
  /** Each profile the tail changes, as it was before its first change there: what replayed inputs start from. */
  profileBase: Map<string, Profile | null>;
  /** The first rules record (what a replay from empty state starts under). */
  firstRules: Extract<InputRecord, { kind: 'rules' }> | undefined;
  /** The ids of the emitted events recorded, each with how many records carry it. */
  emitted: Map<string, number>;
  /** The time of the first of the records read that carries one, looking at the first few (see `firstRecordTime`). */
  firstAt: number | undefined;
  /** The last clock record: how wall time related to gateway time when the journal ends. */
  clock: Extract<InputRecord, { kind: 'clock' }> | undefined;
  /** Whose inputs the tail holds: the profiles a replay will judge them by, to read ahead. */
  actors: Set<string>;
}

/** How many of the first records `firstRecordTime` looks at for a time. */
const FIRST_RECORDS_LOOKED_AT = 16;

/**
 * Reads the records once, before they are applied (recovery and `vigil replay --journal` alike). An event record, by
 * far the most common, is not decoded: its time, actor and origin are read in place (`peekEventRecord`), so the
 * replay that follows is the only one to decode it. Any other record is decoded.
 */
export async function scanTail(chunks: AsyncIterable<readonly JournalEntry[]>): Promise<TailScan> {
  const scan: TailScan = {
    latestAt: undefined,
    origins: [],
    profileBase: new Map(),
    firstRules: undefined,
    emitted: new Map(),
    firstAt: undefined,
    clock: undefined,
    actors: new Set(),
  };
  let read = 0;
  for await (const chunk of chunks) {
    for (const { payload } of chunk) {
      const index = read++;
      const peek = peekEventRecord(payload);
      if (
        peek !== undefined &&
        (peek.clientIdStart < 0 || isAscii(payload, peek.clientIdStart, peek.clientIdEnd))
      ) {
        const { at } = peek;
        noteTime(scan, at, index);
        scan.actors.add(payload.toString('utf8', peek.actorStart, peek.actorEnd));
        if (peek.clientIdStart >= 0) {
          const clientId = payload.toString('latin1', peek.clientIdStart, peek.clientIdEnd);
          scan.origins.push({ origin: { clientId, messageId: peek.messageId, hash: peek.hash }, at });
        }
        continue;
      }
      const record = decodeRecord(payload);
      if (record !== undefined) noteRecord(scan, record, index);
    }
  }
  return scan;
}

/** What the scan keeps of a record it decoded. */
function noteRecord(scan: TailScan, record: InputRecord, index: number): void {
  const at = recordAt(record);
  noteTime(scan, at, index);
  const actor = actorOf(record);
  if (actor !== undefined) scan.actors.add(actor);
  if (record.kind === 'event' && record.origin) scan.origins.push({ origin: record.origin, at });
  if (record.kind === 'profiles') {
    for (const c of record.changes) if (!scan.profileBase.has(c.id)) scan.profileBase.set(c.id, c.before);
  }
  if (record.kind === 'rules') scan.firstRules ??= record;
  if (record.kind === 'clock') scan.clock = record;
  if (record.kind === 'emitted')
    scan.emitted.set(record.input.id, (scan.emitted.get(record.input.id) ?? 0) + 1);
}

function noteTime(scan: TailScan, at: number, index: number): void {
  if (scan.firstAt === undefined && at > 0 && index < FIRST_RECORDS_LOOKED_AT) scan.firstAt = at;
  scan.latestAt = scan.latestAt === undefined ? at : Math.max(scan.latestAt, at);
}

/** Whether the bytes from `start` to `end` are ASCII: their string is then the same however it is decoded. */
function isAscii(bytes: Buffer, start: number, end: number): boolean {
  for (let i = start; i < end; i++) if ((bytes[i] as number) >= 0x80) return false;
  return true;
}

/**
 * When the journal's first records were written: the time of the first that carries one (the rules record a new
 * gateway writes first is stamped 0, before its clock runs). Looks at a few records at most.
 */
export async function firstRecordTime(entries: AsyncIterable<JournalEntry>): Promise<number | undefined> {
  let looked = 0;
  for await (const { payload } of entries) {
    const record = decodeRecord(payload);
    const at = record === undefined ? 0 : recordAt(record);
    if (at > 0) return at;
    if (++looked >= FIRST_RECORDS_LOOKED_AT) return undefined;
  }
  return undefined;
}

/** Whose profile an input is judged by. */
export function actorOf(input: InputRecord): string | undefined {
  switch (input.kind) {
    case 'event':
      return input.event.actor;
    case 'emitted':
      return input.input.event.actor;
    case 'timer':
      return input.actor;
    case 'profiles':
    case 'rules':
    case 'prune':
    case 'clock':
      return undefined;
  }
}

/**
 * Applies one journal record to the decision loop: an event, an emitted event or a timer firing is decided (with the
 * profile of its actor as the record's moment knew it), a profile record moves the recorded profiles, a rules record
 * swaps the rules, a prune record forgets the groups that can no longer fire and what the arbiter's windows no longer
 * see, a clock record moves the wall time stamped on actions. Live, recovery and `vigil replay --journal` all apply
 * records through here.
 */
export function applyRecord(
  loop: DecisionLoop,
  context: RecordedContext,
  engineOpts: EngineOptions,
  seq: number,
  input: InputRecord,
  profile: Profile | undefined,
  replay: boolean,
): void {
  switch (input.kind) {
    case 'event':
      loop.onEvent(input.event, profile, replay);
      break;
    case 'emitted':
      loop.onEmitted(input.input, profile, replay);
      break;
    case 'timer':
      loop.onTimer(input.timer, input.at, input.actor, profile, replay);
      break;
    case 'profiles':
      context.onProfiles(input.changes, replay);
      break;
    case 'rules':
      context.onRules(seq, input.rules, loop, engineOpts, replay);
      break;
    case 'prune':
      loop.prune(input.at, replay);
      break;
    case 'clock':
      loop.onClock(input, replay);
      break;
  }
}

/**
 * The engine and arbiter continuing from a checkpoint's state under `rules` (see `restoreEngine`); an arbiter
 * state that cannot be restored starts empty. `owned`: nothing else holds `saved`'s engine state, which the
 * engine then takes over as it is.
 */
export function continueFrom(
  rules: RuleSet,
  engineOpts: EngineOptions,
  saved: CheckpointState | undefined,
  logger: Logger,
  owned = false,
): { engine: Engine; arbiter: Arbiter; changes: RuleChanges } {
  const { engine, changes } = restoreEngine(rules, engineOpts, saved?.engine, logger, owned);
  let arbiter = new Arbiter(rules.policy);
  if (saved) {
    try {
      arbiter = Arbiter.restore(rules.policy, saved.arbiter);
    } catch (err) {
      logger.error({ err }, 'arbitration state in the checkpoint cannot be restored; it starts empty');
    }
  }
  return { engine, arbiter, changes };
}
