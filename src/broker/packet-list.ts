import mqttPacket from 'mqtt-packet';

type Read = (this: PacketList, offset?: number) => number;

/** The part of `bl`'s BufferList (6.x) that mqtt-packet's parser reads packets through. */
export interface PacketList {
  _bufs: Buffer[];
  length: number;
  readUInt8: Read;
  readUInt16BE: Read;
  readUInt32BE: Read;
  toString: (this: PacketList, encoding?: BufferEncoding, start?: number, end?: number) => string;
  append: (this: PacketList, buf: unknown) => PacketList;
}

/** Where the last `locate` found its range: the buffer's index and the range's start in it. */
let foundIndex = 0;
let foundStart = 0;

/** Whether bytes `[start, end)` of the list lie in one of its buffers (then `foundIndex`/`foundStart` say where). */
function locate(bufs: readonly Buffer[], start: number, end: number): boolean {
  let before = 0;
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

function readInPlace(original: Read, bytes: 1 | 2 | 4, read: (buf: Buffer, at: number) => number): Read {
  return function (this: PacketList, offset = 0): number {
    if (inRange(this, offset, offset + bytes) && locate(this._bufs, offset, offset + bytes)) {
      return read(this._bufs[foundIndex] as Buffer, foundStart);
    }
    return original.call(this, offset);
  };
}

/**
 * bl (6.x) reads a number or a string out of its list by slicing first: an array for the offset and a new Buffer
 * view per read, and mqtt-packet reads the fixed header, the remaining length, the topic and the packet id of every
 * PUBLISH that way (about 0.5 KB per publish, docs/benchmarks.md). These read in place when the bytes lie in one of
 * the list's buffers, as they almost always do, and otherwise as bl does; a Buffer appended is kept as it is rather
 * than as a new view of its memory. What each returns is what bl's own returns.
 */
export function readPacketsInPlace(proto: PacketList): void {
  const original = {
    readUInt8: proto.readUInt8,
    readUInt16BE: proto.readUInt16BE,
    readUInt32BE: proto.readUInt32BE,
    toString: proto.toString,
    append: proto.append,
  };
  proto.readUInt8 = readInPlace(original.readUInt8, 1, (buf, at) => buf[at] as number);
  proto.readUInt16BE = readInPlace(original.readUInt16BE, 2, (buf, at) => buf.readUInt16BE(at));
  proto.readUInt32BE = readInPlace(original.readUInt32BE, 4, (buf, at) => buf.readUInt32BE(at));
  proto.toString = function (this: PacketList, encoding, start, end): string {
    if (
      typeof end === 'number' &&
      inRange(this, start, end) &&
      start < end &&
      locate(this._bufs, start, end)
    ) {
      return (this._bufs[foundIndex] as Buffer).toString(encoding, foundStart, foundStart + end - start);
    }
    return original.toString.call(this, encoding, start, end);
  };
  proto.append = function (this: PacketList, buf: unknown): PacketList {
    if (!Buffer.isBuffer(buf)) return original.append.call(this, buf);
    this._bufs.push(buf);
    this.length += buf.length;
    return this;
  };
}

const READ_IN_PLACE = Symbol.for('vigil.readPacketsInPlace');

/** The BufferList mqtt-packet's parser uses (aedes's and mqtt.js's too: one copy of mqtt-packet), read in place. */
function installForMqttPacket(): void {
  const list = (mqttPacket.parser() as unknown as { _list: Partial<PacketList> })._list;
  const proto = Object.getPrototypeOf(list) as Partial<PacketList>;
  const methods = ['readUInt8', 'readUInt16BE', 'readUInt32BE', 'toString', 'append'] as const;
  if (!Array.isArray(list._bufs) || !methods.every((m) => typeof proto[m] === 'function')) return;
  if (Object.hasOwn(proto, READ_IN_PLACE)) return;
  readPacketsInPlace(proto as PacketList);
  Object.defineProperty(proto, READ_IN_PLACE, { value: true });
}

installForMqttPacket();
