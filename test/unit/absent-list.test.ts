import { describe, expect, test } from 'vitest';
import { compileRuleFiles } from '../../src/rules/index.js';
import type { RuleProblem } from '../../src/shared/index.js';
import { Harness, rulesFrom } from './engine-harness.js';

const MIN = 60_000;
const HOUR = 60 * MIN;

const SILENT = 'id: silent\nwhen:\n  absent: [heartbeat, telemetry]\n  for: 10m\nthen: { action: check }\n';

const UNANSWERED = [
  'id: unanswered',
  'when:',
  '  sequence:',
  '    - event: alarm',
  '    - absent: [ack, resolved]',
  '      within: 5m',
  'then: { action: escalate }',
  '',
].join('\n');

function problems(files: Record<string, string>): RuleProblem[] {
  const result = compileRuleFiles(Object.entries(files).map(([path, text]) => ({ path, text })));
  return result.ok ? [] : result.problems;
}

describe('absent: a list of types … for', () => {
  test('any of the types restarts the silence; other types do not', () => {
    const h = new Harness(rulesFrom({ 'x.yaml': SILENT }));
    h.feed({ actor: 'd', type: 'heartbeat', at: 0 });
    h.feed({ actor: 'd', type: 'telemetry', at: 8 * MIN });
    h.feed({ actor: 'd', type: 'button', at: 15 * MIN });
    h.advanceTo(18 * MIN - 1);
    expect(h.actions).toEqual([]);
    h.advanceTo(HOUR);
    expect(h.actions).toMatchObject([{ scenario: 'silent', actor: 'd', eventAt: 18 * MIN }]);
  });

  test('the plan of one type is the plan it was before lists, so its state carries over', () => {
    const one = rulesFrom({
      'x.yaml': 'id: s\nwhen: { absent: heartbeat, for: 10m }\nthen: { action: check }',
    });
    const listed = rulesFrom({
      'x.yaml': 'id: s\nwhen: { absent: [heartbeat], for: 10m }\nthen: { action: check }',
    });
    expect(listed.scenarios[0]?.fingerprint).toBe(one.scenarios[0]?.fingerprint);
    expect(rulesFrom({ 'x.yaml': SILENT.replace('id: silent', 'id: s') }).scenarios[0]?.fingerprint).not.toBe(
      one.scenarios[0]?.fingerprint,
    );
  });

  test('restored from a snapshot, the silence fires at the same deadline', () => {
    const h = new Harness(rulesFrom({ 'x.yaml': SILENT }));
    h.feed({ actor: 'd', type: 'telemetry', at: 0 });
    const state = JSON.parse(JSON.stringify(h.engine.snapshot())) as ReturnType<typeof h.engine.snapshot>;
    const restored = new Harness(rulesFrom({ 'x.yaml': SILENT })).restore(state);
    restored.advanceTo(HOUR);
    expect(restored.actions).toMatchObject([{ scenario: 'silent', actor: 'd', eventAt: 10 * MIN }]);
  });

  test('mistakes in the list are reported at their line and column', () => {
    expect(
      problems({ 'x.yaml': SILENT.replace('[heartbeat, telemetry]', '[heartbeat, heartbeat]') }),
    ).toMatchObject([{ file: 'x.yaml', line: 3, col: 23, message: 'absent: "heartbeat" is listed twice' }]);
    expect(problems({ 'x.yaml': SILENT.replace('[heartbeat, telemetry]', '[]') })).toMatchObject([
      { file: 'x.yaml', line: 3, col: 11, message: 'absent: list at least 1 event types' },
    ]);
    expect(
      problems({ 'x.yaml': SILENT.replace('[heartbeat, telemetry]', '[heartbeat, any]') }),
    ).toMatchObject([{ line: 3, message: 'absent: "any" is only meaningful in "absent: any"' }]);
    const schema = 'schema:\n  events:\n    heartbeat:\n    telemetry:\n      temp: number\n';
    expect(
      problems({ 'x.yaml': SILENT.replace('telemetry]', 'telemetri]'), 'schema.yaml': schema }),
    ).toMatchObject([{ line: 3, col: 23, hint: 'did you mean telemetry?' }]);
  });
});

describe('a sequence step absent: [types]', () => {
  test('any of the types before the deadline ends the match; none of them fires it at the deadline', () => {
    const h = new Harness(rulesFrom({ 'x.yaml': UNANSWERED }));
    h.feed({ actor: 'a', type: 'alarm', at: 0 });
    h.feed({ actor: 'a', type: 'ack', at: MIN });
    h.feed({ actor: 'b', type: 'alarm', at: 0 });
    h.feed({ actor: 'b', type: 'resolved', at: 2 * MIN });
    h.feed({ actor: 'c', type: 'alarm', at: 0 });
    h.feed({ actor: 'c', type: 'note', at: MIN });
    h.advanceTo(HOUR);
    expect(h.actions.map((a) => [a.actor, a.eventAt])).toEqual([['c', 5 * MIN]]);
  });

  test('a where on the step looks at the data of every type listed', () => {
    const schema =
      'schema:\n  events:\n    alarm:\n      level: number\n    ack:\n      by: string\n    resolved:\n      by: string\n';
    const files = {
      'x.yaml': UNANSWERED.replace('      within: 5m', '      where: data.by != "robot"\n      within: 5m'),
      'schema.yaml': schema,
    };
    expect(problems(files)).toEqual([]);
    expect(problems({ ...files, 'x.yaml': files['x.yaml'].replace('data.by', 'data.level') })).toMatchObject([
      { line: 6, message: expect.stringMatching(/has no field "level"/) as unknown },
    ]);
  });
});
