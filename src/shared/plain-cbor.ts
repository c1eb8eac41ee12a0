/**
 * A CBOR writer for plain values that writes, byte for byte, what cbor-x's encoder configured as the journal, the
 * store and checkpoints configure it (no records, maps as objects) writes for them, into one buffer reused from value
 * to value. cbor-x's own encoder is one function shared by everything in the gateway that encodes CBOR, and so many
 * shapes pass through it that V8 gives up specialising it: there it boxes every intermediate number, about 0.8 KB
 * per event record and more per action (docs/benchmarks.md).
 *
 * It writes strings, numbers, booleans, null, undefined, arrays and objects whose constructor is `Object` or `Array`;
 * for anything else (a Date, bytes, a bigint, a class instance) it says so, and the value is left to cbor-x.
 */

/** Deeper than this is left to cbor-x (payloads are refused past 64 levels anyway). */
const MAX_DEPTH = 100;

const INITIAL_BYTES = 8_192;
/** Past this, the buffer is given up after a value that needed it (`encodePlain`). */
const MAX_KEPT_BYTES = 256 * 1024;

let out = Buffer.allocUnsafeSlow(INITIAL_BYTES);
let pos = 0;

/** The buffer written to; the value ends at `writtenEnd()`. Both hold until the next one is started. */
export function writtenBytes(): Buffer {
  return out;
}

export function writtenEnd(): number {
  return pos;
}

/** Starts a value (a journal record): what was written before is overwritten. */
export function startRecord(): void {
  pos = 0;
}

/** The head of an array of `length` items. */
export function writeArrayHead(length: number): void {
  writeHead(0x80, length);
}

/** Writes `value`; false when it holds something this writer leaves to cbor-x (what was written is then void). */
export function writeValue(value: unknown, depth = 0): boolean {
  switch (typeof value) {
    case 'string':
      writeString(value);
      return true;
    case 'number':
      writeNumber(value);
      return true;
    case 'boolean':
      room(1);
      out[pos++] = value ? 0xf5 : 0xf4;
      return true;
    case 'undefined':
      room(1);
      out[pos++] = 0xf7;
      return true;
    case 'object':
      if (value === null) {
        room(1);
        out[pos++] = 0xf6;
        return true;
      }
      if (depth > MAX_DEPTH) return false;
      if (value.constructor === Array) return writeArray(value as unknown[], depth);
      if (value.constructor === Object) return writeMap(value as Record<string, unknown>, depth);
      return false;
    case 'bigint':
    case 'function':
    case 'symbol':
      return false;
  }
}

function writeArray(list: unknown[], depth: number): boolean {
  writeHead(0x80, list.length);
  for (let i = 0; i < list.length; i++) if (!writeValue(list[i], depth + 1)) return false;
  return true;
}

/** cbor-x writes every object as a map with a 16-bit count, filled in once the keys are counted. */
function writeMap(object: Record<string, unknown>, depth: number): boolean {
  room(3);
  out[pos++] = 0xb9;
  const countAt = pos;
  pos += 2;
  let size = 0;
  // Keys as cbor-x takes them: for…in, own ones (unless the object's own `hasOwnProperty` is not a function).
  for (const key in object) {
    if (typeof object.hasOwnProperty === 'function' && !Object.hasOwn(object, key)) continue;
    writeString(key);
    if (!writeValue(object[key], depth + 1)) return false;
    size++;
  }
  if (size >= 0x10000) return false;
  out[countAt] = size >> 8;
  out[countAt + 1] = size & 0xff;
  return true;
}

/** Major type and argument, in the fewest bytes (up to 32 bits). */
function writeHead(major: number, n: number): void {
  room(5);
  if (n < 0x18) {
    out[pos++] = major | n;
  } else if (n < 0x100) {
    out[pos++] = major | 0x18;
    out[pos++] = n;
  } else if (n < 0x10000) {
    out[pos++] = major | 0x19;
    out[pos++] = n >> 8;
    out[pos++] = n & 0xff;
  } else {
    out[pos++] = major | 0x1a;
    out.writeUInt32BE(n, pos);
    pos += 4;
  }
}

