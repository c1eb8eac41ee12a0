import { Decoder, Encoder } from 'cbor-x';
import type { EmittedInput } from '../engine/index.js';
import { DataFormatError, plainCbor, type Event, type EventSource, type Profile } from '../shared/index.js';

const { startRecord, writeArrayHead, writeValue, writtenBytes, writtenEnd } = plainCbor;

/** The MQTT publish a device event came in, as far as telling a resend from a new publish needs it. */
export interface PublishOrigin {
  clientId: string;
  messageId: number;
  /** CRC-32 of the topic and payload. */
  hash: number;
}

/** One profile written or deleted (`null`), with what it was before, so a replay can judge earlier inputs by it. */
export interface ProfileChange {
  id: string;
  before: Profile | null;
  after: Profile | null;
}

/** The rules that decide from this record on: where they came from and the files to compile them from. */
export interface RulesRecord {
  source: 'dir' | 'bundle';
  /** The bundle's version; 0 for the rules directory. */
  version: number;
  /** SHA-256 of the files, hex: two records of the same rules have the same hash. */
  hash: string;
  files: Array<{ path: string; text: string }>;
}

/**
 * An input of the decision loop, as the journal keeps it: an event with its arrival time, a timer that fired,
 * profiles that changed, the rules swapped, a business event a scenario emitted for another actor, or a housekeeping
 * pass (`prune`: the engine forgets the groups that can no longer fire at `at`, the arbiter what its windows no
 * longer see). Each is recorded before it is acknowledged or applied, and applied in journal order (docs/architecture.md, "Journal records").
 */
export type InputRecord =
  | { kind: 'event'; event: Event; origin?: PublishOrigin }
  | { kind: 'timer'; timer: string; at: number; actor: string | undefined }
  | { kind: 'profiles'; at: number; changes: ProfileChange[] }
  | { kind: 'rules'; at: number; rules: RulesRecord }
  | { kind: 'emitted'; input: EmittedInput }
  | {
      kind: 'prune';
      at: number;
      /** Devices whose last-seen time the pass forgets (not connected, awaited or known); older records: none. */
      forget?: readonly string[];
    }
  | ClockRecord;

/**
 * The wall clock stepped against gateway time, or became synchronised (src/runtime/clock.ts): from here on, wall time
 * is gateway time + `offsetMs`. Format 2: a build that reads only format 1 refuses it.
 */
export interface ClockRecord {
  kind: 'clock';
  at: number;
  offsetMs: number;
  synced: boolean;
  /** How far the wall clock stepped (0 when only `synced` changed). */
  stepMs: number;
}

const SOURCES: readonly EventSource[] = ['device', 'broker', 'cloud', 'engine'];
const EVENT = 1;
const TIMER = 2;
const PROFILES = 3;
const RULES = 4;
const EMITTED = 5;
const PRUNE = 6;
const CLOCK = 7;

/** The format of a record's encoding (see `DATA_FORMATS.journal`): 2 for the clock record, 1 for the others. */
export function recordFormat(record: InputRecord): number {
  return record.kind === 'clock' ? 2 : 1;
}

/** The gateway time a record carries. */
export function recordAt(record: InputRecord): number {
  if (record.kind === 'event') return record.event.at;
  return record.kind === 'emitted' ? record.input.event.at : record.at;
}

// Plain CBOR, no cbor-x records: the journal stays readable by any CBOR decoder. Arrays rather than maps keep
// the field names out of every record.
const encoder = new Encoder({ useRecords: false, mapsAsObjects: true });
const decoder = new Decoder({ useRecords: false, mapsAsObjects: true });

/** The CBOR encoding of `record`: a view of cbor-x's shared buffer that later encodings do not overwrite. */
export function encodeRecord(record: InputRecord): Buffer {
  return encoder.encode(fieldsOf(record));
}

/** An encoding in a buffer that the next one reuses: the bytes from `start` to `end` of `bytes`. */
export interface EncodedRecord {
  readonly bytes: Buffer;
  readonly start: number;
  readonly end: number;
}

// cbor-x's encode modes (encode.js, not in its type declarations): REUSE_BUFFER_MODE (512) returns its buffer with
// `start` and `end` set instead of a new view of it; RESET_BUFFER_MODE (1024) writes the next encoding over this one.
const IN_PLACE = 512 | 1024;
const encodeInPlace = encoder.encode.bind(encoder) as unknown as (
  value: unknown,
  mode: number,
) => Buffer & { start: number; end: number };
const inPlace: { bytes: Buffer; start: number; end: number } = { bytes: Buffer.alloc(0), start: 0, end: 0 };

/**
 * The same bytes as `encodeRecord`, without a buffer or view per record: valid only until the next encoding (the
 * buffer and the object returned are both reused), so they are to be copied at once (the journal copies them into
 * the record's frame).
 */
