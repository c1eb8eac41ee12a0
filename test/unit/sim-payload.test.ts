import { decode } from 'cbor-x';
import { describe, expect, test } from 'vitest';
import { payloadEncoder } from '../../firmware-sim/index.js';
import { encodeTopic, publishPacket } from '../../firmware-sim/packet.js';

const reading = { temp: 23.4, hum: 45, bat: 3.87 };
const sentAt = 1_732_612_345_678.0625;

describe('payloads', () => {
  test('JSON: the reading plus its send time, to the microsecond', () => {
    const bytes = payloadEncoder('json')(reading, sentAt);
    expect(bytes[0]).toBe('{'.charCodeAt(0));
    expect(JSON.parse(bytes.toString('utf8'))).toEqual({ ...reading, ts: 1_732_612_345_678.063 });
  });

  test('CBOR: a map with the same fields, told apart by its first byte', () => {
    const bytes = payloadEncoder('cbor')(reading, sentAt);
    expect(bytes[0]).toBe(0xa4); // major type 5 (map), 4 pairs
    expect(decode(bytes)).toEqual({ ...reading, ts: 1_732_612_345_678.063 });
  });

  test('a heartbeat carries only its send time', () => {
    expect(JSON.parse(payloadEncoder('json')({}, 1_000.5).toString())).toEqual({ ts: 1_000.5 });
    expect(decode(payloadEncoder('cbor')({}, 1_000.5))).toEqual({ ts: 1_000.5 });
  });
});

describe('PUBLISH packets', () => {
  test('a short packet: fixed header, one length byte, topic, payload', () => {
    const packet = publishPacket(encodeTopic('a/b'), Buffer.from('x'));
    expect([...packet]).toEqual([0x30, 6, 0, 3, 0x61, 0x2f, 0x62, 0x78]);
  });

  test('at QoS 1 the header says so and the packet id follows the topic', () => {
    const packet = publishPacket(encodeTopic('a/b'), Buffer.from('x'), 0x1234);
    expect([...packet]).toEqual([0x32, 8, 0, 3, 0x61, 0x2f, 0x62, 0x12, 0x34, 0x78]);
  });

  test('a remaining length above 127 takes two bytes, least significant first', () => {
    const packet = publishPacket(encodeTopic('t'), Buffer.alloc(200, 0x41));
    expect(packet[1]).toBe((203 % 128) | 0x80);
    expect(packet[2]).toBe(1);
    expect(packet.length).toBe(1 + 2 + 203);
    expect(packet.subarray(6).equals(Buffer.alloc(200, 0x41))).toBe(true);
  });

  test('topics are measured in UTF-8 bytes', () => {
    expect([...encodeTopic('é')]).toEqual([0, 2, 0xc3, 0xa9]);
  });
});
