import { Decoder, Encoder } from 'cbor-x';
import type { Event, EventSource } from '../shared/index.js';

/** The MQTT publish a device event came in, as far as telling a resend from a new publish needs it. */
export interface PublishOrigin {
  clientId: string;
  messageId: number;
  /** CRC-32 of the topic and payload. */
  hash: number;
}

/** An input of the engine, as the journal keeps it: an event with its arrival time, or a timer that fired. */
export type InputRecord =
  | { kind: 'event'; event: Event; origin?: PublishOrigin }
  | { kind: 'timer'; timer: string; at: number; actor: string | undefined };

const SOURCES: readonly EventSource[] = ['device', 'broker', 'cloud', 'engine'];
const EVENT = 1;
const TIMER = 2;

// Plain CBOR, no cbor-x records: the journal stays readable by any CBOR decoder. Arrays rather than maps keep
// the field names out of every record.
const encoder = new Encoder({ useRecords: false, mapsAsObjects: true });
const decoder = new Decoder({ useRecords: false, mapsAsObjects: true });

export function encodeRecord(record: InputRecord): Buffer {
  if (record.kind === 'timer') return encoder.encode([TIMER, record.timer, record.at, record.actor ?? null]);
  const { event: ev, origin } = record;
  return encoder.encode([
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
  ]);
}

/** The record in `bytes`, or undefined when they are not one (a newer format, damage the CRC missed). */
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
  if (fields[0] !== EVENT) return undefined;
  const [, actor, type, at, data, source, deviceAt, clientId, messageId, hash] = fields;
  const src = typeof source === 'number' ? SOURCES[source] : undefined;
  if (typeof actor !== 'string' || typeof type !== 'string' || typeof at !== 'number' || src === undefined) {
    return undefined;
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) return undefined;
  const event: Event = { actor, type, at, data: data as Record<string, unknown>, source: src };
  if (typeof deviceAt === 'number') event.deviceAt = deviceAt;
  const record: InputRecord = { kind: 'event', event };
  if (typeof clientId === 'string' && typeof messageId === 'number' && typeof hash === 'number') {
    record.origin = { clientId, messageId, hash };
  }
  return record;
}