/** As cbor-x: integers in 32 bits (and negative ones down to -2^32) as integers, every other number a double. */
function writeNumber(value: number): void {
  if (value >>> 0 === value) {
    writeHead(0x00, value);
  } else if (value >> 0 === value || (value < 0 && value >= -0x100000000 && Math.floor(value) === value)) {
    writeHead(0x20, -1 - value);
  } else {
    room(9);
    out[pos++] = 0xfb;
    out.writeDoubleBE(value, pos);
    pos += 8;
  }
}

/**
 * As cbor-x: a string under 64 characters is encoded by hand (a lone surrogate as its three bytes), a longer one by
 * Buffer's UTF-8 writer (a lone surrogate as U+FFFD); the length in the fewest bytes.
 */
function writeString(value: string): void {
  const chars = value.length;
  if (chars >= 0x40) {
    const length = Buffer.byteLength(value, 'utf8');
    writeHead(0x60, length);
    room(length);
    pos += out.write(value, pos, length, 'utf8');
    return;
  }
  room(2 + chars * 3);
  // Written after a one-byte head; moved on by one if the length needs two.
  let p = pos + 1;
  for (let i = 0; i < chars; i++) {
    let c1 = value.charCodeAt(i);
    let c2: number;
    if (c1 < 0x80) {
      out[p++] = c1;
    } else if (c1 < 0x800) {
      out[p++] = (c1 >> 6) | 0xc0;
      out[p++] = (c1 & 0x3f) | 0x80;
    } else if ((c1 & 0xfc00) === 0xd800 && ((c2 = value.charCodeAt(i + 1)) & 0xfc00) === 0xdc00) {
      c1 = 0x10000 + ((c1 & 0x03ff) << 10) + (c2 & 0x03ff);
      i++;
      out[p++] = (c1 >> 18) | 0xf0;
      out[p++] = ((c1 >> 12) & 0x3f) | 0x80;
      out[p++] = ((c1 >> 6) & 0x3f) | 0x80;
      out[p++] = (c1 & 0x3f) | 0x80;
    } else {
      out[p++] = (c1 >> 12) | 0xe0;
      out[p++] = ((c1 >> 6) & 0x3f) | 0x80;
      out[p++] = (c1 & 0x3f) | 0x80;
    }
  }
  const length = p - pos - 1;
  if (length < 0x18) {
    out[pos] = 0x60 | length;
    pos = p;
    return;
  }
  out.copyWithin(pos + 2, pos + 1, p);
  out[pos] = 0x78;
  out[pos + 1] = length;
  pos = p + 1;
}

/** Makes room for `bytes` more after `pos`, keeping what is written. */
function room(bytes: number): void {
  if (pos + bytes <= out.length) return;
  const bigger = Buffer.allocUnsafeSlow(Math.max(out.length * 2, pos + bytes));
  out.copy(bigger, 0, 0, pos);
  out = bigger;
}

/** Drops what was written from `at` on (a value `writeValue` left to cbor-x). */
export function rewind(at: number): void {
  pos = at;
}

/** Writes `bytes` as they are (a value cbor-x encoded). */
export function writeRaw(bytes: Uint8Array): void {
  room(bytes.length);
  out.set(bytes, pos);
  pos += bytes.length;
}

/** Leaves `bytes` bytes to be written later (in `writtenBytes()`, where `writtenEnd()` was); returns where they are. */
export function reserve(bytes: number): number {
  room(bytes);
  const at = pos;
  pos += bytes;
  return at;
}

/** What was written from `from` on, in a Buffer of its own. */
export function takeWritten(from = 0): Buffer {
  const bytes = Buffer.allocUnsafe(pos - from);
  out.copy(bytes, 0, from, pos);
  // A large value (a checkpoint's chunk) does not leave the writer holding a buffer of its size.
  if (out.length > MAX_KEPT_BYTES) out = Buffer.allocUnsafeSlow(INITIAL_BYTES);
  return bytes;
}

/**
 * `value` as cbor-x writes it, in a Buffer of its own; undefined when it holds something this writer leaves to
 * cbor-x.
 */
export function encodePlain(value: unknown): Buffer | undefined {
  startRecord();
  if (!writeValue(value)) return undefined;
  return takeWritten();
}
