import { generateKeyPairSync } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { checkRules, compileRuleFiles, loadRulesDir, shippedRulesDir } from '../../src/rules/index.js';
import { formatProblem } from '../../src/shared/index.js';
import type { RuleProblem } from '../../src/shared/index.js';
import { checkBundle } from '../../src/sync/check-bundle.js';
import { createBundle, keyId } from '../../src/sync/index.js';
import { tempDir } from '../helpers/temp.js';

/** A schema like the shipped one: telemetry from devices, provisioned from the cloud, a profile with a name. */
const SCHEMA = `schema:
  events:
    telemetry:
      temp: number
      bat: number
    provisioned:
  profile:
    name: string
    site: string
`;

/** One scenario on telemetry, with `extra` lines replacing its `when`/`then` parts as given. */
function scenario(id: string, parts: { top?: string; when?: string; then?: string }): string {
  return [
    `id: ${id}`,
    ...(parts.top !== undefined ? [parts.top] : []),
    'when:',
    parts.when ?? '  event: telemetry',
    'then:',
    parts.then ?? '  action: look',
    '',
  ].join('\n');
}

function problems(files: Record<string, string>): RuleProblem[] {
  const result = compileRuleFiles(Object.entries(files).map(([path, text]) => ({ path, text })));
  return result.ok ? [] : result.problems;
}

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('rules check: each mistake at its file:line:col, with a hint', () => {
  test('a duration without a unit (cooldown: 10), with or without a schema', () => {
    const file = scenario('x', { top: 'cooldown: 10' });
    for (const files of [{ 'x.yaml': file }, { 'x.yaml': file, 'schema.yaml': SCHEMA }]) {
      expect(problems(files)).toEqual([
        {
          file: 'x.yaml',
          line: 2,
          col: 11,
          message: 'cooldown: 10 has no unit',
          hint: 'durations need a unit: 10ms, 10s, 10m, 10h or 10d',
        },
      ]);
    }
    // Everywhere a duration is read: in a when, a template parameter, the policy.
    expect(
      problems({ 'x.yaml': scenario('x', { when: '  event: t\n  count: 2\n  within: 30' }) }),
    ).toMatchObject([{ line: 5, message: 'within: 30 has no unit' }]);
    expect(problems({ 'p.yaml': 'policy:\n  cooldown: 600\n' })).toMatchObject([
      { line: 2, message: expect.stringMatching(/^policy\.cooldown: 600 has no unit/) as unknown },
    ]);
    expect(problems({ 'p.yaml': 'policy:\n  cooldown: 0\n' })).toEqual([]);
  });

  test('an event type no device or scenario produces (event: telemtry): did you mean telemetry?', () => {
    const files = { 'x.yaml': scenario('x', { when: '  event: telemtry' }), 'schema.yaml': SCHEMA };
    expect(problems(files)).toEqual([
      {
        file: 'x.yaml',
        line: 3,
        col: 10,
        message: 'event: no device or scenario produces "telemtry"',
        hint: 'did you mean telemetry?',
      },
    ]);
    // Events that scenarios emit, and the broker's own, are known without the schema naming them.
    const emitted = scenario('y', { when: '  event: provisioned', then: '  emit: registered' });
    const listener = scenario('z', { when: '  any: [registered, connected, disconnected]' });
    expect(problems({ 'y.yaml': emitted, 'z.yaml': listener, 'schema.yaml': SCHEMA })).toEqual([]);
  });

  test('a string compared with a number (where: data.temp > "5")', () => {
    const files = {
      'x.yaml': scenario('x', { when: '  event: telemetry\n  where: data.temp > "5"' }),
      'schema.yaml': SCHEMA,
    };
    expect(problems(files)).toEqual([
      {
        file: 'x.yaml',
        line: 4,
        col: 10,
        message: 'where: types do not match: no such overload: double > string',
        hint: '"5" is a string; write the number 5 to compare numbers',
      },
    ]);
    // The same with the number loads.
    files['x.yaml'] = scenario('x', { when: '  event: telemetry\n  where: data.temp > 5' });
    expect(problems(files)).toEqual([]);
  });

  test('a profile field the schema does not declare (profile.nmae): did you mean profile.name?', () => {
    const files = {
      'x.yaml': scenario('x', { then: '  action: greet\n  payload:\n    name: profile.nmae' }),
      'schema.yaml': SCHEMA,
    };
    expect(problems(files)).toEqual([
      {
        file: 'x.yaml',
        line: 7,
        col: 19,
        message: 'payload.name: profile.nmae: the profile has no field "nmae" (schema.yaml)',
        hint: 'did you mean profile.name?',
      },
    ]);
  });

  test('an event field is checked against the event types the expression looks at', () => {
    const files = {
      'x.yaml': scenario('x', { when: '  event: provisioned\n  where: data.temp > 5' }),
      'y.yaml': scenario('y', { then: '  action: a\n  payload: { t: last.data.tmep }' }),
      'schema.yaml': SCHEMA,
    };
    expect(problems(files).map((p) => [p.file, p.message, p.hint])).toEqual([
      [
        'x.yaml',
        'where: data.temp: the data of provisioned has no field "temp" (schema.yaml)',
        'the data of provisioned has no fields',
      ],
      [
        'y.yaml',
        'payload.t: last.data.tmep: the data of telemetry has no field "tmep" (schema.yaml)',
        'did you mean last.data.temp?',
      ],
    ]);
  });

  test('every problem of every file at once, in file order', () => {
    const files = {
      'a.yaml': scenario('a', { top: 'cooldown: 10', when: '  event: telemtry' }),
      'b.yaml': scenario('b', {
        when: '  event: telemetry\n  where: data.temp > "5"',
        then: '  action: x\n  payload: { n: profile.nmae }',
      }),
      'schema.yaml': SCHEMA,
    };
    expect(problems(files).map(formatProblem)).toEqual([
      'a.yaml:2:11: cooldown: 10 has no unit',
      'a.yaml:4:10: event: no device or scenario produces "telemtry"',
      'b.yaml:4:10: where: types do not match: no such overload: double > string',
      'b.yaml:7:25: payload.n: profile.nmae: the profile has no field "nmae" (schema.yaml)',
    ]);
  });

  test('a schema written as JSON Schema is read as the shorthand is', () => {
    const json = `schema:
  events:
    telemetry:
      type: object
      properties:
        temp: { type: number }
        tags: { type: array, items: { type: string } }
  profile:
    type: object
    properties:
      name: { type: [string, "null"] }
`;
    const ok = scenario('x', {
      when: '  event: telemetry\n  where: data.temp > 5 && "a" in data.tags',
      then: '  action: a\n  payload: { n: profile.name }',
    });
    expect(problems({ 'x.yaml': ok, 'schema.yaml': json })).toEqual([]);
    const bad = scenario('x', { when: '  event: telemetry\n  where: data.tags > 5' });
    expect(problems({ 'x.yaml': bad, 'schema.yaml': json })).toMatchObject([
      { line: 4, message: /no such overload: list<string> > int/ },
    ]);
  });

  test('a schema with mistakes of its own is reported, and a second one is refused', () => {
    const broken = 'schema:\n  events:\n    telemetry:\n      temp: numbr\n  profil: {}\n';
    expect(problems({ 'schema.yaml': broken }).map(formatProblem)).toEqual([
      'schema.yaml:4:13: schema.events.telemetry.temp: "numbr" is not a type',
      'schema.yaml:5:3: schema: unknown key "profil" (expected one of events, profile)',
    ]);
    expect(problems({ 'schema.yaml': SCHEMA, 'more.yaml': SCHEMA }).map(formatProblem)).toEqual([
      'more.yaml:1:1: a second schema file (the first is schema.yaml)',
    ]);
  });
});

