import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import {
  CloudEventLimits,
  decodePayload,
  parseCloudEvent,
  type DecodedPayload,
} from '../../src/ingest/index.js';
import { profileSecretProblem } from '../../src/credentials/index.js';
import { isTopicLevel } from '../../src/shared/index.js';
import { encodeCbor } from '../../src/store/index.js';
import { MAX_PROFILE_BATCH_CHANGES, parseProfileBatch } from '../../src/sync/index.js';
import {
  crashFixtures,
  encoded,
  FuzzTally,
  fuzzBudget,
  hostileKey,
  hostilePayload,
  mangled,
} from '../helpers/fuzz-inputs.js';

// Fuzzing of what devices and the cloud send to be decoded: device payloads (JSON and CBOR) and cloud events.
// Seeds are fixed so that a failure repeats; VIGIL_FUZZ_SEED and VIGIL_FUZZ_RUNS_SCALE explore further. An input
// that ever crashed or hung a decoder is kept in test/fixtures/fuzz/payloads.json and replayed below.

const LIMIT = 64 * 1024;
const REASONS = ['too-large', 'json', 'cbor', 'not-object', 'empty'];
/** Not a speed: a decode that takes this long on at most 64 KiB has hung. */
const HUNG_MS = 5_000;

const replacer = (_k: string, v: unknown) => (typeof v === 'bigint' ? v.toString() : v);

function depthOf(root: unknown): number {
  let max = 0;
  const stack: Array<[unknown, number]> = [[root, 1]];
  for (let item = stack.pop(); item !== undefined; item = stack.pop()) {
    const [value, depth] = item;
    if (typeof value !== 'object' || value === null || ArrayBuffer.isView(value) || value instanceof Date)
      continue;
    max = Math.max(max, depth);
    const children = value instanceof Set ? [...(value as Set<unknown>)] : Object.values(value);
    for (const child of children) stack.push([child, depth + 1]);
  }
  return max;
}

/** What every decoded payload must be: plain data the journal and the dead letters can encode again, or a reason. */
function expectWellFormed(r: DecodedPayload, input: Buffer): void {
  if (!r.ok) {
    expect(REASONS).toContain(r.reason);
    expect(r.detail.length).toBeGreaterThan(0);
    return;
  }
  expect(Object.getPrototypeOf(r.data)).toBe(Object.prototype);
  expect(depthOf(r.data)).toBeLessThanOrEqual(64);
  expect(() => JSON.stringify(r.data, replacer)).not.toThrow();
  // Encoded again (the journal does), it stays within a few times what was sent.
  expect(encodeCbor(r.data).length).toBeLessThanOrEqual(8 * input.length + 4_096);
  if (r.deviceAt !== undefined) expect(Number.isFinite(r.deviceAt)).toBe(true);
  expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
}

describe('device payloads, fuzzed', () => {
  test('any hostile JSON or CBOR decodes to plain data or to a reason, never an exception or a hang', () => {
    const { seed, numRuns } = fuzzBudget(20_260_701, 4_000);
    const tally = new FuzzTally('payloads', seed, numRuns);
    fc.assert(
      fc.property(hostilePayload, (bytes) => {
        const r = tally.time(() => decodePayload(bytes, LIMIT));
        tally.count(r.ok ? 'ok' : r.reason);
        expectWellFormed(r, bytes);
      }),
      { seed, numRuns, endOnFailure: true },
    );
    tally.report();
    expect(tally.slowest).toBeLessThan(HUNG_MS);
  });

  type Fixture = { name: string; base64: string; outcome: { ok: boolean; reason?: string } };
  test.each(crashFixtures<Fixture>('payloads').map((f) => [f.name, f] as const))(
    'found by fuzzing, kept: %s',
    (_name, fixture) => {
      const bytes = Buffer.from(fixture.base64, 'base64');
      const t0 = performance.now();
      const r = decodePayload(bytes, LIMIT);
      expect(performance.now() - t0).toBeLessThan(HUNG_MS);
      expect(r).toMatchObject(fixture.outcome);
      expectWellFormed(r, bytes);
    },
  );
});

