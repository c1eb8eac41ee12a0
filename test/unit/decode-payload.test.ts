import { encode } from 'cbor-x';
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { decodePayload } from '../../src/ingest/index.js';

const LIMIT = 64 * 1024;
const json = (text: string) => decodePayload(Buffer.from(text), LIMIT);
const cbor = (value: unknown) => decodePayload(encode(value), LIMIT);

describe('JSON payloads', () => {
  test('an object decodes with its integers and floats as numbers', () => {
    expect(json('{"temp":61,"bat":3.9,"code":3.0,"ok":true,"tags":["a"],"nested":{"x":-1}}')).toEqual({
      ok: true,
      data: { temp: 61, bat: 3.9, code: 3, ok: true, tags: ['a'], nested: { x: -1 } },
    });
  });

  test('leading whitespace and a UTF-8 byte order mark are skipped', () => {
    expect(json(' \t\r\n{"a":1}')).toEqual({ ok: true, data: { a: 1 } });
    expect(decodePayload(Buffer.from('\uFEFF {"a":1}', 'utf8'), LIMIT)).toEqual({ ok: true, data: { a: 1 } });
  });

  test('malformed JSON after a brace is a json reject with the parser message', () => {
    const r = json('{"temp": 61,');
    expect(r).toMatchObject({ ok: false, reason: 'json' });
    expect(!r.ok && r.detail.length).toBeGreaterThan(0);
  });

  test('invalid UTF-8 is refused rather than repaired', () => {
    const bytes = Buffer.concat([Buffer.from('{"name":"'), Buffer.from([0xff, 0xfe]), Buffer.from('"}')]);
    expect(decodePayload(bytes, LIMIT)).toEqual({
      ok: false,
      reason: 'json',
      detail: 'the payload is not valid UTF-8',
    });
  });

  test.each([
    ['[1,2,3]', 'array'],
    ['42', 'number'],
    ['"text"', 'string'],
    ['null', 'null'],
    ['  true', 'boolean'],
  ])('%s is valid JSON but not an object', (text, kind) => {
    expect(json(text)).toEqual({ ok: false, reason: 'not-object', detail: `a JSON ${kind}, not an object` });
  });

  test('text that is not JSON at all is a json reject', () => {
    expect(json('temp=61')).toMatchObject({ ok: false, reason: 'json' });
  });

  test('a JSON key named __proto__ stays an own field', () => {
    const r = json('{"__proto__":{"polluted":true},"a":1}');
    expect(r.ok && Object.getPrototypeOf(r.data)).toBe(Object.prototype);
    expect(r.ok && Object.keys(r.data)).toEqual(['__proto__', 'a']);
  });
});

describe('CBOR payloads', () => {
  test('a map decodes like the same JSON object', () => {
    expect(cbor({ temp: 61, bat: 3.9, code: 3.5, ok: false, tags: ['a', 'b'], nested: { x: -1 } })).toEqual({
      ok: true,
      data: { temp: 61, bat: 3.9, code: 3.5, ok: false, tags: ['a', 'b'], nested: { x: -1 } },
    });
  });

  test('64-bit integers become numbers when exact, and stay bigint beyond 2^53', () => {
    const big = 2n ** 60n;
    const r = cbor({ safe: BigInt(Number.MAX_SAFE_INTEGER), negative: -5n, big, nested: [{ n: 7n }] });
    expect(r).toEqual({
      ok: true,
      data: { safe: Number.MAX_SAFE_INTEGER, negative: -5, big, nested: [{ n: 7 }] },
    });
  });

  test('an indefinite-length map decodes', () => {
    expect(decodePayload(Buffer.from([0xbf, 0x61, 0x61, 0x01, 0xff]), LIMIT)).toEqual({
      ok: true,
      data: { a: 1 },
    });
  });

  test('a map with a non-text key is not an object, at the top or nested', () => {
    // {1: 2, "a": 3}
    const top = decodePayload(Buffer.from([0xa2, 0x01, 0x02, 0x61, 0x61, 0x03]), LIMIT);
    expect(top).toEqual({
      ok: false,
      reason: 'not-object',
      detail: 'data has a number key (1); keys must be text',
    });
    // {"readings": {1: 2}}
    const nested = decodePayload(
      Buffer.from([0xa1, 0x68, ...Buffer.from('readings'), 0xa1, 0x01, 0x02]),
      LIMIT,
    );
    expect(nested).toMatchObject({ ok: false, reason: 'not-object' });
    expect(!nested.ok && nested.detail).toContain('data.readings');
  });

  test('a map behind a self-described CBOR tag decodes', () => {
    const tagged = Buffer.concat([Buffer.from([0xd9, 0xd9, 0xf7]), encode({ temp: 61 })]);
    expect(decodePayload(tagged, LIMIT)).toEqual({ ok: true, data: { temp: 61 } });
  });

  test('an array, a number or a string in CBOR is not a map', () => {
    expect(cbor([{ a: 1 }])).toMatchObject({
      ok: false,
      reason: 'not-object',
      detail: 'a CBOR array, not a map',
    });
    expect(decodePayload(Buffer.from([0x19, 0x01, 0x00]), LIMIT)).toMatchObject({
      ok: false,
      reason: 'not-object',
    });
  });

  test('a truncated map, or bytes after the map, is a cbor reject', () => {
    const whole = encode({ temp: 61, site: 'north' });
    expect(decodePayload(whole.subarray(0, whole.length - 3), LIMIT)).toMatchObject({
      ok: false,
      reason: 'cbor',
    });
    expect(decodePayload(Buffer.concat([whole, Buffer.from([0x01])]), LIMIT)).toMatchObject({
      ok: false,
      reason: 'cbor',
    });
  });

  test('binary garbage that is neither JSON nor CBOR is a cbor reject', () => {
    expect(decodePayload(Buffer.from([0xff, 0x00, 0x13, 0x37]), LIMIT)).toMatchObject({
      ok: false,
      reason: 'cbor',
    });
  });

  test('a key named __proto__ does not set the prototype', () => {
    // {"__proto__": {"polluted": true}, "a": 1} as a plain CBOR map
    const bytes = Buffer.from([
      0xa2,
      0x69,
      ...Buffer.from('__proto__'),
      0xa1,
      0x68,
      ...Buffer.from('polluted'),
      0xf5,
      0x61,
      0x61,
      0x01,
    ]);
    const r = decodePayload(bytes, LIMIT);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(Object.getPrototypeOf(r.data)).toBe(Object.prototype);
    expect(Object.keys(r.data)).toEqual(['__proto__', 'a']);
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
  });

  test('a map nested deeper than the stack is a reject, and decoding carries on afterwards', () => {
    const deep = Buffer.concat([
      Buffer.from([0xa1, 0x61, 0x61]),
      Buffer.alloc(60_000, 0x81),
      Buffer.from([0x01]),
    ]);
    expect(decodePayload(deep, LIMIT)).toMatchObject({ ok: false, reason: 'cbor' });
    expect(cbor({ after: 1 })).toEqual({ ok: true, data: { after: 1 } });
  });
});

