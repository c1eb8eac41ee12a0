import { generateKeyPairSync } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { compileRuleFiles } from '../../src/rules/index.js';
import { encodeCbor } from '../../src/store/index.js';
import { createBundle, keyId, openBundle, type SigningKey, type TrustedKey } from '../../src/sync/index.js';
import { checkBundle } from '../../src/sync/check-bundle.js';
import { signSign1 } from '../../src/sync/cose-sign1.js';
import { cborItem, crashFixtures, FuzzTally, fuzzBudget, mangled } from '../helpers/fuzz-inputs.js';

// Fuzzing of what may come with new rules: rule files (YAML built from the rule grammar, with anchors, aliases,
// merge keys, tags, huge strings and values of the wrong type) and signed bundles (valid ones damaged at random,
// envelopes of random CBOR, and well-signed payloads that are not bundles). Seeds are fixed; VIGIL_FUZZ_SEED and
// VIGIL_FUZZ_RUNS_SCALE explore further. Inputs that ever crashed or hung are in test/fixtures/fuzz/rules.json
// and test/fixtures/fuzz/bundles.json, replayed below.

/** Not a speed: a compile or a check that takes this long has hung. */
const HUNG_MS = 5_000;

// --- YAML from the rule grammar, rendered in flow style so that any value fits anywhere ---

type Yaml = { text: string };
const plain = (text: string): Yaml => ({ text });

const scalar = fc.oneof(
  fc.constantFrom('telemetry', 'data.temp > 80', 'count()', 'avg(data.temp)', 'profile.site', 'actor'),
  fc.constantFrom('5m', '0s', '-1m', '99999d', '1ms', '2h', '100/s', '0/s', '1e9/m'),
  fc.constantFrom('~', 'null', 'true', 'no', '.inf', '-.nan', '0x1F', '0o17', '1_000', '2001-12-14', '1e400'),
  fc.constantFrom(
    '"${count}"',
    '"${ nope }"',
    '"${"',
    '"x ${metric} y"',
    "'it''s'",
    '"\\u0000"',
    '"\\ud800"',
  ),
  fc.constantFrom('upstream', 'device', 'support', 'maintenance', 'offer', 'threshold', 'any'),
  fc.integer({ min: -5, max: 1_000_000 }).map(String),
  fc.double().map((d) => JSON.stringify(String(d))),
  fc.string({ maxLength: 12 }).map((s) => JSON.stringify(s)),
  fc.constantFrom(`"${'x'.repeat(70_000)}"`, `${'y'.repeat(5_000)}`),
);

const KEYS = [
  'id',
  'description',
  'priority',
  'category',
  'when',
  'then',
  'event',
  'where',
  'count',
  'within',
  'by',
  'distinct',
  'absent',
  'for',
  'all',
  'sequence',
  'window',
  'aggregate',
  'having',
  'action',
  'to',
  'payload',
  'emit',
  'use',
  'with',
  'cooldown',
  'template',
  'params',
  'type',
  'default',
  'policy',
  'contact',
  'max',
  'per',
  'except',
  'exclusive',
  'active',
  'suppress',
  'rate',
  'ttl',
  '<<',
];
const key = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom(...KEYS) },
  fc.constantFrom('__proto__', 'constructor', '? [a, b]', '? {x: 1}', '"a\\nb"', '1', 'null', 'true'),
  fc.string({ maxLength: 6 }).map((s) => JSON.stringify(s)),
);
const tag = fc.constantFrom(
  '',
  '',
  '',
  '',
  '!!str ',
  '!!int ',
  '!!set ',
  '!!omap ',
  '!!binary ',
  '!!timestamp ',
  '!x ',
);
const anchorName = fc.constantFrom('a', 'b', 'c', 'd');