// Mostly what a business system sends, so that the accepting paths are reached; often what it must not.
const identifier = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom('dev-1', 'dev-2', 'cust-17', 'provisioned') },
  { weight: 8, arbitrary: fc.stringMatching(/^[A-Za-z0-9._-]{1,12}$/) },
  fc.constantFrom('a/b', '+', '#', '', ' ', '$SYS', '\u0000', 'd\u00e9v', '__proto__', 'constructor'),
  fc.constantFrom('x'.repeat(300)),
  fc.string({ maxLength: 10 }),
  fc.integer(),
  fc.constant(null),
);
const fieldName = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom('maxTemp', 'site', 'tags', 'tier', 'plan') },
  { weight: 1, arbitrary: hostileKey },
);

const cloudEvent = fc
  .record(
    {
      actor: identifier,
      type: identifier,
      data: fc.oneof(
        { weight: 4, arbitrary: fc.dictionary(fieldName, fc.jsonValue({ maxDepth: 3 })) },
        { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 2 }) },
      ),
      extra: fc.jsonValue({ maxDepth: 1 }),
    },
    { requiredKeys: ['actor', 'type'] },
  )
  .map((r) => r as Record<string, unknown>);

describe('cloud events, fuzzed', () => {
  test('any bytes on vigil/{gw}/events are an event fit for the engine or a reason', () => {
    const { seed, numRuns } = fuzzBudget(20_260_702, 3_000);
    const tally = new FuzzTally('cloud events', seed, numRuns);
    const payload = fc.oneof(
      { weight: 4, arbitrary: encoded(cloudEvent) },
      { weight: 2, arbitrary: mangled(encoded(cloudEvent)) },
      { weight: 2, arbitrary: hostilePayload },
    );
    fc.assert(
      fc.property(payload, (bytes) => {
        const r = tally.time(() => parseCloudEvent(bytes, LIMIT));
        tally.count(r.ok ? 'ok' : r.reason);
        if (!r.ok) {
          expect([...REASONS, 'invalid']).toContain(r.reason);
          return;
        }
        for (const level of [r.event.actor, r.event.type]) {
          expect(isTopicLevel(level) && !level.includes('/')).toBe(true);
        }
        expect(Object.getPrototypeOf(r.event.data)).toBe(Object.prototype);
        expect(() => encodeCbor(r.event)).not.toThrow();
      }),
      { seed, numRuns, endOnFailure: true },
    );
    tally.report();
    expect(tally.slowest).toBeLessThan(HUNG_MS);
  });

  type Fixture = { name: string; base64: string; outcome: { ok: boolean; reason?: string } };
  test.each(crashFixtures<Fixture>('cloud-events').map((f) => [f.name, f] as const))(
    'found by fuzzing, kept: %s',
    (_name, fixture) => {
      expect(parseCloudEvent(Buffer.from(fixture.base64, 'base64'), LIMIT)).toMatchObject(fixture.outcome);
    },
  );

  test('the rate limit admits at most its burst plus its rate over any arrival pattern', () => {
    const { seed, numRuns } = fuzzBudget(20_260_703, 300);
    const tally = new FuzzTally('cloud event rate', seed, numRuns);
    const pattern = fc.record({
      perSecond: fc.integer({ min: 1, max: 2_000 }),
      burst: fc.integer({ min: 1, max: 50 }),
      arrivals: fc.array(fc.record({ afterMs: fc.nat({ max: 5 }), bytes: fc.nat({ max: 1_100 }) }), {
        maxLength: 400,
      }),
    });
    fc.assert(
      fc.property(pattern, ({ perSecond, burst, arrivals }) => {
        let nowMs = 0;
        const limits = new CloudEventLimits({ maxBytes: 1_000, perSecond, burst }, () => nowMs);
        let admitted = 0;
        for (const { afterMs, bytes } of arrivals) {
          nowMs += afterMs;
          const v = limits.admit(bytes);
          tally.note(v.ok ? 'admitted' : v.limit);
          if (bytes > 1_000) expect(v).toMatchObject({ ok: false, limit: 'size' });
          if (v.ok) admitted += 1;
          expect(admitted).toBeLessThanOrEqual(burst + Math.floor((nowMs * perSecond) / 1_000));
        }
        tally.count('run');
      }),
      { seed, numRuns, endOnFailure: true },
    );
    tally.report();
    expect(tally.of('rate')).toBeGreaterThan(0);
  });
});

