import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { encode } from 'cbor-x';
import fc from 'fast-check';

// Generators of hostile bytes for the parsers of outside input: CBOR built item by item (any length encoding,
// declared lengths beyond the bytes, tags, shared values), JSON text with the constructs parsers trip on, and
// random damage to either. Shared by the fuzz tests of payloads, cloud events and profile batches.

/** A CBOR initial byte and its argument, `width` bytes wide (0: in the initial byte); not always shortest. */
export function cborHead(major: number, value: number | bigint, width?: 0 | 1 | 2 | 4 | 8): Buffer {
  const v = BigInt(value);
  const w = width ?? (v < 24n ? 0 : v < 0x100n ? 1 : v < 0x10000n ? 2 : v < 0x100000000n ? 4 : 8);
  const info = w === 0 ? Number(v) : { 1: 24, 2: 25, 4: 26, 8: 27 }[w];
  const out = Buffer.alloc(1 + w);
  out[0] = (major << 5) | info;
  for (let i = 0; i < w; i++) out[w - i] = Number((v >> BigInt(8 * i)) & 0xffn);
  return out;
}

const cat = (...parts: Buffer[]) => Buffer.concat(parts);
const widths = fc.constantFrom<0 | 1 | 2 | 4 | 8 | undefined>(undefined, undefined, undefined, 1, 2, 4, 8);

/** Keys that mean something to JavaScript or to the gateway, and keys of every kind. */
export const hostileKey = fc.oneof(
  fc.constantFrom('__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', 'ts', 'at', 'a'),
  fc.constantFrom('actor', 'type', 'data', 'seq', 'upsert', 'delete', 'id', 'password', 'apiKey'),
  fc.string({ maxLength: 8 }),
);

/** Invalid UTF-8 (stray continuation bytes, overlong forms, encoded surrogates, cut sequences). */
const badUtf8 = fc.constantFrom(
  Buffer.from([0xff]),
  Buffer.from([0xc3, 0x28]),
  Buffer.from([0xc0, 0xaf]),
  Buffer.from([0xed, 0xa0, 0x80]),
  Buffer.from([0xe2, 0x82]),
  Buffer.from([0xf4, 0x90, 0x80, 0x80]),
  Buffer.from([0x80]),
);

const cborText = fc.oneof(
  { weight: 4, arbitrary: hostileKey.map((s) => Buffer.from(s, 'utf8')) },
  { weight: 1, arbitrary: badUtf8 },
  { weight: 1, arbitrary: fc.integer({ min: 24, max: 3_000 }).map((n) => Buffer.alloc(n, 0x61)) },
);

// Tags cbor-x gives a meaning to (dates, bignums, value sharing 28/29, generic objects 27, packed values 6/51,
// records 105, sets 258, maps 259, typed arrays 64-87, self-described 55799, packed prefixes) and a few others.
const tagNumber = fc.oneof(
  fc.constantFrom(0, 1, 2, 3, 4, 5, 6, 21, 24, 25, 27, 28, 29, 32, 37, 51, 64, 72, 85, 105, 256),
  fc.constantFrom(258, 259, 55799, 225, 216, 28704, 0x53687264, 0xffffffff),
  fc.nat({ max: 300 }),
);

const cborScalar = fc.oneof(
  fc
    .tuple(fc.constantFrom(0, 1), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), widths)
    .map(([m, v, w]) => cborHead(m, v, v < 2n ** 8n ? w : undefined)),
  fc.constantFrom(
    Buffer.from([0xf4]),
    Buffer.from([0xf5]),
    Buffer.from([0xf6]),
    Buffer.from([0xf7]),
    Buffer.from([0xf9, 0x7e, 0x00]), // NaN, half precision
    Buffer.from([0xf9, 0x7c, 0x00]), // Infinity
    Buffer.from([0xf9, 0xfc, 0x00]), // -Infinity
    Buffer.from([0xfa, 0x7f, 0xc0, 0x00, 0x00]),
    Buffer.from([0xfb, 0x7f, 0xf0, 0, 0, 0, 0, 0, 0]),
    Buffer.from([0xf8, 0x10]), // simple value 16
    Buffer.from([0xff]), // a break where none belongs
    Buffer.from([0x1c]), // reserved additional information
  ),
  cborText.map((t) => cat(cborHead(3, t.length), t)),
  fc.uint8Array({ maxLength: 40 }).map((b) => cat(cborHead(2, b.length), Buffer.from(b))),
  // A length far beyond the bytes present: 2^32 - 1 or 2^64 - 1 of them.
  fc
    .tuple(fc.constantFrom(2, 3, 4, 5), fc.constantFrom(2n ** 32n - 1n, 2n ** 64n - 1n, 1_000_000n))
    .map(([m, n]) => cat(cborHead(m, n), Buffer.from('abc'))),
);

