import mqttPacket from 'mqtt-packet';

type Read = (this: PacketList, offset?: number) => number;

/** The part of `bl`'s BufferList (6.x) that mqtt-packet's parser reads packets through. */
export interface PacketList {
  _bufs: Buffer[];
  length: number;
  /**
   * Bytes at the start of `_bufs[0]` consumed in place (see `consume`); bl's own methods never see any, as they
   * are cut off (`settle`) before one runs.
   */
  _consumed: number;
  readUInt8: Read;
  readUInt16BE: Read;
  readUInt32BE: Read;
  toString: (this: PacketList, encoding?: BufferEncoding, start?: number, end?: number) => string;
  slice: (this: PacketList, start?: number, end?: number) => Buffer;
  append: (this: PacketList, buf: unknown) => PacketList;
  consume: (this: PacketList, bytes: number) => PacketList;
}

/** What an emptied list keeps as its one buffer: an array emptied gives up its backing store, and the next append would make a new one. */
const EMPTY = Buffer.alloc(0);

/** Where the last `locate` found its range: the buffer's index and the range's start in it. */
let foundIndex = 0;
let foundStart = 0;

/**
 * Whether bytes `[start, end)` of the list lie in one of its buffers (then `foundIndex`/`foundStart` say where).
 * `start` and `end` count from the list's first byte not consumed.
 */
function locate(list: PacketList, start: number, end: number): boolean {
  const bufs = list._bufs;
  let before = -list._consumed;
  for (let i = 0; i < bufs.length; i++) {
    const buf = bufs[i] as Buffer;
    const after = before + buf.length;
    if (start < after) {
      if (end > after) return false;
      foundIndex = i;
      foundStart = start - before;
      return true;
    }
    before = after;
  }
  return false;
}

function inRange(list: PacketList, start: unknown, end: number): start is number {
  return typeof start === 'number' && Number.isInteger(start) && start >= 0 && end <= list.length;
}

/**
 * Cuts off what `consume` left in place, and takes out an emptied list's EMPTY, as bl's own `consume` would have:
 * bl's methods read `_bufs` as it is.
 */
function settle(list: PacketList): void {
  const bufs = list._bufs;
  if (bufs[0] === EMPTY) bufs.pop();
  const consumed = list._consumed;
  if (consumed === 0) return;
  bufs[0] = (bufs[0] as Buffer).subarray(consumed);
  list._consumed = 0;
}

function readInPlace(original: Read, bytes: 1 | 2 | 4, read: (buf: Buffer, at: number) => number): Read {
  return function (this: PacketList, offset = 0): number {
    if (inRange(this, offset, offset + bytes) && locate(this, offset, offset + bytes)) {
      return read(this._bufs[foundIndex] as Buffer, foundStart);
    }
    settle(this);
    return original.call(this, offset);
  };
}

/** bl's BufferList methods, where they are defined on `proto` or its prototypes. */
function blMethods(proto: object): Array<[string, (...args: unknown[]) => unknown]> {
  let holder: object | null = proto;
  while (holder !== null && !Object.hasOwn(holder, '_offset'))
    holder = Object.getPrototypeOf(holder) as object | null;
  if (holder === null) return [];
  const methods = holder as Record<string, unknown>;
  return Object.keys(methods).flatMap((name) => {
    const method = methods[name];
    return typeof method === 'function' ? [[name, method as (...args: unknown[]) => unknown]] : [];
  });
}

/**
 * bl (6.x) reads a number or a string out of its list by slicing first: an array for the offset and a new Buffer
 * view per read, and mqtt-packet reads the fixed header, the remaining length, the topic and the packet id of every
 * PUBLISH that way (about 0.5 KB per publish, docs/benchmarks.md); and it consumes the header, then the length, by
 * making a new view of the rest of the buffer each time. These read in place when the bytes lie in one of the list's
 * buffers, as they almost always do, and otherwise as bl does; a Buffer appended is kept as it is rather than as a
 * new view of its memory; what is consumed from the first buffer is counted, not cut off, until one of bl's own
 * methods is called, and an emptied list keeps an empty buffer. What each returns is what bl's own returns.
 */
