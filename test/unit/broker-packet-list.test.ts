import { createRequire } from 'node:module';
import fc from 'fast-check';
import mqttPacket from 'mqtt-packet';
import { expect, test } from 'vitest';
import { readPacketsInPlace, type PacketList } from '../../src/broker/packet-list.js';

type ListClass = new () => PacketList;

/** bl's BufferList as it comes: a copy of the module loaded apart from the one mqtt-packet uses. */
function pristineBl(): ListClass {
  const fromPacket = createRequire(createRequire(import.meta.url).resolve('mqtt-packet'));
  const path = fromPacket.resolve('bl');
  const cached = fromPacket.cache[path];
  delete fromPacket.cache[path];
  delete fromPacket.cache[fromPacket.resolve('bl/BufferList.js')];
  try {
    return (fromPacket('bl') as { BufferList: ListClass }).BufferList;
  } finally {
    if (cached !== undefined) fromPacket.cache[path] = cached;
  }
}

const AsItComes = pristineBl();
class InPlace extends pristineBl() {}
readPacketsInPlace(InPlace.prototype);

/** The same bytes in both lists, cut into the same chunks. */
function lists(chunks: readonly Uint8Array[]): [PacketList, PacketList] {
  const a = new AsItComes();
  const b = new InPlace();
  for (const c of chunks) {
    a.append(Buffer.from(c));
    b.append(Buffer.from(c));
  }
  return [a, b];
}

/** What `read` gives, or the error's class and code when it throws. */
function outcome(read: () => unknown): unknown {
  try {
    return { value: read() };
  } catch (err) {
    return { threw: (err as Error).constructor.name, code: (err as { code?: unknown }).code };
  }
}

const chunks = fc.array(fc.uint8Array({ minLength: 0, maxLength: 12 }), { maxLength: 6 });
// Whole numbers, as mqtt-packet passes (with a fraction, bl's slices read memory allocUnsafe left as it was).
const offset = fc.oneof(fc.integer({ min: -3, max: 40 }), fc.constant(undefined));

test('numbers and strings read in place are what bl reads, whatever the chunks and offsets', () => {
  fc.assert(
    fc.property(chunks, offset, offset, fc.constantFrom('utf8', 'latin1', 'hex'), (parts, x, y, encoding) => {
      const [asItComes, inPlace] = lists(parts);
      for (const read of ['readUInt8', 'readUInt16BE', 'readUInt32BE'] as const) {
        expect(outcome(() => inPlace[read](x))).toEqual(outcome(() => asItComes[read](x)));
      }
      expect(outcome(() => inPlace.toString(encoding, x, y))).toEqual(
        outcome(() => asItComes.toString(encoding, x, y)),
      );
      expect(inPlace.length).toBe(asItComes.length);
    }),
    { numRuns: 2_000 },
  );
});

test('appends, consumes and reads in any order give what bl gives, and the bytes appended are not copied', () => {
  const op = fc.oneof(
    fc.record({ append: fc.uint8Array({ minLength: 0, maxLength: 12 }) }),
    fc.record({ consume: fc.oneof(fc.integer({ min: -2, max: 30 }), fc.constant(Number.NaN)) }),
    fc.record({ read: fc.constantFrom('readUInt8', 'readUInt16BE', 'readUInt32BE', 'get'), at: offset }),
    fc.record({ slice: offset, end: offset }),
    fc.record({ text: offset, end: offset }),
    fc.record({ whole: fc.constantFrom('slice', 'toString', 'duplicate', 'getBuffers') }),
  );
  fc.assert(
    fc.property(fc.array(op, { maxLength: 30 }), (ops) => {
      const [asItComes, inPlace] = lists([]);
      const appended: Buffer[] = [];
      for (const o of ops) {
        if ('append' in o) {
          const chunk = Buffer.from(o.append);
          appended.push(chunk);
          asItComes.append(Buffer.from(chunk));
          inPlace.append(chunk);
        } else if ('consume' in o) {
          asItComes.consume(o.consume);
          inPlace.consume(o.consume);
        } else if ('read' in o) {
          const read = (list: PacketList): unknown =>
            (list as unknown as Record<string, (at?: number) => unknown>)[o.read]?.(o.at);
          expect(outcome(() => read(inPlace))).toEqual(outcome(() => read(asItComes)));
        } else if ('slice' in o) {
          const slice = (list: PacketList): unknown => list.slice(o.slice, o.end);
          expect(outcome(() => slice(inPlace))).toEqual(outcome(() => slice(asItComes)));
        } else if ('text' in o) {
          const text = (list: PacketList): unknown => list.toString('hex', o.text, o.end);
          expect(outcome(() => text(inPlace))).toEqual(outcome(() => text(asItComes)));
        } else {
          const whole = (list: PacketList): unknown => {
            const got = (list as unknown as Record<string, () => unknown>)[o.whole]?.();
            if (Array.isArray(got)) return Buffer.concat(got as Buffer[]);
            return typeof got === 'object' && got !== null && 'length' in got && !Buffer.isBuffer(got)
              ? (got as PacketList).slice()
              : got;
          };
          expect(outcome(() => whole(inPlace))).toEqual(outcome(() => whole(asItComes)));
        }
        expect(inPlace.length).toBe(asItComes.length);
      }
      // Every byte still in the list is one of the Buffers appended, not a copy of it.
      for (let i = 0; i < inPlace.length; i++) {
        const view = inPlace.slice(i, i + 1);
        expect(appended.some((chunk) => chunk.buffer === view.buffer)).toBe(true);
      }
    }),
    { numRuns: 2_000 },
  );
});

test('appended Buffers, strings and lists give the same bytes as bl', () => {
  const [asItComes, inPlace] = lists([Buffer.from('ab'), new Uint8Array([1, 2, 3])]);
  for (const list of [asItComes, inPlace]) list.append('cd').append(Buffer.alloc(0)).append(new AsItComes());
  expect(inPlace.toString('hex')).toBe(asItComes.toString('hex'));
  expect(inPlace.length).toBe(asItComes.length);
});

test("mqtt-packet's parser reads through the gateway's in-place reads once the broker is loaded", async () => {
  await import('../../src/broker/broker.js');
  const parser = mqttPacket.parser();
  const proto = Object.getPrototypeOf((parser as unknown as { _list: object })._list) as object;
  expect(Object.hasOwn(proto, Symbol.for('vigil.readPacketsInPlace'))).toBe(true);
  const packets: mqttPacket.Packet[] = [];
  parser.on('packet', (p) => packets.push(p));
  const publish = mqttPacket.generate({
    cmd: 'publish',
    topic: 'devices/d1/events/é',
    payload: Buffer.from('{"t":1}'),
    qos: 1,
    messageId: 513,
    dup: false,
    retain: false,
  });
  // Split at every byte, and whole.
  for (let i = 0; i < publish.length; i++) parser.parse(publish.subarray(i, i + 1));
  parser.parse(publish);
  expect(packets).toHaveLength(2);
  for (const p of packets) {
    expect(p).toMatchObject({ cmd: 'publish', topic: 'devices/d1/events/é', qos: 1, messageId: 513 });
    expect((p as mqttPacket.IPublishPacket).payload.toString()).toBe('{"t":1}');
  }
});