export function encodeRecordInPlace(record: InputRecord): EncodedRecord {
  startRecord();
  if (record.kind === 'event' ? writeEventRecord(record) : writeValue(fieldsOf(record))) {
    inPlace.bytes = writtenBytes();
    inPlace.start = 0;
    inPlace.end = writtenEnd();
    return inPlace;
  }
  // Data plain-cbor.ts (src/shared) does not write (a Date, bytes, a bigint): cbor-x's own encoder.
  const target = encodeInPlace(fieldsOf(record), IN_PLACE);
  inPlace.bytes = target;
  inPlace.start = target.start;
  inPlace.end = target.end;
  return inPlace;
}

/** `fieldsOf` an event, written without the array. */
function writeEventRecord(record: InputRecord & { kind: 'event' }): boolean {
  const { event: ev, origin } = record;
  writeArrayHead(10);
  writeValue(EVENT);
  writeValue(ev.actor);
  writeValue(ev.type);
  writeValue(ev.at);
  if (!writeValue(ev.data, 1)) return false;
  writeValue(SOURCES.indexOf(ev.source));
  writeValue(ev.deviceAt ?? null);
  writeValue(origin?.clientId ?? null);
  writeValue(origin?.messageId ?? null);
  writeValue(origin?.hash ?? null);
  return true;
}

/** The record as the array it is encoded as. */
function fieldsOf(record: InputRecord): unknown[] {
  if (record.kind === 'timer') return [TIMER, record.timer, record.at, record.actor ?? null];
  if (record.kind === 'prune') {
    return record.forget?.length ? [PRUNE, record.at, record.forget] : [PRUNE, record.at];
  }
  if (record.kind === 'clock') return [CLOCK, record.at, record.offsetMs, record.synced, record.stepMs];
  if (record.kind === 'profiles') {
    return [PROFILES, record.at, record.changes.map((c) => [c.id, c.before, c.after])];
  }
  if (record.kind === 'rules') {
    const { source, version, hash, files } = record.rules;
    return [RULES, record.at, source, version, hash, files.map((f) => [f.path, f.text])];
  }
  if (record.kind === 'emitted') {
    const { id, event: ev, depth } = record.input;
    return [EMITTED, id, ev.actor, ev.type, ev.at, ev.data, depth];
  }
  const { event: ev, origin } = record;
  return [
    EVENT,
    ev.actor,
    ev.type,
    ev.at,
    ev.data,
    SOURCES.indexOf(ev.source),
    ev.deviceAt ?? null,
    origin?.clientId ?? null,
    origin?.messageId ?? null,
    origin?.hash ?? null,
  ];
}

/**
 * The record in `bytes`, or undefined when they are not one (damage the CRC missed). Throws DataFormatError for a
 * record of a type this build does not know: a newer build wrote it, and skipping it would lose an input.
 */
export function decodeRecord(bytes: Uint8Array): InputRecord | undefined {
  let value: unknown;
  try {
    value = decoder.decode(bytes);
  } catch {
    return undefined;
  }
  if (!Array.isArray(value)) return undefined;
  const fields = value as unknown[];
  if (fields[0] === TIMER) {
    const [, timer, at, actor] = fields;
    if (typeof timer !== 'string' || typeof at !== 'number') return undefined;
    return { kind: 'timer', timer, at, actor: typeof actor === 'string' ? actor : undefined };
  }
  if (fields[0] === PROFILES) return decodeProfiles(fields);
  if (fields[0] === RULES) return decodeRules(fields);
  if (fields[0] === EMITTED) return decodeEmitted(fields);
  if (fields[0] === PRUNE) return decodePrune(fields);
  if (fields[0] === CLOCK) return decodeClock(fields);
  if (fields[0] !== EVENT) {
    if (typeof fields[0] === 'number') {
      throw new DataFormatError('journal', undefined, `the journal (a record of type ${fields[0]})`);
    }
    return undefined;
  }
  const [, actor, type, at, data, source, deviceAt, clientId, messageId, hash] = fields;
  const src = typeof source === 'number' ? SOURCES[source] : undefined;
  if (typeof actor !== 'string' || typeof type !== 'string' || typeof at !== 'number' || src === undefined) {
    return undefined;
  }
  if (!isDataObject(data)) return undefined;
  const event: Event = { actor, type, at, data, source: src };
  if (typeof deviceAt === 'number') event.deviceAt = deviceAt;
  const record: InputRecord = { kind: 'event', event };
  if (typeof clientId === 'string' && typeof messageId === 'number' && typeof hash === 'number') {
    record.origin = { clientId, messageId, hash };
  }
  return record;
}

function isDataObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function decodeClock(fields: unknown[]): InputRecord | undefined {
  const [, at, offsetMs, synced, stepMs] = fields;
  if (typeof at !== 'number' || typeof offsetMs !== 'number' || typeof synced !== 'boolean') return undefined;
  return { kind: 'clock', at, offsetMs, synced, stepMs: typeof stepMs === 'number' ? stepMs : 0 };
}

function decodeEmitted(fields: unknown[]): InputRecord | undefined {
  const [, id, actor, type, at, data, depth] = fields;
  if (typeof id !== 'string' || typeof actor !== 'string' || typeof type !== 'string') return undefined;
  if (typeof at !== 'number' || typeof depth !== 'number' || !isDataObject(data)) return undefined;
  return { kind: 'emitted', input: { id, event: { actor, type, at, data, source: 'engine' }, depth } };
}

function isProfileOrNull(value: unknown): value is Profile | null {
  return value === null || (typeof value === 'object' && !Array.isArray(value));
}

function decodeProfiles(fields: unknown[]): InputRecord | undefined {
  const [, at, list] = fields;
  if (typeof at !== 'number' || !Array.isArray(list)) return undefined;
  const changes: ProfileChange[] = [];
  for (const item of list as unknown[]) {
    if (!Array.isArray(item)) return undefined;
    const [id, before, after] = item as unknown[];
    if (typeof id !== 'string' || !isProfileOrNull(before) || !isProfileOrNull(after)) return undefined;
    changes.push({ id, before, after });
  }
  return { kind: 'profiles', at, changes };
}

function decodeRules(fields: unknown[]): InputRecord | undefined {
  const [, at, source, version, hash, list] = fields;
  if (typeof at !== 'number' || (source !== 'dir' && source !== 'bundle')) return undefined;
  if (typeof version !== 'number' || typeof hash !== 'string' || !Array.isArray(list)) return undefined;
  const files: RulesRecord['files'] = [];
  for (const item of list as unknown[]) {
    if (!Array.isArray(item)) return undefined;
    const [path, text] = item as unknown[];
    if (typeof path !== 'string' || typeof text !== 'string') return undefined;
    files.push({ path, text });
  }
  return { kind: 'rules', at, rules: { source, version, hash, files } };
}

/** `[PRUNE, at, forget?]`: a third field is a list of device ids (added without a format change: older builds ignore it). */
function decodePrune(fields: unknown[]): InputRecord | undefined {
  const [, at, forget] = fields;
  if (typeof at !== 'number') return undefined;
  if (forget === undefined) return { kind: 'prune', at };
  if (!Array.isArray(forget) || !forget.every((id) => typeof id === 'string')) return undefined;
  return { kind: 'prune', at, forget: forget };
}

/** What the scan of a journal tail needs of an event record (see `peekEventRecord`). */
export interface EventPeek {
  at: number;
  /** Where the actor's UTF-8 bytes are in the record. */
  actorStart: number;
  actorEnd: number;
  /** Where the publish's client id is (both -1 when the record has no origin), and the rest of the origin. */
  clientIdStart: number;
  clientIdEnd: number;
  messageId: number;
  hash: number;
}

const peeked: EventPeek = {
  at: 0,
  actorStart: 0,
  actorEnd: 0,
  clientIdStart: -1,
  clientIdEnd: -1,
  messageId: 0,
  hash: 0,
};

/**
 * The time, actor and origin of an event record, read in place without decoding the record (its payload is skipped
 * over): valid until the next call. Undefined for anything else, and for an event whose fields this reader does not
 * take for what `decodeRecord` would (a number in more than 32 bits or in a float other than a double, an indefinite
 * length where the fields are): `decodeRecord` is then the judge. What it accepts, `decodeRecord` decodes to an event
 * with the same `at` and origin.
 */
export function peekEventRecord(bytes: Buffer): EventPeek | undefined {
  const peek = peekEvent(bytes);
  // The journal segment `bytes` is part of is not held on to.
  cursor.bytes = NO_BYTES;
  return peek;
}

const NO_BYTES = Buffer.alloc(0);

