import { describe, expect, test } from 'vitest';
import { compileExpression, MAX_EXPRESSION_CHARS, RULE_VARIABLES } from '../../src/rules/index.js';
import type { Expression } from '../../src/shared/index.js';

function compiled(source: string, variables: readonly string[] = RULE_VARIABLES): Expression {
  const r = compileExpression(source, { variables });
  if (!r.ok) throw new Error(`${source}: ${r.message}`);
  return r.expression;
}

function value(source: string, vars: Record<string, unknown>): unknown {
  const r = compiled(source).evaluate(vars);
  if (!r.ok) throw new Error(`${source}: ${r.error}`);
  return r.value;
}

describe('numbers compare as numbers whatever their encoding', () => {
  test.each([
    ['data.bat < 3.3', { bat: 3 }, true],
    ['data.bat < 3.3', { bat: 3n }, true],
    ['data.bat < 3.3', { bat: 3.4 }, false],
    ['data.code == 3', { code: 3.0 }, true],
    ['data.code == 3', { code: 3n }, true],
    ['data.code == 3.0', { code: 3n }, true],
    ['data.code != 3', { code: 3.5 }, true],
    ['data.temp > 80', { temp: 81 }, true],
    ['data.temp > 80', { temp: 80.5 }, true],
    ['data.temp > 80', { temp: 80 }, false],
    ['data.code in [1, 2, 3]', { code: 3.0 }, true],
  ])('%s with %o', (source, data, expected) => {
    expect(value(source, { data })).toBe(expected);
  });

  test('a profile limit stored as a CBOR integer compares with a JSON double reading', () => {
    expect(value('data.temp > profile.maxTemp', { data: { temp: 50.5 }, profile: { maxTemp: 50n } })).toBe(
      true,
    );
  });

  test('arithmetic mixes integers and doubles', () => {
    expect(value('data.x + 1', { data: { x: 2 } })).toBe(3);
    expect(value('1 + data.x', { data: { x: 2.5 } })).toBe(3.5);
    expect(value('data.x * 2 - 1', { data: { x: 3n } })).toBe(5);
    expect(value('data.x / 2', { data: { x: 5 } })).toBe(2.5);
  });

  test('a template parameter can name the field to read', () => {
    expect(
      value('data[params.metric] > params.limit', {
        data: { hum: 90 },
        params: { metric: 'hum', limit: 85 },
      }),
    ).toBe(true);
  });
});

describe('results are plain data', () => {
  test('CEL integers come back as JS numbers, maps as objects', () => {
    expect(value('size(data.s)', { data: { s: 'abc' } })).toBe(3);
    expect(value('{"a": 1, "b": [1, 2]}', {})).toEqual({ a: 1, b: [1, 2] });
  });

  test('integers too large for a double come back as strings', () => {
    expect(value('data.big + 1', { data: { big: 2n ** 62n } })).toBe(String(2n ** 62n + 1n));
  });
});

describe('evaluation never throws', () => {
  test('a missing field is an error value naming the key', () => {
    const r = compiled('data.temp > 80').evaluate({ data: {} });
    expect(r.ok).toBe(false);
    expect(!r.ok && r.error).toMatch(/temp/);
  });

  test('a missing variable (no profile) is an error value', () => {
    const r = compiled('profile.maxTemp < 3').evaluate({ data: {} });
    expect(r.ok).toBe(false);
  });

  test('a type mismatch is an error value', () => {
    const r = compiled('data.temp > 80').evaluate({ data: { temp: 'hot' } });
    expect(r).toMatchObject({ ok: false, error: expect.stringMatching(/overload/) as unknown });
  });

  test('integer division by zero is an error value', () => {
    expect(compiled('data.n / 0', RULE_VARIABLES).evaluate({ data: { n: 1n } }).ok).toBe(false);
  });
});

describe('compilation', () => {
  test('a syntax error is reported with its column', () => {
    const r = compileExpression('data.temp >');
    expect(r).toEqual({ ok: false, message: expect.stringMatching(/column 12/) as unknown });
  });

  test('with declared variables, a misspelt one is a compile error', () => {
    const r = compileExpression('dta.temp > 3', { variables: RULE_VARIABLES });
    expect(r).toEqual({ ok: false, message: expect.stringMatching(/Unknown variable: dta/) as unknown });
  });

  test('without declared variables, any name compiles and a missing one fails when evaluated', () => {
    const r = compileExpression('customer.tier == "gold"');
    expect(r.ok).toBe(true);
    if (r.ok) expect(r.expression.evaluate({}).ok).toBe(false);
  });

  test('an unknown function is a compile error', () => {
    expect(compileExpression('launch(data)', { variables: RULE_VARIABLES }).ok).toBe(false);
  });

  test('expressions are bounded: length, nesting depth, comprehension nesting', () => {
    expect(compileExpression('1 + '.repeat(MAX_EXPRESSION_CHARS / 4) + '1')).toEqual({
      ok: false,
      message: expect.stringMatching(/longer than/) as unknown,
    });
    expect(compileExpression('('.repeat(40) + '1' + ')'.repeat(40))).toEqual({
      ok: false,
      message: expect.stringMatching(/maxDepth/) as unknown,
    });
    const nested = 'data.a.all(x, data.a.all(y, data.a.all(z, x + y + z > 0)))';
    expect(compileExpression(nested, { variables: RULE_VARIABLES })).toEqual({
      ok: false,
      message: expect.stringMatching(/nested 3 deep/) as unknown,
    });
    expect(
      compileExpression('data.a.all(x, data.a.exists(y, x == y))', { variables: RULE_VARIABLES }),
    ).toEqual({
      ok: false,
      message: expect.stringMatching(/nested 2 deep; at most 1/) as unknown,
    });
    expect(compileExpression('data.a.exists(x, x > 80)', { variables: RULE_VARIABLES }).ok).toBe(true);
  });

  test('an empty expression is refused', () => {
    expect(compileExpression('  ')).toEqual({ ok: false, message: 'empty expression' });
  });
});