/** One CBOR data item, nested; `depth` bounds the nesting of the generator, not of what it may claim. */
export const cborItem: fc.Arbitrary<Buffer> = fc.letrec<{ item: Buffer }>((tie) => ({
  item: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    cborScalar,
    fc
      .array(tie('item'), { maxLength: 5 })
      .chain((items) =>
        fc
          .boolean()
          .map((indefinite) =>
            indefinite
              ? cat(Buffer.from([0x9f]), ...items, Buffer.from([0xff]))
              : cat(cborHead(4, items.length), ...items),
          ),
      ),
    fc
      .array(fc.tuple(fc.oneof(cborText.map(textItem), tie('item')), tie('item')), { maxLength: 4 })
      .chain((pairs) =>
        fc.boolean().map((indefinite) => {
          const body = pairs.flatMap(([k, v]) => [k, v]);
          return indefinite
            ? cat(Buffer.from([0xbf]), ...body, Buffer.from([0xff]))
            : cat(cborHead(5, pairs.length), ...body);
        }),
      ),
    fc.tuple(tagNumber, tie('item')).map(([tag, item]) => cat(cborHead(6, tag), item)),
  ),
})).item;

function textItem(bytes: Buffer): Buffer {
  return cat(cborHead(3, bytes.length), bytes);
}

/**
 * CBOR value sharing (tags 28 and 29) laid out as a chain: each shared array holds references to the one
 * before it, so the data is small but its tree, walked naively, doubles with each link.
 */
export const sharedValueChain = fc
  .tuple(fc.integer({ min: 1, max: 40 }), fc.integer({ min: 1, max: 3 }))
  .map(([links, fanOut]) => {
    const items: Buffer[] = [cat(cborHead(6, 28), cborHead(4, 1), textItem(Buffer.from('x')))];
    for (let i = 1; i < links; i++) {
      const refs = Array.from({ length: fanOut + 1 }, () => cat(cborHead(6, 29), cborHead(0, i - 1)));
      items.push(cat(cborHead(6, 28), cborHead(4, refs.length), ...refs));
    }
    return cat(cborHead(5, 1), textItem(Buffer.from('a')), cborHead(4, items.length), ...items);
  });

/** Nesting `levels` deep, as JSON text or as CBOR, inside a map. */
export const deepNesting = fc
  .tuple(fc.integer({ min: 1, max: 40_000 }), fc.constantFrom('json', 'cbor-array', 'cbor-map'))
  .map(([levels, form]) => {
    if (form === 'json') return Buffer.from(`{"a":${'['.repeat(levels)}${']'.repeat(levels)}}`);
    const open = form === 'cbor-array' ? Buffer.from([0x81]) : Buffer.from([0xa1, 0x61, 0x61]);
    return Buffer.concat([
      Buffer.from([0xa1, 0x61, 0x61]),
      ...Array<Buffer>(levels).fill(open),
      cborHead(0, 1),
    ]);
  });

/** A top-level CBOR map of items: what a device or the cloud sends, or means to. */
export const cborMap = fc
  .tuple(
    fc.array(fc.tuple(cborText, cborItem), { maxLength: 6 }),
    fc.constantFrom('definite', 'indefinite', 'self-described', 'tag-259'),
  )
  .map(([pairs, form]) => {
    const body = pairs.flatMap(([k, v]) => [textItem(k), v]);
    const map =
      form === 'indefinite'
        ? cat(Buffer.from([0xbf]), ...body, Buffer.from([0xff]))
        : cat(cborHead(5, pairs.length), ...body);
    if (form === 'self-described') return cat(cborHead(6, 55799), map);
    if (form === 'tag-259') return cat(cborHead(6, 259), map);
    return map;
  });

/** JSON text, mostly well-formed, with the values and keys that break careless consumers. */
const jsonText: fc.Arbitrary<string> = fc.letrec<{ value: string }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constantFrom('NaN', 'Infinity', '-Infinity', '1e400', '-1e400', '-0', '1e-400', 'null', 'true'),
    fc.constantFrom('123456789012345678901234567890', '0.1', '"\\ud800"', '"\\u0000"', '"\\uDC00\\uD800"'),
    fc.constantFrom('[', '{', '"unterminated', '01', '.5', '+1', "'single'", '[1,]', '{"a":1,}'),
    fc.double().map((d) => JSON.stringify(d) ?? 'null'),
    fc.string({ maxLength: 12 }).map((s) => JSON.stringify(s)),
    fc.array(tie('value'), { maxLength: 5 }).map((items) => `[${items.join(',')}]`),
    fc
      .array(fc.tuple(hostileKey, tie('value')), { maxLength: 5 })
      .map((pairs) => `{${pairs.map(([k, v]) => `${JSON.stringify(k)}:${v}`).join(',')}}`),
  ),
})).value;

/** A JSON object's text (duplicate keys, `__proto__`, odd numbers), sometimes with invalid UTF-8 spliced in. */
export const jsonObject = fc
  .tuple(
    fc.array(fc.tuple(hostileKey, jsonText), { maxLength: 6 }),
    fc.constantFrom('', ' ', '\ufeff', '\r\n\t'),
    fc.option(fc.tuple(fc.nat(), badUtf8), { freq: 4 }),
  )
  .map(([pairs, lead, splice]) => {
    const text = Buffer.from(`${lead}{${pairs.map(([k, v]) => `${JSON.stringify(k)}:${v}`).join(',')}}`);
    if (splice === null) return text;
    const at = splice[0] % (text.length + 1);
    return cat(text.subarray(0, at), splice[1], text.subarray(at));
  });

