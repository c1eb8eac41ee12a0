import { Encoder } from 'cbor-x';
import { describe, expect, test } from 'vitest';
import {
  decodeRecord,
  encodeRecord,
  peekEventRecord,
  type InputRecord,
} from '../../src/runtime/journal-records.js';
import type { Event } from '../../src/shared/index.js';

const ev = (over: Partial<Event> = {}): Event => ({
  actor: 'dev-1',
  type: 'telemetry',
  at: 1_796_000_000_000,
  data: { temp: 21.5, hum: 40, bat: 3.9, ts: 1_796_000_000_000.25 },
  source: 'device',
  ...over,
});

/** What the scan of a tail takes from a record that decodes to an event: its time, actor and origin. */
function seenByDecoding(bytes: Buffer): unknown {
  const record = decodeRecord(bytes);
  if (record?.kind !== 'event') return undefined;
  return { at: record.event.at, actor: record.event.actor, origin: record.origin };
}

function seenByPeeking(bytes: Buffer): unknown {
  const peek = peekEventRecord(bytes);
  if (peek === undefined) return undefined;
  const origin =
    peek.clientIdStart < 0
      ? undefined
      : {
          clientId: bytes.toString('utf8', peek.clientIdStart, peek.clientIdEnd),
          messageId: peek.messageId,
          hash: peek.hash,
        };
  return { at: peek.at, actor: bytes.toString('utf8', peek.actorStart, peek.actorEnd), origin };
}

const origin = { clientId: 'dev-1', messageId: 42, hash: 0xdeadbeef };

const events: Array<[string, InputRecord]> = [
  ['a QoS 0 reading', { kind: 'event', event: ev() }],
  ['a QoS 1 reading', { kind: 'event', event: ev(), origin }],
  ['a small time, a device time', { kind: 'event', event: ev({ at: 7, deviceAt: 3 }), origin }],
  ['a time before 1970', { kind: 'event', event: ev({ at: -86_400_000 }) }],
  ['a time of 2^32', { kind: 'event', event: ev({ at: 2 ** 32 }) }],
  ['a broker event', { kind: 'event', event: ev({ type: 'connected', data: {}, source: 'broker' }) }],
  ['a cloud event', { kind: 'event', event: ev({ source: 'cloud', data: { order: { id: 'o-1' } } }) }],
  [
    'nested and odd data',
    {
      kind: 'event',
      event: ev({
        actor: 'dé-☃-😀',
        data: {
          list: [1, -1, -70_000, 2.5, true, false, null, 'x'.repeat(300), [[], {}]],
          long: 'ü'.repeat(70),
          big: 2 ** 40,
          neg: -(2 ** 33),
          many: Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`k${i}`, i])),
          gone: undefined,
        },
      }),
    },
  ],
  [
    'a partial origin is no origin',
    { kind: 'event', event: ev(), origin: { clientId: 'dev-1', messageId: 1.5, hash: 7 } },
  ],
  ['a large message id and hash', { kind: 'event', event: ev(), origin: { ...origin, messageId: 65_535 } }],
];

describe('an event record read in place', () => {
  test.each(events)('%s: the same time, actor and origin as decoded', (_name, record) => {
    const bytes = encodeRecord(record);
    expect(seenByPeeking(bytes)).toBeDefined();
    expect(seenByPeeking(bytes)).toEqual(seenByDecoding(bytes));
  });

  test('a record that is not an event, or not as plain-cbor.ts writes it, is left to decoding', () => {
    const others: InputRecord[] = [
      { kind: 'timer', timer: 'offline:dev-1', at: 5, actor: 'dev-1' },
      { kind: 'prune', at: 5 },
      { kind: 'clock', at: 5, offsetMs: 1, synced: true, stepMs: 0 },
      { kind: 'emitted', input: { id: 'e1', event: ev({ source: 'engine' }), depth: 1 } },
      { kind: 'profiles', at: 5, changes: [{ id: 'dev-1', before: null, after: { site: 's1' } }] },
    ];
    for (const record of others) expect(peekEventRecord(encodeRecord(record))).toBeUndefined();
    // A Date in the data: written by cbor-x's own encoder, as a tag.
    const dated = encodeRecord({ kind: 'event', event: ev({ data: { when: new Date(0) } }) });
    expect(peekEventRecord(dated)).toBeUndefined();
    expect(decodeRecord(dated)?.kind).toBe('event');
  });

  test('damaged records: what decoding refuses, reading in place refuses too', () => {
    const whole = encodeRecord({ kind: 'event', event: ev(), origin });
    for (let end = 0; end < whole.length; end++) {
      const cut = whole.subarray(0, end);
      expect(seenByPeeking(cut)).toEqual(seenByDecoding(cut));
    }
    const longer = Buffer.concat([whole, Buffer.from([0])]);
    expect(seenByPeeking(longer)).toEqual(seenByDecoding(longer));
    const encoder = new Encoder({ useRecords: false, mapsAsObjects: true });
    const shapes: unknown[] = [
      [1, 'dev-1', 'telemetry', 5, [], 0, null, null, null, null],
      [1, 'dev-1', 'telemetry', '5', {}, 0, null, null, null, null],
      [1, 'dev-1', 'telemetry', 5, {}, 9, null, null, null, null],
      [1, 7, 'telemetry', 5, {}, 0, null, null, null, null],
      [1, 'dev-1', 'telemetry', 5, {}, 0, null, 'dev-1', 3, 'x'],
    ];
    for (const shape of shapes) {
      const bytes = encoder.encode(shape);
      expect(seenByPeeking(bytes)).toEqual(seenByDecoding(bytes));
    }
  });
});
