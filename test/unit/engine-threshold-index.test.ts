import fc from 'fast-check';
import { expect, test } from 'vitest';
import { Engine, type Effect } from '../../src/engine/index.js';
import type { Event, Profile } from '../../src/shared/index.js';
import { rulesFrom } from './engine-harness.js';

/**
 * The same scenarios twice: as written, their conditions take the engine's fast path (a threshold read once
 * per event, compared per scenario); in parentheses, the CEL interpreter evaluates every one of them. Both
 * engines must do exactly the same with any event.
 */
function rules(wrap: (condition: string) => string) {
  const thresholds = Array.from({ length: 12 }, (_, i) =>
    [
      `- id: t${i}`,
      '  use: threshold',
      `  with: { metric: ${['temp', 'hum', 'bat'][i % 3]}, limit: ${10 * (i % 5)}, count: ${1 + (i % 3)}, within: 1m }`,
      '  then: { action: a }',
    ].join('\n'),
  ).join('\n');
  return rulesFrom({
    'templates/threshold.yaml': [
      'template: threshold',
      'params:',
      '  metric: { type: string }',
      '  limit: { type: number }',
      '  count: { type: number, default: 1 }',
      '  within: { type: duration, default: 1m }',
      'when:',
      '  event: telemetry',
      `  where: "${wrap('data[params.metric] > params.limit')}"`,
      '  count: ${count}',
      '  within: ${within}',
    ].join('\n'),
    'thresholds.yaml': thresholds,
    'overheat.yaml': [
      'id: overheat',
      'when:',
      '  event: telemetry',
      `  where: "${wrap('data.temp > profile.maxTemp')}"`,
      'then: { action: inspect, payload: { temp: data.temp } }',
    ].join('\n'),
    'low.yaml': [
      'id: low',
      'when:',
      '  event: telemetry',
      `  where: "${wrap('3.3 >= data.bat')}"`,
      'then: { action: battery }',
    ].join('\n'),
    'more.yaml': [
      ['dry', 'data.hum < 30'],
      ['humid', '0.5 < data.hum'],
      ['cold', 'data.temp <= 10'],
      ['forty', 'data.temp == 40'],
      ['not-low', 'data.bat != 3.3'],
      ['cold-twice', 'data.temp <= 10'],
      ['hot', '40 <= data.temp'],
    ]
      .map(([id, condition]) =>
        [
          `- id: ${id}`,
          '  when:',
          '    event: telemetry',
          `    where: "${wrap(condition as string)}"`,
          `  then: { action: ${id} }`,
        ].join('\n'),
      )
      .join('\n'),
    'warm-average.yaml': [
      'id: warm-average',
      'when:',
      '  event: telemetry',
      `  where: "${wrap('data.temp >= 20')}"`,
      '  window: 10m',
      '  aggregate: { avgTemp: avg(data.temp), n: count() }',
      '  having: avgTemp > 30 && n >= 2',
      'then: { action: cool }',
    ].join('\n'),
  });
}

/** Errors name the expression and a column, which the parentheses change; what happened must not differ. */
function comparable(effects: Effect[]): unknown[] {
  return effects.map((e) =>
    e.kind === 'error' ? { ...e, message: e.message.replace(/[()]/g, '').replace(/ column \d+/, '') } : e,
  );
}

test('scenarios skipped by their threshold do exactly what evaluating them would', () => {
  const value = fc.oneof(
    fc.double({ min: -10, max: 100 }),
    fc.integer({ min: -5, max: 60 }),
    fc.constantFrom(NaN, Infinity, 3.3, 40, '41', true, null),
  );
  const event = fc.record({
    actor: fc.constantFrom('d1', 'd2', 'd3'),
    dtMs: fc.integer({ min: 0, max: 30_000 }),
    data: fc.dictionary(fc.constantFrom('temp', 'hum', 'bat'), value, { maxKeys: 3 }),
  });
  const profiles: Record<string, Profile | undefined> = {
    d1: { maxTemp: 50 },
    d2: { maxTemp: '50' },
    d3: undefined,
  };
  fc.assert(
    fc.property(fc.array(event, { minLength: 1, maxLength: 40 }), (events) => {
      const fast = new Engine(
        rules((c) => c),
        { gateway: 'gw' },
      );
      const interpreted = new Engine(
        rules((c) => `(${c})`),
        { gateway: 'gw' },
      );
      let at = 1_000_000;
      for (const e of events) {
        at += e.dtMs;
        const ev: Event = { actor: e.actor, type: 'telemetry', at, data: e.data, source: 'device' };
        const profile = profiles[e.actor];
        expect(comparable(fast.onEvent(ev, profile))).toEqual(comparable(interpreted.onEvent(ev, profile)));
      }
      expect(fast.stats()).toEqual(interpreted.stats());
    }),
    { numRuns: 300 },
  );
});