/** Random damage to bytes: bit flips, a cut, bytes inserted; at least one of them. */
export function mangled(base: fc.Arbitrary<Buffer>): fc.Arbitrary<Buffer> {
  const edit = fc.oneof(
    fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.nat({ max: 7 }) }),
    fc.record({ kind: fc.constant('cut' as const), at: fc.nat() }),
    fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ maxLength: 9 }) }),
  );
  return fc.tuple(base, fc.array(edit, { minLength: 1, maxLength: 4 })).map(([bytes, edits]) => {
    let out = Buffer.from(bytes);
    for (const e of edits) {
      const at = e.at % (out.length + 1);
      if (e.kind === 'flip' && at < out.length) out[at] = out[at]! ^ (1 << e.bit);
      else if (e.kind === 'cut') out = out.subarray(0, at);
      else if (e.kind === 'insert') out = cat(out.subarray(0, at), Buffer.from(e.bytes), out.subarray(at));
    }
    return out;
  });
}

/** JSON or CBOR (a Map, so that keys stay text) of a value built as a JavaScript object. */
export function encoded(value: fc.Arbitrary<Record<string, unknown>>): fc.Arbitrary<Buffer> {
  return fc
    .tuple(value, fc.boolean())
    .map(([v, asJson]) => (asJson ? Buffer.from(JSON.stringify(v) ?? '{}') : encode(toMaps(v))));
}

function toMaps(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(toMaps);
  if (typeof v === 'object' && v !== null) return new Map(Object.entries(v).map(([k, x]) => [k, toMaps(x)]));
  return v;
}

/** Any of the hostile payloads above. */
export const hostilePayload: fc.Arbitrary<Buffer> = fc.oneof(
  { weight: 4, arbitrary: cborMap },
  { weight: 2, arbitrary: cborItem },
  { weight: 4, arbitrary: jsonObject },
  { weight: 1, arbitrary: sharedValueChain },
  { weight: 1, arbitrary: deepNesting },
  { weight: 3, arbitrary: mangled(fc.oneof(cborMap, jsonObject)) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 256 }).map((b) => Buffer.from(b)) },
);

/** Counts outcomes by name, and how long the slowest call took; printed so that the CI log shows the budget. */
export class FuzzTally {
  private readonly counts = new Map<string, number>();
  private slowestMs = 0;
  private runs = 0;
  private readonly startedAt = performance.now();

  constructor(
    private readonly name: string,
    readonly seed: number,
    readonly numRuns: number,
  ) {}

  /** Runs `fn`, timing it; what it returns is the outcome counted. */
  time<T>(fn: () => T): T {
    const t0 = performance.now();
    try {
      return fn();
    } finally {
      this.slowestMs = Math.max(this.slowestMs, performance.now() - t0);
    }
  }

  /** One run, and its outcome. */
  count(outcome: string): void {
    this.runs += 1;
    this.note(outcome);
  }

  /** One outcome of several within a run. */
  note(outcome: string): void {
    this.counts.set(outcome, (this.counts.get(outcome) ?? 0) + 1);
  }

  /** How many runs ended in `outcome`. */
  of(outcome: string): number {
    return this.counts.get(outcome) ?? 0;
  }

  get slowest(): number {
    return this.slowestMs;
  }

  report(): void {
    const outcomes = [...this.counts]
      .sort(([, a], [, b]) => b - a)
      .map(([k, n]) => `${k}: ${n}`)
      .join(', ');
    const total = Math.round(performance.now() - this.startedAt);
    const slowest = this.slowestMs > 0 ? `, slowest call ${this.slowestMs.toFixed(1)} ms` : '';
    console.log(
      `fuzz ${this.name}: seed ${this.seed}, ${this.runs}/${this.numRuns} runs in ${total} ms${slowest} (${outcomes})`,
    );
  }
}

/** A fuzz seed and run count, fixed unless VIGIL_FUZZ_SEED / VIGIL_FUZZ_RUNS_SCALE say otherwise (to explore further). */
export function fuzzBudget(defaultSeed: number, defaultRuns: number): { seed: number; numRuns: number } {
  const seed = Number(process.env['VIGIL_FUZZ_SEED'] ?? defaultSeed);
  const scale = Number(process.env['VIGIL_FUZZ_RUNS_SCALE'] ?? 1);
  return { seed, numRuns: Math.max(1, Math.round(defaultRuns * scale)) };
}

/** The crash fixtures of one area, `test/fixtures/fuzz/{area}.json`. */
export function crashFixtures<T>(area: string): T[] {
  return JSON.parse(readFileSync(new URL(`../fixtures/fuzz/${area}.json`, import.meta.url), 'utf8')) as T[];
}