const value: fc.Arbitrary<Yaml> = fc.letrec<{ v: Yaml }>((tie) => ({
  v: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    { weight: 5, arbitrary: scalar.map(plain) },
    { weight: 1, arbitrary: anchorName.map((a) => plain(`*${a}`)) },
    {
      weight: 2,
      arbitrary: fc
        .array(tie('v'), { maxLength: 4 })
        .map((items) => plain(`[${items.map((i) => i.text).join(', ')}]`)),
    },
    {
      weight: 3,
      arbitrary: fc
        .array(fc.tuple(key, tie('v')), { maxLength: 5 })
        .map((pairs) => plain(`{${pairs.map(([k, v]) => `${k}: ${v.text}`).join(', ')}}`)),
    },
    {
      weight: 1,
      arbitrary: fc
        .tuple(fc.option(anchorName, { freq: 2 }), tag, tie('v'))
        .map(([a, t, v]) => plain(`${a === null ? '' : `&${a} `}${t}${v.text}`)),
    },
  ),
})).v;

/** A rule file: top-level keys, mostly those of a scenario, template or policy, one per line. */
const ruleFile = fc
  .tuple(
    fc.array(fc.tuple(key, value), { minLength: 1, maxLength: 8 }),
    fc.constantFrom('', '', '', '%YAML 1.2\n---\n', '--- !!map\n', '# c\n'),
    fc.constantFrom('', '', '', '\n---\nid: second\n', '\n...\n', '\n--- *a\n'),
  )
  .map(([pairs, head, tail]) => `${head}${pairs.map(([k, v]) => `${k}: ${v.text}`).join('\n')}${tail}\n`);

/** A scenario that loads, then a value of the generator in one place: the checks past parsing are reached. */
const nearlyValid = fc
  .tuple(fc.constantFrom('when', 'then', 'priority', 'category', 'id'), value)
  .map(([field, v]) => {
    const fields: Record<string, string> = {
      id: 'fz',
      priority: '50',
      category: 'maintenance',
      when: '{event: telemetry, where: data.temp > 80, count: 3, within: 2m}',
      then: '{action: check-fan, to: [upstream]}',
    };
    fields[field] = v.text;
    return Object.entries(fields)
      .map(([k, x]) => `${k}: ${x}`)
      .join('\n');
  });

const fileSet = fc.array(
  fc.record({
    path: fc.constantFrom('a.yaml', 'b.yaml', 'policy.yaml', 'templates/t.yaml', 'a.yaml'),
    text: fc.oneof(ruleFile, nearlyValid),
  }),
  { minLength: 1, maxLength: 4 },
);

type RuleFixture = { name: string; files: Array<{ path: string; text: string }> };

function expectProblemsOrRules(files: Array<{ path: string; text: string }>): 'loaded' | 'problems' {
  const r = compileRuleFiles(files);
  if (r.ok) return 'loaded';
  expect(r.problems.length).toBeGreaterThan(0);
  for (const p of r.problems) {
    expect(typeof p.message).toBe('string');
    expect(files.some((f) => f.path === p.file)).toBe(true);
    expect(p.line).toBeGreaterThanOrEqual(0);
  }
  return 'problems';
}

describe('rule files, fuzzed', () => {
  test('any rule files built from the grammar load or are reported by file and line, never an exception', () => {
    const { seed, numRuns } = fuzzBudget(20_260_705, 800);
    const tally = new FuzzTally('rule files', seed, numRuns);
    fc.assert(
      fc.property(fileSet, (files) => tally.count(tally.time(() => expectProblemsOrRules(files)))),
      { seed, numRuns, endOnFailure: true },
    );
    tally.report();
    expect(tally.of('loaded')).toBeGreaterThan(0);
    expect(tally.slowest).toBeLessThan(HUNG_MS);
  });

  test.each(crashFixtures<RuleFixture>('rules').map((f) => [f.name, f] as const))(
    'found by fuzzing, kept: %s',
    (_name, fixture) => {
      const t0 = performance.now();
      expect(expectProblemsOrRules(fixture.files)).toBe('problems');
      expect(performance.now() - t0).toBeLessThan(HUNG_MS);
    },
  );
});

// --- signed bundles ---

