import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { encode } from 'cbor-x';
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { decodePayload, parseCloudEvent } from '../../src/ingest/index.js';
import { parseDeviceTopic } from '../../src/shared/index.js';
import {
  compileExpression,
  compileRuleFiles,
  MAX_EXPRESSION_CHARS,
  shippedRulesDir,
} from '../../src/rules/index.js';

// Property tests of everything that parses input from outside: device payloads and topics, cloud
// events, rule files and CEL. Each is bounded in runs and time, so that `npm test` stays quick.
const LIMIT = 64 * 1024;
const bounded = { numRuns: 300, interruptAfterTimeLimit: 4_000 };

const isPlainRecord = (v: unknown) => typeof v === 'object' && v !== null && !Array.isArray(v);

describe('device payloads', () => {
  test('any bytes decode to data or to a reason, never an exception', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 512 }), (bytes) => {
        const r = decodePayload(Buffer.from(bytes), LIMIT);
        if (r.ok) expect(isPlainRecord(r.data)).toBe(true);
        else expect(['too-large', 'json', 'cbor', 'not-object', 'empty']).toContain(r.reason);
      }),
      bounded,
    );
  });

  test('bytes that start like a CBOR map or a JSON object, then go wrong, are refused calmly', () => {
    const start = fc.constantFrom(0xa1, 0xa5, 0xb8, 0xbf, 0x7b, 0xd9);
    fc.assert(
      fc.property(start, fc.uint8Array({ maxLength: 256 }), (first, rest) => {
        const r = decodePayload(Buffer.from([first, ...rest]), LIMIT);
        expect(typeof r.ok).toBe('boolean');
      }),
      bounded,
    );
  });

  test('any JSON object survives the trip: what decodes is what was sent', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string(), fc.jsonValue()), (obj) => {
        const r = decodePayload(Buffer.from(JSON.stringify(obj)), LIMIT);
        expect(r.ok).toBe(true);
        if (r.ok) expect(r.data).toEqual(JSON.parse(JSON.stringify(obj)));
      }),
      bounded,
    );
  });

  test('keys such as __proto__ and constructor stay data, in JSON and CBOR alike', () => {
    fc.assert(
      fc.property(fc.constantFrom('__proto__', 'constructor', 'prototype'), fc.jsonValue(), (key, value) => {
        for (const bytes of [
          Buffer.from(`{${JSON.stringify(key)}:${JSON.stringify(value)}}`),
          encode(new Map([[key, value]])),
        ]) {
          const r = decodePayload(bytes, LIMIT);
          if (r.ok) expect(Object.getPrototypeOf(r.data)).toBe(Object.prototype);
        }
        expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
      }),
      { numRuns: 100 },
    );
  });

  test('nesting beyond 64 levels is refused, in JSON and CBOR: encoding it again would exhaust the stack', () => {
    const nested = (levels: number) => `{"a":${'['.repeat(levels - 1)}${']'.repeat(levels - 1)}}`;
    expect(decodePayload(Buffer.from(nested(64)), LIMIT).ok).toBe(true);
    const deepJson = decodePayload(Buffer.from(nested(65)), LIMIT);
    expect(deepJson.ok ? 'accepted' : deepJson).toEqual({
      ok: false,
      reason: 'json',
      detail: 'nested deeper than 64 levels',
    });
    // 5,000 levels in 10 KB: what a device could send to make the journal's encoder fail on every resend.
    expect(decodePayload(Buffer.from(nested(5_000)), LIMIT).ok).toBe(false);
    const cborLevels = (levels: number) =>
      Buffer.concat([Buffer.from([0xa1, 0x61, 0x61]), Buffer.alloc(levels - 1, 0x81), Buffer.from([0x00])]);
    expect(decodePayload(cborLevels(64), LIMIT).ok).toBe(true);
    const deepCbor = decodePayload(cborLevels(65), LIMIT);
    expect(deepCbor.ok ? 'accepted' : deepCbor.reason).toBe('cbor');
    expect(
      decodePayload(
        Buffer.concat([Buffer.from([0xa1, 0x61, 0x61]), Buffer.alloc(200_000, 0x81), Buffer.from([0x00])]),
        1024 * 1024,
      ).ok,
    ).toBe(false);
  });

  test('whatever decodes can be encoded again as JSON and CBOR', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 512 }),
        fc.dictionary(fc.string(), fc.jsonValue()),
        (bytes, obj) => {
          for (const input of [Buffer.from(bytes), encode(obj), Buffer.from(JSON.stringify(obj))]) {
            const r = decodePayload(input, LIMIT);
            if (!r.ok) continue;
            expect(() =>
              JSON.stringify(r.data, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)),
            ).not.toThrow();
            expect(() => encode(r.data)).not.toThrow();
          }
        },
      ),
      bounded,
    );
  });

  test('a CBOR length field far beyond the bytes present is refused without allocating it', () => {
    // A map of 2^32 - 1 entries, a text string of 2^64 - 1 bytes.
    expect(decodePayload(Buffer.from([0xba, 0xff, 0xff, 0xff, 0xff]), LIMIT)).toMatchObject({ ok: false });
    const hugeText = Buffer.from([0xa1, 0x7b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    expect(decodePayload(hugeText, LIMIT)).toMatchObject({ ok: false });
  });
});