const profile = fc
  .tuple(identifier, fc.dictionary(fieldName, fc.jsonValue({ maxDepth: 3 }), { maxKeys: 5 }))
  .map(([id, fields]): Record<string, unknown> => ({ ...fields, id }));

const profileBatch = fc
  .record(
    {
      seq: fc.oneof(
        { weight: 6, arbitrary: fc.integer({ min: 1, max: 5 }) },
        fc.integer({ min: -2, max: 0 }),
        fc.constantFrom(2 ** 53, 1.5, '1', null, Number.POSITIVE_INFINITY, Number.NaN),
      ),
      upsert: fc.oneof(
        { weight: 6, arbitrary: fc.array(profile, { maxLength: 4 }) },
        fc.jsonValue({ maxDepth: 1 }),
      ),
      delete: fc.oneof(
        { weight: 6, arbitrary: fc.array(identifier, { maxLength: 3 }) },
        fc.jsonValue({ maxDepth: 1 }),
      ),
    },
    { requiredKeys: ['seq'] },
  )
  .chain((batch) =>
    // Now and then a key a batch does not have.
    fc
      .oneof({ weight: 8, arbitrary: fc.constant(undefined) }, fc.jsonValue({ maxDepth: 1 }))
      .map((extra) =>
        extra === undefined ? (batch as Record<string, unknown>) : { ...batch, upserts: extra },
      ),
  );

describe('profile batches, fuzzed', () => {
  test('any bytes on vigil/{gw}/profiles are a valid batch or a refusal that says why', () => {
    const { seed, numRuns } = fuzzBudget(20_260_704, 3_000);
    const tally = new FuzzTally('profile batches', seed, numRuns);
    const payload = fc.oneof(
      { weight: 5, arbitrary: encoded(profileBatch) },
      { weight: 2, arbitrary: mangled(encoded(profileBatch)) },
      { weight: 2, arbitrary: hostilePayload },
    );
    fc.assert(
      fc.property(payload, (bytes) => {
        const r = tally.time(() => parseProfileBatch(bytes));
        tally.count(r.ok ? 'ok' : (r.limit ?? 'refused'));
        if (!r.ok) {
          expect(r.detail.length).toBeGreaterThan(0);
          return;
        }
        const { seq, upserts, deletes } = r.batch;
        expect(Number.isSafeInteger(seq) && seq >= 1).toBe(true);
        expect(upserts.length + deletes.length).toBeLessThanOrEqual(MAX_PROFILE_BATCH_CHANGES);
        const ids = [...upserts.map((u) => u.id), ...deletes];
        expect(new Set(ids).size).toBe(ids.length);
        for (const id of ids) expect(id.length >= 1 && id.length <= 256).toBe(true);
        for (const u of upserts) {
          expect(u.profile['id']).toBe(u.id);
          expect(profileSecretProblem(u.profile)).toBeUndefined();
          expect(() => encodeCbor(u.profile)).not.toThrow();
        }
      }),
      { seed, numRuns, endOnFailure: true },
    );
    tally.report();
    expect(tally.of('ok')).toBeGreaterThan(numRuns / 50);
    expect(tally.slowest).toBeLessThan(HUNG_MS);
  });
});