describe('size and emptiness', () => {
  test('an empty payload, or one of only whitespace, is empty', () => {
    expect(decodePayload(Buffer.alloc(0), LIMIT)).toMatchObject({ ok: false, reason: 'empty' });
    expect(json(' \n\t ')).toMatchObject({ ok: false, reason: 'empty' });
  });

  test('a payload of exactly the limit is accepted, one byte more is too large', () => {
    const fill = (n: number) => `{"pad":"${'x'.repeat(n - 10)}"}`;
    expect(fill(100)).toHaveLength(100);
    expect(decodePayload(Buffer.from(fill(100)), 100).ok).toBe(true);
    expect(decodePayload(Buffer.from(fill(101)), 100)).toEqual({
      ok: false,
      reason: 'too-large',
      detail: '101 bytes is over the limit of 100',
    });
  });

  test('a huge payload is refused without being parsed', () => {
    const huge = Buffer.alloc(10 * 1024 * 1024, 0x20);
    huge[0] = 0x7b;
    expect(decodePayload(huge, LIMIT)).toMatchObject({ ok: false, reason: 'too-large' });
  });
});

describe('device timestamps', () => {
  test('ts is the device time; at is used when there is no ts', () => {
    expect(json('{"ts":1700000000123,"at":5}')).toMatchObject({ ok: true, deviceAt: 1700000000123 });
    expect(json('{"at":1700000000000}')).toMatchObject({ ok: true, deviceAt: 1700000000000 });
    expect(cbor({ ts: 1700000000123 })).toMatchObject({ ok: true, deviceAt: 1700000000123 });
  });

  test('a timestamp that is not a number is left in the data and not taken', () => {
    const r = json('{"ts":"yesterday","temp":1}');
    expect(r).toEqual({ ok: true, data: { ts: 'yesterday', temp: 1 } });
  });

  test('a CBOR date/time (tag 1) gives its milliseconds', () => {
    expect(cbor({ ts: new Date(1700000000000) })).toMatchObject({ ok: true, deviceAt: 1700000000000 });
  });
});

describe('any input', () => {
  test('arbitrary bytes never throw and always give a known outcome', () => {
    const reasons = ['too-large', 'json', 'cbor', 'not-object', 'empty'];
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 512 }), (bytes) => {
        const r = decodePayload(Buffer.from(bytes), 256);
        if (r.ok) expect(typeof r.data).toBe('object');
        else expect(reasons).toContain(r.reason);
      }),
      { numRuns: 2_000 },
    );
  });

  test('any JSON object survives both encodings unchanged', () => {
    fc.assert(
      fc.property(
        fc.dictionary(fc.string(), fc.jsonValue({ maxDepth: 3, noUnicodeString: false })),
        (obj) => {
          const viaJson = decodePayload(Buffer.from(JSON.stringify(obj)), LIMIT);
          const viaCbor = decodePayload(encode(obj), LIMIT);
          expect(viaJson.ok && JSON.stringify(viaJson.data)).toBe(JSON.stringify(obj));
          expect(viaCbor.ok && JSON.stringify(viaCbor.data)).toBe(JSON.stringify(obj));
        },
      ),
      { numRuns: 300 },
    );
  });
});