describe('topics and cloud events', () => {
  test('any topic parses to a device event or a refusal, and an accepted one is exactly devices/{id}/events/{type}', () => {
    const level = fc.oneof(fc.string({ maxLength: 6 }), fc.constantFrom('devices', 'events', '+', '#', ''));
    const topic = fc.oneof(
      fc.string(),
      fc.array(level, { maxLength: 6 }).map((l) => l.join('/')),
    );
    fc.assert(
      fc.property(topic, (t) => {
        const r = parseDeviceTopic(t);
        if (r.ok) expect(`devices/${r.deviceId}/events/${r.type}`).toBe(t);
      }),
      bounded,
    );
  });

  test('any bytes on the cloud events topic are an event or a reason', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 256 }),
          fc.jsonValue().map((v) => Buffer.from(JSON.stringify(v))),
        ),
        (bytes) => {
          expect(() => parseCloudEvent(Buffer.from(bytes), LIMIT)).not.toThrow();
        },
      ),
      bounded,
    );
  });
});

const shipped = readdirSync(shippedRulesDir())
  .filter((name) => name.endsWith('.yaml'))
  .map((name) => ({
    path: join(shippedRulesDir(), name),
    text: readFileSync(join(shippedRulesDir(), name), 'utf8'),
  }));

describe('rule files', () => {
  const expectProblemsOrRules = (files: Array<{ path: string; text: string }>) => {
    const r = compileRuleFiles(files);
    if (!r.ok) {
      expect(r.problems.length).toBeGreaterThan(0);
      for (const p of r.problems) {
        expect(typeof p.message).toBe('string');
        expect(p.line).toBeGreaterThanOrEqual(0);
      }
    }
  };

  test('any text as a rule file loads or is reported by file and line, never an exception', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 400 }), (text) => expectProblemsOrRules([{ path: 'x.yaml', text }])),
      bounded,
    );
  });

  test('the shipped rules, damaged at random, load or are reported', () => {
    const edit = fc.record({
      file: fc.nat({ max: shipped.length - 1 }),
      at: fc.nat(),
      cut: fc.nat({ max: 20 }),
      insert: fc.oneof(
        fc.string({ maxLength: 8 }),
        fc.constantFrom(':', '- ', '{', '*a', '&a ', '\n  ', 'data.', '!!', '"'),
      ),
    });
    fc.assert(
      fc.property(fc.array(edit, { minLength: 1, maxLength: 4 }), (edits) => {
        const files = shipped.map((f) => ({ ...f }));
        for (const e of edits) {
          const f = files[e.file];
          if (!f) continue;
          const at = e.at % (f.text.length + 1);
          f.text = f.text.slice(0, at) + e.insert + f.text.slice(at + e.cut);
        }
        expectProblemsOrRules(files);
      }),
      { numRuns: 200, interruptAfterTimeLimit: 6_000 },
    );
  });

  test('a YAML alias bomb is refused rather than expanded', () => {
    const levels = ['a: &a ["x","x","x","x","x","x","x","x","x","x"]'];
    for (let i = 1; i < 12; i++) {
      const prev = String.fromCharCode(96 + i);
      const name = String.fromCharCode(97 + i);
      levels.push(`${name}: &${name} [${Array(10).fill(`*${prev}`).join(',')}]`);
    }
    const text = `${levels.join('\n')}\nid: bomb\nwhen: { event: x }\nthen: { action: y }\n`;
    expect(compileRuleFiles([{ path: 'bomb.yaml', text }]).ok).toBe(false);
  });
});