const pair = generateKeyPairSync('ed25519');
const signer: SigningKey = { key: pair.privateKey, id: keyId(pair.publicKey) };
const trusted: TrustedKey[] = [{ key: pair.publicKey, id: signer.id, source: 'test.pub' }];
const RULE = 'id: fz\nwhen: {event: telemetry}\nthen: {action: a, to: [upstream]}\n';
const valid = createBundle(
  { version: 2, createdAt: '2026-07-01T00:00:00Z', files: [{ path: 'fz.yaml', text: RULE }] },
  signer,
);

/** Payloads a trusted key signed that are not what a bundle carries, or carry hostile rule files. */
const signedPayload = fc.oneof(
  cborItem,
  fc
    .uniqueArray(
      fc.record({ path: fc.constantFrom('a.yaml', 'b.yaml', 'templates/t.yaml'), text: nearlyValid }),
      {
        minLength: 1,
        maxLength: 3,
        selector: (f) => f.path,
      },
    )
    .map((files) => encodeCbor({ format: 1, version: 2, createdAt: '2026-07-01T00:00:00Z', files })),
  fc
    .record(
      {
        format: fc.oneof(fc.constant(1), fc.jsonValue({ maxDepth: 0 })),
        version: fc.oneof(fc.integer({ min: -1, max: 5 }), fc.jsonValue({ maxDepth: 0 })),
        createdAt: fc.oneof(fc.constant('2026-07-01T00:00:00Z'), fc.jsonValue({ maxDepth: 0 })),
        files: fc.oneof(
          fc.array(
            fc.record(
              {
                path: fc.oneof(
                  fc.constantFrom('a.yaml', 'templates/t.yaml', '../x.yaml', '/etc/x.yaml'),
                  fc.string(),
                ),
                text: fc.oneof(ruleFile, fc.jsonValue({ maxDepth: 1 })),
              },
              { requiredKeys: [] },
            ),
            { maxLength: 3 },
          ),
          fc.jsonValue({ maxDepth: 1 }),
        ),
      },
      { requiredKeys: [] },
    )
    .map((content) => encodeCbor(content)),
);

const bundleBytes = fc.oneof(
  { weight: 4, arbitrary: mangled(fc.constant(valid)) },
  { weight: 3, arbitrary: signedPayload.map((p) => signSign1(p, signer.key, Buffer.from(signer.id, 'hex'))) },
  { weight: 1, arbitrary: cborItem },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)) },
);

describe('signed bundles, fuzzed', () => {
  test('any bytes offered as a bundle are opened and checked, or refused with a reason, never an exception', () => {
    const { seed, numRuns } = fuzzBudget(20_260_706, 1_500);
    const tally = new FuzzTally('bundles', seed, numRuns);
    fc.assert(
      fc.property(bundleBytes, (bytes) => {
        const verdict = tally.time(() => {
          const opened = openBundle(bytes, trusted);
          if (!opened.ok) expect(opened.detail.length).toBeGreaterThan(0);
          return checkBundle(bytes, trusted, { version: 1, floor: 1 });
        });
        tally.count(verdict.kind === 'reject' ? verdict.reason : verdict.kind);
        if (verdict.kind === 'reject') expect(verdict.detail.length).toBeGreaterThan(0);
      }),
      { seed, numRuns, endOnFailure: true },
    );
    tally.report();
    expect(tally.of('invalid-rules')).toBeGreaterThan(0);
    expect(tally.slowest).toBeLessThan(HUNG_MS);
  });

  type BundleFixture = { name: string; base64: string; reason: string };
  test.each(crashFixtures<BundleFixture>('bundles').map((f) => [f.name, f] as const))(
    'found by fuzzing, kept: %s',
    (_name, fixture) => {
      const verdict = checkBundle(Buffer.from(fixture.base64, 'base64'), trusted, { version: 1, floor: 1 });
      expect(verdict).toMatchObject({ kind: 'reject', reason: fixture.reason });
    },
  );
});