describe('rules check: what is checked', () => {
  test('without a schema the rules load as before, and the check says types were not checked', async () => {
    const dir = await tempDir();
    cleanups.push(() => dir.remove());
    await writeFile(
      join(dir.path, 'x.yaml'),
      scenario('x', { when: '  event: telemtry\n  where: data.temp > "5"' }),
    );
    const result = await checkRules(dir.path);
    expect(result).toEqual({ dir: dir.path, problems: [], elsewhere: 0, scenarios: 1 });
    expect(result.schema).toBeUndefined();
  });

  test('a single file is checked with its directory, and only its own problems are reported', async () => {
    const dir = await tempDir();
    cleanups.push(() => dir.remove());
    await writeFile(join(dir.path, 'schema.yaml'), SCHEMA);
    await writeFile(
      join(dir.path, 'good.yaml'),
      scenario('good', { when: '  event: provisioned', then: '  emit: registered' }),
    );
    // It listens to an event another file of the directory emits.
    await writeFile(join(dir.path, 'listens.yaml'), scenario('listens', { when: '  event: registered' }));
    await writeFile(join(dir.path, 'bad.yaml'), scenario('bad', { top: 'cooldown: 10' }));
    await mkdir(join(dir.path, 'templates'));

    const listens = await checkRules(join(dir.path, 'listens.yaml'));
    expect(listens).toEqual({
      dir: dir.path,
      file: join(dir.path, 'listens.yaml'),
      problems: [],
      elsewhere: 1,
      scenarios: 0,
      schema: join(dir.path, 'schema.yaml'),
    });
    const bad = await checkRules(join(dir.path, 'bad.yaml'));
    expect(bad.problems.map(formatProblem)).toEqual([
      `${join(dir.path, 'bad.yaml')}:2:11: cooldown: 10 has no unit`,
    ]);
    const notRules = await checkRules(join(dir.path, 'notes.txt'));
    expect(notRules.problems).toMatchObject([{ message: expect.stringMatching(/ENOENT/) as unknown }]);
  });

  test('the shipped rules and the examples ship their schema, and pass the check with it', async () => {
    for (const dir of [shippedRulesDir(), join(shippedRulesDir(), 'examples', 'grouped-onboarding')]) {
      const result = await checkRules(dir);
      expect(result.problems).toEqual([]);
      expect(result.schema).toBe(join(dir, 'schema.yaml'));
    }
    const withDemo = await loadRulesDir(shippedRulesDir(), { overlay: join(shippedRulesDir(), 'demo') });
    expect(withDemo).toMatchObject({ ok: true, rules: { schema: join(shippedRulesDir(), 'schema.yaml') } });
  });

  test('the gateway refuses a bundle whose expressions do not type-check against its schema', () => {
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    const id = keyId(publicKey);
    const files = [
      { path: 'schema.yaml', text: SCHEMA },
      { path: 'x.yaml', text: scenario('x', { when: '  event: telemetry\n  where: data.temp > "5"' }) },
    ];
    const bundle = createBundle(
      { version: 2, createdAt: '2026-01-01T00:00:00.000Z', files },
      { id, key: privateKey },
    );
    const verdict = checkBundle(bundle, [{ id, key: publicKey, source: 'test' }], { version: 1, floor: 1 });
    expect(verdict).toMatchObject({
      kind: 'reject',
      reason: 'invalid-rules',
      problems: [
        { file: 'x.yaml', line: 4, col: 10, message: expect.stringMatching(/double > string/) as unknown },
      ],
    });
  });
});
