import { describe, expect, test } from 'vitest';
import { compileRuleFiles, type RuleSet } from '../../src/rules/index.js';
import { VirtualRun } from '../../src/runtime/index.js';
import { ShadowRun } from '../../src/shadow/index.js';
import type { Candidate, Event } from '../../src/shared/index.js';

const COUNT = (n: number) => `id: three
priority: 50
category: alert
when:
  event: telemetry
  count: ${n}
  within: 1h
then:
  action: three
  to: [upstream]
`;
const QUIET = `id: quiet
priority: 50
category: alert
when:
  absent: any
  for: 10s
then:
  action: quiet
  to: [upstream]
`;

function rules(files: Record<string, string>): RuleSet {
  const result = compileRuleFiles(Object.entries(files).map(([path, text]) => ({ path, text })));
  if (!result.ok) throw new Error(result.problems.map((p) => p.message).join('\n'));
  return result.rules;
}

const ev = (actor: string, at: number): Event => ({
  actor,
  type: 'telemetry',
  at,
  data: {},
  source: 'device',
});

/** The live rules after two events of d1: two of three counted, a silence timer pending. */
function live(): VirtualRun {
  const run = VirtualRun.of(
    rules({ 'three.yaml': COUNT(3), 'quiet.yaml': QUIET }),
    { gateway: 'gw1' },
    () => undefined,
    {
      verdict: () => undefined,
    },
  );
  run.feed(ev('d1', 1_000));
  run.feed(ev('d1', 2_000));
  return run;
}

function shadowOf(
  files: Record<string, string>,
  maxQueued?: number,
): { shadow: ShadowRun; sent: Candidate[] } {
  const sent: Candidate[] = [];
  const shadow = new ShadowRun({
    rules: rules(files),
    live: live().rules,
    engine: { gateway: 'gw1' },
    profileOf: () => undefined,
    onSent: (c) => sent.push(c),
    ...(maxQueued !== undefined ? { maxQueued } : {}),
  });
  return { shadow, sent };
}

describe('ShadowRun', () => {
  test('starts from a copy of the live state for unchanged scenarios, and empty for changed ones', () => {
    const same = shadowOf({ 'three.yaml': COUNT(3), 'quiet.yaml': QUIET });
    same.shadow.offer({ kind: 'event', event: ev('d1', 3_000) }, undefined);
    same.shadow.flush();
    expect(same.sent.map((c) => c.action.scenario)).toEqual(['three']);

    const changed = shadowOf({ 'three.yaml': COUNT(4), 'quiet.yaml': QUIET });
    changed.shadow.offer({ kind: 'event', event: ev('d1', 3_000) }, undefined);
    changed.shadow.flush();
    expect(changed.sent).toEqual([]);
  });

  test('its timers fire on the time it is given, the live timers it copied included', () => {
    const { shadow, sent } = shadowOf({ 'quiet.yaml': QUIET });
    shadow.tick(11_999);
    expect(sent).toEqual([]);
    shadow.tick(12_000);
    expect(sent.map((c) => [c.action.scenario, c.action.eventAt])).toEqual([['quiet', 12_000]]);
  });

  test('takes only events and prunes, and drops what waits beyond its bound, counted', () => {
    const { shadow, sent } = shadowOf({ 'three.yaml': COUNT(1) }, 2);
    shadow.offer({ kind: 'timer', timer: 'x', at: 1, actor: 'd1' }, undefined);
    for (let i = 0; i < 4; i++) shadow.offer({ kind: 'event', event: ev(`d${i}`, 3_000 + i) }, undefined);
    expect(shadow.queued).toBe(2);
    expect(shadow.dropped).toBe(2);
    shadow.flush();
    expect(shadow.inputs).toBe(2);
    expect(sent.map((c) => c.action.actor)).toEqual(['d0', 'd1']);
    shadow.stop();
    shadow.offer({ kind: 'event', event: ev('d9', 9_000) }, undefined);
    expect(shadow.queued).toBe(0);
  });
});
