import { describe, expect, test } from 'vitest';
import { openMatchesOf } from '../../src/dashboard/device-state.js';
import { describeScenario } from '../../src/dashboard/scenario-diagram.js';
import { Engine, registerKind } from '../../src/engine/index.js';
import type { KindSyntax, ScenarioKind } from '../../src/engine/index.js';
import { compileRuleFiles } from '../../src/rules/index.js';
import { replay } from '../../src/runtime/replay.js';
import { formatProblem } from '../../src/shared/index.js';
import type { Event } from '../../src/shared/index.js';
import { every } from '../fixtures/kinds/toy-kind.js';
import { rulesFrom } from './engine-harness.js';

registerKind(every);

const PRESSES = `
id: third-press
when:
  every: 3
  of: button-press
  where: data.force > 1
then:
  action: blink
  payload: { force: data.force }
`;

function press(actor: string, at: number, force: number): Event {
  return { actor, type: 'button-press', at, data: { force }, source: 'device' };
}

describe('a scenario kind registered from outside the engine', () => {
  test('its rules compile and replay like any other: every third firm press per device fires', () => {
    const rules = rulesFrom({ 'presses.yaml': PRESSES });
    const events: Event[] = [
      press('d1', 1_000, 2),
      press('d2', 1_500, 5),
      press('d1', 2_000, 0.5), // too soft: not counted
      press('d1', 3_000, 3),
      press('d1', 4_000, 4), // d1's third firm press
      press('d2', 5_000, 6),
      { actor: 'd2', type: 'heartbeat', at: 5_500, data: {}, source: 'device' },
      press('d1', 6_000, 7),
      press('d2', 7_000, 8), // d2's third
      press('d1', 8_000, 9),
      press('d1', 9_000, 10), // d1's sixth
    ];
    const out = replay(rules, events);
    expect(out.map((a) => [a.scenario, a.action, a.actor, a.eventAt, a.payload])).toEqual([
      ['third-press', 'blink', 'd1', 4_000, { force: 4 }],
      ['third-press', 'blink', 'd2', 7_000, { force: 8 }],
      ['third-press', 'blink', 'd1', 9_000, { force: 10 }],
    ]);
  });

  test('its problems are reported at their file and line, next to the built-in keys', () => {
    const text = 'id: p\nwhen:\n  every: 0\n  of: "a b"\n  window: 5m\nthen: { action: blink }\n';
    const result = compileRuleFiles([{ path: 'p.yaml', text }]);
    expect(result.ok ? [] : result.problems.map(formatProblem)).toEqual([
      'p.yaml:3:10: every: expected a whole number from 1 to 1000, not 0',
      'p.yaml:4:7: of: "a b" is not an event type (no spaces, "/", "+" or "#")',
      'p.yaml:5:3: when: "window" does not go with "every"',
    ]);
    const mixed = compileRuleFiles([
      { path: 'm.yaml', text: 'id: m\nwhen: { every: 2, event: a }\nthen: { action: b }\n' },
    ]);
    expect(mixed.ok ? [] : mixed.problems.map(formatProblem)).toEqual([
      'm.yaml:2:9: when: give exactly one of event, any, all, absent, sequence, every',
    ]);
  });

  test('the dashboard shows its diagram and open matches', () => {
    const rules = rulesFrom({ 'presses.yaml': PRESSES });
    const sc = rules.scenarios[0];
    if (sc === undefined) throw new Error('no scenario');
    expect(describeScenario(sc)).toMatchObject({
      kind: 'every',
      summary: 'Fires once per 3 button-press events.',
    });
    const engine = new Engine(rules, { gateway: 'gw' });
    engine.onEvent(press('d1', 1_000, 2), undefined);
    engine.onEvent(press('d1', 2_000, 2), undefined);
    expect(openMatchesOf('d1', engine.scenarios, engine.snapshot())).toEqual([
      { scenario: 'third-press', group: 'd1', kind: 'every', progress: '2 of 3' },
    ]);
    expect(engine.pendingTimers()).toEqual([]);
  });

  test("a kind name is registered once, and a key introducing a kind is not another kind's own", () => {
    expect(() => registerKind(every)).toThrow(/every is registered twice/);
    // The toy kind under another name and keys.
    const variant = (name: string, syntax: Partial<KindSyntax>): ScenarioKind =>
      ({ ...every, name, syntax: { ...every.syntax, ...syntax } }) as unknown as ScenarioKind;
    expect(() => registerKind(variant('within', { selectors: ['within'] }))).toThrow(
      /"within" is already another key of when/,
    );
    expect(() => registerKind(variant('shadow', { selectors: ['x'], keys: ['absent'] }))).toThrow(
      /"absent" is already another key of when/,
    );
  });
});