function peekEvent(bytes: Buffer): EventPeek | undefined {
  const r = cursor;
  r.bytes = bytes;
  r.pos = 0;
  // [EVENT, actor, type, at, data, source, deviceAt, clientId, messageId, hash]
  if (bytes[0] !== 0x8a || bytes[1] !== EVENT) return undefined;
  r.pos = 2;
  if (!stringAt(r)) return undefined;
  peeked.actorStart = r.start;
  peeked.actorEnd = r.pos;
  if (!stringAt(r) || !numberAt(r)) return undefined;
  peeked.at = r.number;
  if (bytes[r.pos] === undefined || (bytes[r.pos] as number) >> 5 !== 5 || !skipItem(r, 0)) return undefined;
  if (!numberAt(r) || SOURCES[r.number] === undefined) return undefined;
  if (!skipItem(r, 0)) return undefined;
  peeked.clientIdStart = -1;
  peeked.clientIdEnd = -1;
  if ((bytes[r.pos] as number) >> 5 !== 3) {
    // No origin unless all three fields are there; null and undefined (or anything else) stand for none.
    return skipItem(r, 0) && skipItem(r, 0) && skipItem(r, 0) && r.pos === bytes.length ? peeked : undefined;
  }
  if (!stringAt(r)) return undefined;
  const clientIdStart = r.start;
  const clientIdEnd = r.pos;
  if (!numberAt(r)) return skipItem(r, 0) && skipItem(r, 0) && r.pos === bytes.length ? peeked : undefined;
  const messageId = r.number;
  if (!numberAt(r)) return skipItem(r, 0) && r.pos === bytes.length ? peeked : undefined;
  if (r.pos !== bytes.length) return undefined;
  peeked.clientIdStart = clientIdStart;
  peeked.clientIdEnd = clientIdEnd;
  peeked.messageId = messageId;
  peeked.hash = r.number;
  return peeked;
}

interface Cursor {
  bytes: Buffer;
  pos: number;
  /** Where the last string read begins (after its head). */
  start: number;
  /** The last number read. */
  number: number;
}

const cursor: Cursor = { bytes: NO_BYTES, pos: 0, start: 0, number: 0 };

/** The argument of the head at `r.pos` (definite lengths up to 32 bits), moving past the head; -1 otherwise. */
function argumentAt(r: Cursor): number {
  const b = r.bytes;
  const info = (b[r.pos] as number) & 0x1f;
  if (info < 0x18) {
    r.pos += 1;
    return info;
  }
  if (r.pos + (1 << (info - 0x18)) >= b.length) return -1;
  const p = r.pos + 1;
  switch (info) {
    case 0x18:
      r.pos += 2;
      return b[p] as number;
    case 0x19:
      r.pos += 3;
      return ((b[p] as number) << 8) | (b[p + 1] as number);
    case 0x1a:
      r.pos += 5;
      return (
        (b[p] as number) * 0x1000000 +
        (((b[p + 1] as number) << 16) | ((b[p + 2] as number) << 8) | (b[p + 3] as number))
      );
    default:
      return -1;
  }
}

/** A definite text string at `r.pos`: true, with `r.start` where its bytes begin and `r.pos` past them. */
function stringAt(r: Cursor): boolean {
  if (r.pos >= r.bytes.length || (r.bytes[r.pos] as number) >> 5 !== 3) return false;
  const length = argumentAt(r);
  if (length < 0) return false;
  r.start = r.pos;
  r.pos += length;
  return r.pos <= r.bytes.length;
}

/** An integer of up to 32 bits, or a double, at `r.pos`: true, with the value in `r.number`. */
function numberAt(r: Cursor): boolean {
  const b = r.bytes;
  if (r.pos >= b.length) return false;
  const head = b[r.pos] as number;
  const major = head >> 5;
  if (major === 0 || major === 1) {
    const n = argumentAt(r);
    if (n < 0) return false;
    r.number = major === 0 ? n : -1 - n;
    return true;
  }
  if (head !== 0xfb || r.pos + 9 > b.length) return false;
  r.number = b.readDoubleBE(r.pos + 1);
  r.pos += 9;
  return true;
}

/**
 * Moves past one data item of the kinds plain-cbor.ts (src/shared) writes (definite strings, arrays and maps with string keys,
 * integers of up to 32 bits, doubles, booleans, null and undefined): what cbor-x decodes into plain values without a
 * complaint. False for anything else (a record cbor-x's own encoder wrote, or damage), which is left to `decodeRecord`.
 */
function skipItem(r: Cursor, depth: number): boolean {
  const b = r.bytes;
  if (r.pos >= b.length || depth > 64) return false;
  const head = b[r.pos] as number;
  const major = head >> 5;
  if (major === 7) {
    if (head >= 0xf4 && head <= 0xf7) {
      r.pos += 1;
      return true;
    }
    return head === 0xfb && (r.pos += 9) <= b.length;
  }
  if (major === 3) return stringAt(r);
  if (major > 5) return false;
  const n = argumentAt(r);
  if (n < 0) return false;
  if (major === 4) {
    for (let i = 0; i < n; i++) if (!skipItem(r, depth + 1)) return false;
  } else if (major === 5) {
    for (let i = 0; i < n; i++) if (!stringAt(r) || !skipItem(r, depth + 1)) return false;
  } else if (major === 2) {
    return false;
  }
  return true;
}