export function readPacketsInPlace(proto: PacketList): void {
  const original = {
    readUInt8: proto.readUInt8,
    readUInt16BE: proto.readUInt16BE,
    readUInt32BE: proto.readUInt32BE,
    toString: proto.toString,
    slice: proto.slice,
    append: proto.append,
  };
  // Every other method of bl's sees the list as bl keeps it.
  for (const [name, method] of blMethods(proto)) {
    if (name in original || name === 'consume' || name === 'constructor') continue;
    (proto as unknown as Record<string, unknown>)[name] = function (
      this: PacketList,
      ...args: unknown[]
    ): unknown {
      settle(this);
      return method.apply(this, args);
    };
  }
  proto._consumed = 0;
  proto.readUInt8 = readInPlace(original.readUInt8, 1, (buf, at) => buf[at] as number);
  proto.readUInt16BE = readInPlace(original.readUInt16BE, 2, (buf, at) => buf.readUInt16BE(at));
  proto.readUInt32BE = readInPlace(original.readUInt32BE, 4, (buf, at) => buf.readUInt32BE(at));
  proto.toString = function (this: PacketList, encoding, start, end): string {
    if (typeof end === 'number' && inRange(this, start, end) && start < end && locate(this, start, end)) {
      return (this._bufs[foundIndex] as Buffer).toString(encoding, foundStart, foundStart + end - start);
    }
    settle(this);
    return original.toString.call(this, encoding, start, end);
  };
  proto.slice = function (this: PacketList, start, end): Buffer {
    if (
      typeof end === 'number' &&
      Number.isInteger(end) &&
      inRange(this, start, end) &&
      start < end &&
      locate(this, start, end)
    ) {
      const buf = this._bufs[foundIndex] as Buffer;
      // bl hands out the one buffer itself when asked for the whole list, and a view otherwise.
      if (this._bufs.length === 1 && this._consumed === 0 && start === 0 && end === this.length) return buf;
      return buf.subarray(foundStart, foundStart + end - start);
    }
    settle(this);
    return original.slice.call(this, start, end);
  };
  proto.append = function (this: PacketList, buf: unknown): PacketList {
    if (!Buffer.isBuffer(buf)) {
      settle(this);
      if (typeof buf === 'object' && buf !== null && '_consumed' in buf) settle(buf as PacketList);
      return original.append.call(this, buf);
    }
    const bufs = this._bufs;
    // An emptied list's one buffer is EMPTY, with nothing consumed of it.
    if (bufs[0] === EMPTY) bufs[0] = buf;
    else bufs.push(buf);
    this.length += buf.length;
    return this;
  };
  proto.consume = function (this: PacketList, count: number): PacketList {
    // As bl's: the count made whole as Buffer does it, nothing done unless it is positive.
    let bytes = Math.trunc(count);
    if (Number.isNaN(bytes) || bytes <= 0) return this;
    const bufs = this._bufs;
    let consumed = this._consumed;
    while (bufs.length > 0) {
      const left = (bufs[0] as Buffer).length - consumed;
      if (bytes < left) {
        consumed += bytes;
        this.length -= bytes;
        break;
      }
      bytes -= left;
      this.length -= left;
      consumed = 0;
      if (bufs.length === 1) {
        bufs[0] = EMPTY;
        break;
      }
      bufs.shift();
    }
    this._consumed = consumed;
    return this;
  };
}

const READ_IN_PLACE = Symbol.for('vigil.readPacketsInPlace');

/** The BufferList mqtt-packet's parser uses (aedes's and mqtt.js's too: one copy of mqtt-packet), read in place. */
function installForMqttPacket(): void {
  const list = (mqttPacket.parser() as unknown as { _list: Partial<PacketList> })._list;
  const proto = Object.getPrototypeOf(list) as Partial<PacketList>;
  const methods = [
    'readUInt8',
    'readUInt16BE',
    'readUInt32BE',
    'toString',
    'slice',
    'append',
    'consume',
  ] as const;
  if (!Array.isArray(list._bufs) || !methods.every((m) => typeof proto[m] === 'function')) return;
  if (Object.hasOwn(proto, READ_IN_PLACE)) return;
  readPacketsInPlace(proto as PacketList);
  Object.defineProperty(proto, READ_IN_PLACE, { value: true });
}

installForMqttPacket();
