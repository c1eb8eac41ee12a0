import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { fastCondition, fastDataNumber } from '../../src/engine/fast-condition.js';
import { compileExpression, RULE_VARIABLES } from '../../src/rules/index.js';
import type { Expression } from '../../src/shared/index.js';

/** The rules' variables and two an aggregate's `having` binds (its aggregates' names). */
const VARIABLES = [...RULE_VARIABLES, 'avgTemp', 'readings'];

function compiled(source: string): Expression {
  const r = compileExpression(source, { variables: VARIABLES });
  if (!r.ok) throw new Error(`${source}: ${r.message}`);
  return r.expression;
}

describe('conditions of the common shape are answered without the interpreter', () => {
  test.each([
    ['data.temp > profile.maxTemp', { data: { temp: 61 }, profile: { maxTemp: 60 } }, true],
    ['data.temp > profile.maxTemp', { data: { temp: 60 }, profile: { maxTemp: 60 } }, false],
    ['data.bat < 3.3', { data: { bat: 3.29 } }, true],
    ['data.temp > 80', { data: { temp: 80 } }, false],
    ['data[params.metric] > params.limit', { data: { hum: 86 }, params: { metric: 'hum', limit: 85 } }, true],
    ['data.code == 3', { data: { code: 3 } }, true],
    ['data.code != 3', { data: { code: 3 } }, false],
    ['data.temp > 80 && data.hum > 50', { data: { temp: 81, hum: 51 } }, true],
    ['data.temp > 80 && data.hum > 50', { data: { temp: 81, hum: 50 } }, false],
    ['avgTemp > 70 && readings >= 5', { avgTemp: 70.5, readings: 5 }, true],
    ['avgTemp > 70 && readings >= 5', { avgTemp: 69, readings: 9 }, false],
  ])('%s with %o', (source, vars, expected) => {
    const fast = fastCondition(compiled(source));
    expect(fast?.(vars)).toBe(expected);
  });

  test.each([
    // Not numbers on both sides, a missing field, no profile: the interpreter decides (and reports errors).
    ['data.temp > 80', { data: { temp: '81' } }],
    ['data.temp > 80', { data: {} }],
    ['data.temp > profile.maxTemp', { data: { temp: 81 } }],
    ['data.temp > 80', { data: { temp: 81n } }],
    ['data[params.metric] > params.limit', { data: { hum: 90 }, params: { metric: 7, limit: 85 } }],
    ['data.temp > 99999999999999999999', { data: { temp: 1 } }],
    // One side of `&&` the fast path cannot answer: the interpreter decides the whole (`false && error` is false).
    ['data.temp > 80 && data.hum > 50', { data: { temp: 79 } }],
    ['avgTemp > 70 && readings >= 5', { avgTemp: 71, readings: 5n }],
    ['avgTemp > 70', { avgTemp: null }],
  ])('%s with %o is left to the interpreter', (source, vars) => {
    expect(fastCondition(compiled(source))?.(vars)).toBeUndefined();
  });

  test('other shapes are not compiled', () => {
    for (const source of [
      'data.temp > 80 || data.hum > 50',
      '(data.temp > 80) && data.hum > 50',
      'data.temp > 80 && size(data) > 2',
      'size(data) > 2',
      'data.a.b > 1',
      'last.at > 0',
    ]) {
      expect(fastCondition(compiled(source))).toBeUndefined();
    }
  });
});

const numbers = fc.oneof(
  fc.double(),
  fc.integer({ min: -100, max: 100 }),
  fc.constantFrom(0, -0, NaN, Infinity, -Infinity, 3.3, 80, 2 ** 53),
);
const anyValue = fc.oneof(
  numbers,
  fc.bigInt({ min: -100n, max: 100n }),
  fc.string(),
  fc.boolean(),
  fc.constant(null),
);

test('whenever the fast path answers, CEL gives the same boolean', () => {
  const operand = fc.oneof(
    fc.constantFrom('data.a', 'data.b', 'profile.limit', 'params.limit', 'data[params.metric]', 'avgTemp'),
    fc.constantFrom('80', '-5', '3.3', '0', '0.0', '-0.5'),
  );
  const comparison = fc
    .tuple(operand, fc.constantFrom('>', '>=', '<', '<=', '==', '!='), operand)
    .map(([a, op, b]) => `${a} ${op} ${b}`);
  const shape = fc.oneof(
    comparison,
    fc.array(comparison, { minLength: 2, maxLength: 3 }).map((l) => l.join(' && ')),
  );
  const record = fc.dictionary(fc.constantFrom('a', 'b', 'limit', 'metric'), anyValue, { maxKeys: 4 });
  const vars = fc.record(
    {
      data: record,
      profile: record,
      params: fc.record({ limit: anyValue, metric: fc.oneof(fc.constantFrom('a', 'b', 'c'), anyValue) }),
      avgTemp: anyValue,
    },
    { requiredKeys: ['data', 'params'] },
  );
  let answered = 0;
  fc.assert(
    fc.property(shape, vars, (source, v) => {
      // Two literals of different types (`80 != 0.0`) do not type-check: no rule holds such a condition.
      const r = compileExpression(source, { variables: VARIABLES });
      fc.pre(r.ok);
      if (!r.ok) return;
      const expr = r.expression;
      const fast = fastCondition(expr)?.(v);
      if (fast === undefined) return;
      answered++;
      expect(expr.evaluate(v)).toEqual({ ok: true, value: fast });
    }),
    { numRuns: 3_000 },
  );
  // The property means something only if the fast path answered a good share of the cases.
  expect(answered).toBeGreaterThan(300);
});

test('lists and byte strings are not maps, whatever their own properties', () => {
  const fast = fastCondition(compiled('data[params.metric] > 0'));
  expect(fast?.({ data: [5], params: { metric: '0' } })).toBeUndefined();
  expect(fast?.({ data: new Uint8Array([5]), params: { metric: '0' } })).toBeUndefined();
  expect(fast?.({ data: { 0: 5 }, params: { metric: '0' } })).toBe(true);
});

test('an aggregate argument `data.x` is read as CEL gives it whenever it is read without the interpreter', () => {
  const exprs = ['data.temp', ' data.temp ', 'data.temp + 0', 'data["temp"]'].map(compiled);
  let answered = 0;
  fc.assert(
    fc.property(
      fc.constantFrom(...exprs),
      fc.oneof(fc.record({ temp: numbers }), record(), anyValue),
      (expr, data) => {
        const fast = fastDataNumber(expr, data);
        if (fast === undefined) return;
        answered++;
        expect(expr.evaluate({ data })).toEqual({ ok: true, value: fast });
      },
    ),
    { numRuns: 2_000 },
  );
  expect(answered).toBeGreaterThan(200);
  // Only that shape; NaN and infinities go to the interpreter (which gives null for NaN).
  expect(fastDataNumber(compiled('data.temp + 0'), { temp: 1 })).toBeUndefined();
  expect(fastDataNumber(compiled('data.temp'), { temp: NaN })).toBeUndefined();
  expect(fastDataNumber(compiled('data.temp'), [1])).toBeUndefined();

  function record() {
    return fc.dictionary(fc.constantFrom('temp', 'hum'), anyValue, { maxKeys: 2 });
  }
});
