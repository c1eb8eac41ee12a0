import { Decoder, Tag } from 'cbor-x';

export type DecodeFailureReason = 'too-large' | 'json' | 'cbor' | 'not-object' | 'empty';

/** A decoded payload, or why it was refused; `detail` is for the log and the dead letter. */
export type DecodedPayload =
  | { ok: true; data: Record<string, unknown>; deviceAt?: number }
  | { ok: false; reason: DecodeFailureReason; detail: string };

// Maps come back as Map so that non-text keys can be told apart: the default decoder turns key 1 into "1".
const cbor = new Decoder({ mapsAsObjects: false });
// fatal: invalid UTF-8 is a malformed payload, not text to repair with U+FFFD.
const utf8 = new TextDecoder('utf-8', { fatal: true });

const BRACE = 0x7b;
/**
 * Deeper payloads are refused: the parsers cope, but what encodes them again (the journal's CBOR, dead
 * letters, actions as JSON) recurses and exhausts the stack at a few thousand levels, so a 10 KB payload
 * would be refused there on every resend.
 */
const MAX_PAYLOAD_DEPTH = 64;
const BOM = [0xef, 0xbb, 0xbf] as const;

/**
 * Decodes a device payload: JSON when the first byte that is not whitespace (or a UTF-8 byte order
 * mark) is `{`, CBOR when the first byte is a CBOR map header (major type 5, 0xa0–0xbf). A CBOR map
 * behind a tag is taken too; anything else that decodes is `not-object`, with what it was.
 */
export function decodePayload(buf: Buffer, maxBytes: number): DecodedPayload {
  if (buf.length === 0) return fail('empty', 'the payload is empty');
  if (buf.length > maxBytes) return fail('too-large', `${buf.length} bytes is over the limit of ${maxBytes}`);
  const first = buf[0] ?? 0;
  if (first >= 0xa0 && first <= 0xbf) return decodeCbor(buf);
  const start = textStart(buf);
  if (start === buf.length) return fail('empty', 'the payload is only whitespace');
  if (buf[start] === BRACE) return decodeJson(buf, start);
  return classifyOther(buf, start);
}

function decodeJson(buf: Buffer, start: number): DecodedPayload {
  let value: unknown;
  try {
    // The usual payload starts with its `{`: decoded as it is, without a view of it.
    value = JSON.parse(utf8.decode(start === 0 ? buf : buf.subarray(start)));
  } catch (err) {
    const detail = err instanceof TypeError ? 'the payload is not valid UTF-8' : messageOf(err);
    return fail('json', detail);
  }
  if (!isRecord(value)) return fail('not-object', `a JSON ${jsonKind(value)}, not an object`);
  // Each level takes an opening and a closing bracket: a shorter payload cannot nest too deep.
  if (buf.length - start > 2 * MAX_PAYLOAD_DEPTH && deeperThan(value, MAX_PAYLOAD_DEPTH))
    return fail('json', `nested deeper than ${MAX_PAYLOAD_DEPTH} levels`);
  return accept(value);
}

function decodeCbor(buf: Buffer): DecodedPayload {
  let value: unknown;
  try {
    value = cbor.decode(buf);
  } catch (err) {
    // Nesting deep enough to exhaust the stack is also malformed input, and lands here as a RangeError.
    return fail('cbor', messageOf(err));
  }
  if (!(value instanceof Map)) return fail('not-object', `a CBOR ${cborKind(value)}, not a map`);
  return fromCborMap(value as Map<unknown, unknown>, buf.length);
}

function fromCborMap(value: Map<unknown, unknown>, inputBytes: number): DecodedPayload {
  let data: unknown;
  try {
    data = toPlain(value, 'data', 1, new PlainBudget(inputBytes));
  } catch (err) {
    if (err instanceof NonTextKey) return fail('not-object', err.message);
    return fail('cbor', messageOf(err));
  }
  return accept(data as Record<string, unknown>);
}

/** Neither `{` nor a CBOR map header: say what it is, so that the dead letter explains the refusal. */
function classifyOther(buf: Buffer, start: number): DecodedPayload {
  const first = buf[start] ?? 0;
  if (first >= 0x20 && first <= 0x7e) {
    // Printable ASCII: the device meant to send text.
    try {
      const value: unknown = JSON.parse(utf8.decode(buf.subarray(start)));
      return fail('not-object', `a JSON ${jsonKind(value)}, not an object`);
    } catch (err) {
      return fail('json', err instanceof TypeError ? 'the payload is not valid UTF-8' : messageOf(err));
    }
  }
  try {
    const value: unknown = cbor.decode(buf);
    // A map behind a tag: self-described CBOR (55799, RFC 8949 §3.4.6), or 259 as cbor-x writes a JS Map.
    if (value instanceof Map) return fromCborMap(value as Map<unknown, unknown>, buf.length);
    return fail('not-object', `a CBOR ${cborKind(value)}, not a map`);
  } catch (err) {
    return fail('cbor', `neither a JSON object nor a CBOR map (${messageOf(err)})`);
  }
}

function accept(data: Record<string, unknown>): DecodedPayload {
  // `ts` is what most device SDKs name their timestamp; `at` is the name our own Event uses. Taken as
  // milliseconds, as sent: a device that sends seconds is told apart by the rules, not guessed at here.
  const deviceAt = timestampOf(data['ts']) ?? timestampOf(data['at']);
  return deviceAt === undefined ? { ok: true, data } : { ok: true, data, deviceAt };
}

function timestampOf(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) ? value : undefined;
  // CBOR tags 0 and 1 (date/time) decode to Date.
  if (value instanceof Date) {
    const ms = value.getTime();
    return Number.isFinite(ms) ? ms : undefined;
  }
  return undefined;
}