describe('CEL conditions', () => {
  const VARS = ['data', 'profile', 'actor', 'params', 'last'];

  test('any source compiles or is refused with a message, never an exception', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 200 }), (source) => {
        const r = compileExpression(source, { variables: VARS });
        if (!r.ok) expect(r.message.length).toBeGreaterThan(0);
      }),
      bounded,
    );
  });

  // Expressions built from the grammar, so that many of them compile and are then evaluated.
  const expr: fc.Arbitrary<string> = fc.letrec<{ e: string }>((tie) => ({
    e: fc.oneof(
      { depthSize: 'small', withCrossShrink: true },
      fc.constantFrom(
        'data.temp',
        'data.tags',
        'profile.maxTemp',
        'actor',
        '1',
        '2.5',
        '"x"',
        'true',
        'null',
        '[1, 2]',
        '{"k": 1}',
        'data',
      ),
      fc
        .tuple(
          tie('e'),
          fc.constantFrom('+', '-', '*', '/', '%', '==', '<', '>=', '&&', '||', 'in'),
          tie('e'),
        )
        .map(([a, op, b]) => `(${a} ${op} ${b})`),
      tie('e').map((a) => `!${a}`),
      tie('e').map((a) => `size(${a})`),
      tie('e').map((a) => `${a}[0]`),
      tie('e').map((a) => `has(${a}.x)`),
      tie('e').map((a) => `${a}.exists(v, v == 1)`),
      fc.tuple(tie('e'), tie('e'), tie('e')).map(([c, a, b]) => `(${c} ? ${a} : ${b})`),
      tie('e').map((a) => `string(${a}).matches("^(a+)+$")`),
    ),
  })).e;

  test('what compiles evaluates to a value or an error on any data, never an exception', () => {
    fc.assert(
      fc.property(
        expr,
        fc.dictionary(fc.constantFrom('temp', 'tags', 'x'), fc.jsonValue({ maxDepth: 3 })),
        (source, data) => {
          const r = compileExpression(source, { variables: VARS });
          if (!r.ok) return;
          const out = r.expression.evaluate({
            data,
            profile: { maxTemp: 50 },
            actor: 'dev-1',
            params: {},
            last: {},
          });
          expect(typeof out.ok).toBe('boolean');
        },
      ),
      { numRuns: 400, interruptAfterTimeLimit: 6_000 },
    );
  });

  test('the bounds hold: source length, nesting depth, node count, comprehension nesting', () => {
    expect(compileExpression(`data.a == "${'x'.repeat(MAX_EXPRESSION_CHARS)}"`).ok).toBe(false);
    expect(compileExpression(`${'('.repeat(100)}1${')'.repeat(100)}`).ok).toBe(false);
    expect(
      compileExpression(
        Array.from({ length: 1_200 }, (_, i) => `data.f${i}`)
          .join(' + ')
          .slice(0, 4_000),
      ).ok,
    ).toBe(false);
    expect(compileExpression('data.l.all(x, data.l.all(y, data.l.all(z, x == y)))').ok).toBe(false);
    expect(compileExpression('data.l.all(x, data.l.all(y, x == y))').ok).toBe(false);
    expect(compileExpression('data.l.all(x, x == 1)').ok).toBe(true);
  });
});
