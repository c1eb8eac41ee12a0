/**
 * The few MQTT 3.1.1 packets the load generator needs, encoded and parsed by hand: a benchmark client that
 * goes through mqtt.js's per-packet objects would measure mqtt.js as much as the broker.
 */

const CONNECT = 0x10;
const PUBLISH = 0x30;
const PUBACK = 0x40;
const SUBSCRIBE = 0x82; // [MQTT-3.8.1-1] reserved flags 0010
export const PACKET_CONNACK = 2;
export const PACKET_PUBLISH = 3;
export const PACKET_PUBACK = 4;
export const PACKET_SUBACK = 9;

function lengthBytes(n: number): number {
  return n < 128 ? 1 : n < 16_384 ? 2 : n < 2_097_152 ? 3 : 4;
}

/** [MQTT-2.2.3] remaining length, 7 bits a byte, least significant first; returns the next offset. */
function writeLength(buf: Buffer, at: number, n: number): number {
  do {
    let byte = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) byte |= 0x80;
    buf[at++] = byte;
  } while (n > 0);
  return at;
}

function packet(first: number, body: Buffer): Buffer {
  const out = Buffer.allocUnsafe(1 + lengthBytes(body.length) + body.length);
  out[0] = first;
  body.copy(out, writeLength(out, 1, body.length));
  return out;
}

function utf8Field(text: string): Buffer {
  const bytes = Buffer.from(text, 'utf8');
  const out = Buffer.allocUnsafe(2 + bytes.length);
  out.writeUInt16BE(bytes.length, 0);
  bytes.copy(out, 2);
  return out;
}

/**
 * CONNECT with a clean session, and a user name and password when given; `keepaliveS` 0 turns keep-alive off
 * [MQTT-3.1.2-23].
 */
export function connectPacket(
  clientId: string,
  keepaliveS: number,
  credentials?: { username: string; password: string },
): Buffer {
  // [MQTT-3.1.2.3] flags: user name 0x80, password 0x40, clean session 0x02.
  const flags = credentials ? 0xc2 : 0x02;
  const header = Buffer.from([0, 4, 0x4d, 0x51, 0x54, 0x54, 4, flags, keepaliveS >> 8, keepaliveS & 0xff]);
  const fields = [header, utf8Field(clientId)];
  if (credentials) fields.push(utf8Field(credentials.username), utf8Field(credentials.password));
  return packet(CONNECT, Buffer.concat(fields));
}

export function subscribePacket(packetId: number, filter: string, qos: 0 | 1): Buffer {
  const id = Buffer.from([packetId >> 8, packetId & 0xff]);
  return packet(SUBSCRIBE, Buffer.concat([id, utf8Field(filter), Buffer.from([qos])]));
}

export function pubackPacket(packetId: number): Buffer {
  return Buffer.from([PUBACK, 2, packetId >> 8, packetId & 0xff]);
}

/** A topic as it goes on the wire (2-byte length, UTF-8), encoded once per device. */
export function topicField(topic: string): Buffer {
  return utf8Field(topic);
}

/**
 * Writes one PUBLISH into `out` at `at` and returns the next offset; `packetId` 0 means QoS 0. The payload
 * is Latin-1 text (the generator's JSON is ASCII), written straight into the buffer without a copy.
 */
export function writePublish(
  out: Buffer,
  at: number,
  topic: Buffer,
  payload: string,
  packetId: number,
): number {
  const remaining = topic.length + (packetId === 0 ? 0 : 2) + payload.length;
  out[at++] = packetId === 0 ? PUBLISH : PUBLISH | 0x02;
  at = writeLength(out, at, remaining);
  at += topic.copy(out, at);
  if (packetId !== 0) {
    out[at++] = packetId >> 8;
    out[at++] = packetId & 0xff;
  }
  return at + out.write(payload, at, 'latin1');
}

/** Bytes a PUBLISH takes, for sizing the buffer `writePublish` writes into. */
export function publishBytes(topic: Buffer, payloadLength: number, packetId: number): number {
  const remaining = topic.length + (packetId === 0 ? 0 : 2) + payloadLength;
  return 1 + lengthBytes(remaining) + remaining;
}

/** One packet as the parser hands it on: its type (upper nibble), flags, and its body (a view, not a copy). */
export type PacketHandler = (type: number, flags: number, body: Buffer) => void;

/** Splits a byte stream into packets; keeps the tail of a packet cut across reads. */
export class PacketReader {
  private pending: Buffer | undefined;

  constructor(private readonly onPacket: PacketHandler) {}

  push(chunk: Buffer): void {
    let buf = chunk;
    if (this.pending) {
      buf = Buffer.concat([this.pending, chunk]);
      this.pending = undefined;
    }
    let at = 0;
    while (at < buf.length) {
      let remaining = 0;
      let multiplier = 1;
      let i = at + 1;
      let complete = false;
      while (i < buf.length) {
        const byte = buf[i++] ?? 0;
        remaining += (byte & 0x7f) * multiplier;
        multiplier *= 128;
        if ((byte & 0x80) === 0) {
          complete = true;
          break;
        }
      }
      if (!complete || i + remaining > buf.length) break;
      const first = buf[at] ?? 0;
      this.onPacket(first >> 4, first & 0x0f, buf.subarray(i, i + remaining));
      at = i + remaining;
    }
    if (at < buf.length) this.pending = buf.subarray(at);
  }
}

/** The topic and payload of a PUBLISH body, and its packet id (0 at QoS 0). */
export function parsePublish(
  flags: number,
  body: Buffer,
): { topic: string; packetId: number; payload: Buffer } {
  const topicLength = body.readUInt16BE(0);
  const topic = body.toString('utf8', 2, 2 + topicLength);
  let at = 2 + topicLength;
  let packetId = 0;
  if ((flags & 0x06) !== 0) {
    packetId = body.readUInt16BE(at);
    at += 2;
  }
  return { topic, packetId, payload: body.subarray(at) };
}

const TS_KEY = Buffer.from('"ts":');

/**
 * The `ts` of a JSON payload without parsing all of it: the relay subscriber reads every message at the
 * broker's full rate, and JSON.parse of each would make the generator the bottleneck. NaN when absent.
 */
export function jsonTimestamp(payload: Buffer): number {
  const at = payload.lastIndexOf(TS_KEY);
  if (at < 0) return NaN;
  let end = at + TS_KEY.length;
  while (end < payload.length) {
    const c = payload[end] ?? 0;
    if (c === 0x2c || c === 0x7d) break; // , }
    end++;
  }
  return Number(payload.toString('latin1', at + TS_KEY.length, end));
}