/**
 * Whether arrays and objects nest more than `max` levels (the payload itself is level 1); without recursion, and
 * without allocating for a flat payload (what is still to be looked at is kept only once a level has containers).
 */
function deeperThan(root: unknown, max: number): boolean {
  let stack: Array<[unknown, number]> | undefined;
  let value = root;
  let depth = 1;
  for (;;) {
    if (typeof value === 'object' && value !== null) {
      if (depth > max) return true;
      if (Array.isArray(value)) {
        for (const child of value as unknown[]) {
          if (typeof child === 'object' && child !== null) (stack ??= []).push([child, depth + 1]);
        }
      } else {
        for (const key in value) {
          if (!Object.hasOwn(value, key)) continue;
          const child = (value as Record<string, unknown>)[key];
          if (typeof child === 'object' && child !== null) (stack ??= []).push([child, depth + 1]);
        }
      }
    }
    const next = stack?.pop();
    if (next === undefined) return false;
    [value, depth] = next;
  }
}

class NonTextKey extends Error {}
/** A decoded CBOR value that an event may not carry; refused as `cbor`. */
class Unacceptable extends Error {}

/**
 * What the decoded value may hold, counted as it is copied: a container or scalar counts 1, a string or byte
 * string its length. Plain CBOR cannot decode to more than its own size; what cbor-x's extensions reuse (packed
 * strings, record keys) counts each time it is used, so that a small payload cannot become a large event.
 */
class PlainBudget {
  /** The containers copied so far: one met again is shared. */
  readonly seen = new Set<object>();
  private left: number;

  constructor(private readonly inputBytes: number) {
    this.left = inputBytes * MAX_CBOR_EXPANSION + 1_024;
  }

  spend(units: number): void {
    this.left -= units;
    if (this.left < 0) {
      throw new Unacceptable(
        `the ${this.inputBytes} bytes decode to more than ${MAX_CBOR_EXPANSION} times as much data (packed or repeated values)`,
      );
    }
  }
}

/** How much larger than its bytes a decoded CBOR payload may be; see PlainBudget. */
const MAX_CBOR_EXPANSION = 4;

/**
 * Copies a decoded CBOR value into plain data: maps with text keys become plain objects (Object.fromEntries
 * defines `__proto__` as an own key rather than setting the prototype); integers that fit a double exactly become
 * numbers. Refuses nesting beyond MAX_PAYLOAD_DEPTH, a value that appears twice (CBOR value sharing, tags 28/29:
 * copying a shared graph can take exponential time, and a cycle never ends) and values of other classes.
 */
function toPlain(value: unknown, path: string, depth: number, budget: PlainBudget): unknown {
  if (typeof value === 'string') {
    budget.spend(value.length + 1);
    return value;
  }
  budget.spend(1);
  if (typeof value !== 'object' || value === null) {
    if (typeof value !== 'bigint') return value;
    const exact = value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER);
    return exact ? Number(value) : value;
  }
  if (ArrayBuffer.isView(value)) {
    budget.spend(value.byteLength);
    return value;
  }
  if (value instanceof Date) return value;
  if (depth > MAX_PAYLOAD_DEPTH) throw new Unacceptable(`nested deeper than ${MAX_PAYLOAD_DEPTH} levels`);
  if (budget.seen.has(value)) throw new Unacceptable(`${path} refers to a value shared or cyclic`);
  budget.seen.add(value);
  const child = (item: unknown, at: string) => toPlain(item, at, depth + 1, budget);
  if (value instanceof Map) {
    const entries: Array<[string, unknown]> = [];
    for (const [key, item] of value as Map<unknown, unknown>) {
      if (typeof key !== 'string') {
        throw new NonTextKey(`${path} has a ${cborKind(key)} key (${String(key)}); keys must be text`);
      }
      budget.spend(key.length);
      entries.push([key, child(item, `${path}.${key}`)]);
    }
    return Object.fromEntries(entries);
  }
  if (Array.isArray(value)) return value.map((item: unknown, i) => child(item, `${path}[${i}]`));
  if (value instanceof Set)
    return new Set([...(value as Set<unknown>)].map((item, i) => child(item, `${path}[${i}]`)));
  if (value instanceof Tag) return new Tag(child(value.value, `${path}(tag ${value.tag})`), value.tag);
  const proto: unknown = Object.getPrototypeOf(value);
  if (proto === Object.prototype || proto === null) {
    // A cbor-x record (tag 105 and its range) decodes to a plain object even with maps as Maps.
    const entries = Object.entries(value).map(([key, item]): [string, unknown] => {
      budget.spend(key.length);
      return [key, child(item, `${path}.${key}`)];
    });
    return Object.fromEntries(entries);
  }
  throw new Unacceptable(`${path} is a CBOR ${cborKind(value)}, which an event cannot carry`);
}

function textStart(buf: Buffer): number {
  let i = buf[0] === BOM[0] && buf[1] === BOM[1] && buf[2] === BOM[2] ? BOM.length : 0;
  for (; i < buf.length; i++) {
    const b = buf[i];
    if (b !== 0x20 && b !== 0x09 && b !== 0x0a && b !== 0x0d) break;
  }
  return i;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function jsonKind(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  return typeof value;
}

function cborKind(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  if (Array.isArray(value)) return 'array';
  if (value instanceof Uint8Array) return 'byte string';
  if (typeof value === 'object') return value.constructor?.name ?? 'object';
  return typeof value;
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function fail(reason: DecodeFailureReason, detail: string): DecodedPayload {
  return { ok: false, reason, detail };
}
