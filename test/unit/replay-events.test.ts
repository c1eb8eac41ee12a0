import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { compileRuleFiles, shippedRulesDir } from '../../src/rules/index.js';
import type { RuleSet } from '../../src/rules/index.js';
import { parseEventsNdjson, replay } from '../../src/runtime/replay.js';
import type { Event } from '../../src/shared/index.js';

function rules(files: Record<string, string>): RuleSet {
  const r = compileRuleFiles(Object.entries(files).map(([path, text]) => ({ path, text })));
  if (!r.ok) throw new Error(JSON.stringify(r.problems));
  return r.rules;
}

const offline = readFileSync(join(shippedRulesDir(), 'device-offline.yaml'), 'utf8');
const ev = (actor: string, type: string, at: number, data: Record<string, unknown> = {}): Event => ({
  actor,
  type,
  at,
  data,
  source: 'device',
});

describe('parseEventsNdjson', () => {
  test('reads events, defaulting source to device and data to {}, skipping blank lines', () => {
    const text = [
      '{"actor":"d1","type":"telemetry","at":5,"data":{"temp":61}}',
      '',
      '{"actor":"d1","type":"provisioned","at":6,"source":"cloud","deviceAt":4}',
      '   ',
    ].join('\n');
    expect(parseEventsNdjson(text)).toEqual({
      ok: true,
      events: [
        { actor: 'd1', type: 'telemetry', at: 5, data: { temp: 61 }, source: 'device' },
        { actor: 'd1', type: 'provisioned', at: 6, data: {}, source: 'cloud', deviceAt: 4 },
      ],
    });
  });

  test('reports every bad line with its number', () => {
    const text = [
      '{"actor":"d1","type":"t","at":1}',
      '{"actor":"d1","type":"t"',
      '[1,2]',
      '{"type":"t","at":1}',
      '{"actor":"d1","at":1}',
      '{"actor":"d1","type":"t","at":"soon"}',
      '{"actor":"d1","type":"t","at":1,"data":[1]}',
      '{"actor":"d1","type":"t","at":1,"source":"satellite"}',
    ].join('\n');
    const r = parseEventsNdjson(text);
    expect(r.ok).toBe(false);
    expect(r.ok ? [] : r.errors).toEqual([
      expect.stringMatching(/^line 2: not valid JSON/) as unknown,
      'line 3: expected a JSON object with actor, type and at',
      'line 4: "actor" must be a non-empty string',
      'line 5: "type" must be a non-empty string',
      'line 6: "at" must be a time in milliseconds',
      'line 7: "data" must be a JSON object',
      'line 8: "source" must be one of device, broker, cloud, engine',
    ]);
  });
});

describe('replay', () => {
  test('events are taken in order of arrival time, stable for equal times', () => {
    const r = rules({ 'x.yaml': 'id: x\nwhen: { event: t }\nthen:\n  action: a\n  payload: { n: data.n }' });
    const out = replay(r, [
      ev('d', 't', 20, { n: 3 }),
      ev('d', 't', 10, { n: 1 }),
      ev('d', 't', 20, { n: 4 }),
      ev('d', 't', 10, { n: 2 }),
    ]);
    expect(out.map((a) => a.payload.n)).toEqual([1, 2, 3, 4]);
  });

  test('timers due before an event fire before it, in deadline order', () => {
    const r = rules({
      'offline.yaml': offline,
      'note.yaml': 'id: note\nwhen: { event: t }\nthen: { action: noted }',
    });
    const out = replay(r, [ev('a', 'hb', 0), ev('b', 'hb', 1_000), ev('c', 't', 400_000)], {
      untilMs: 400_000,
    });
    expect(out.map((a) => [a.scenario, a.actor, a.eventAt])).toEqual([
      ['device-offline', 'a', 300_000],
      ['device-offline', 'b', 301_000],
      ['note', 'c', 400_000],
    ]);
  });

  test('by default the remaining timers fire up to the last event plus the longest period', () => {
    const r = rules({ 'offline.yaml': offline });
    expect(replay(r, [ev('a', 'hb', 7)]).map((a) => a.eventAt)).toEqual([300_007]);
    expect(replay(r, [ev('a', 'hb', 7)], { untilMs: 300_006 })).toEqual([]);
  });

  test('profiles are looked up for events and for timers', () => {
    const r = rules({ 'offline.yaml': offline });
    const out = replay(r, [ev('a', 'hb', 0)], {
      profiles: new Map([['a', { site: 'east' }]]),
      gateway: 'gw7',
    });
    expect(out).toMatchObject([{ gateway: 'gw7', payload: { site: 'east', lastSeen: 0 } }]);
  });

  test('with arbitrate, the candidates of one instant are weighed by the policy, highest priority first', () => {
    const r = rules({
      'a.yaml': 'id: a\npriority: 10\nwhen: { event: t }\nthen: { action: x }',
      'b.yaml': 'id: b\npriority: 90\nwhen: { event: t }\nthen: { action: y }',
      'policy.yaml': 'policy:\n  contact: { max: 1, per: 1h }',
    });
    const out = replay(r, [ev('d', 't', 5)], { arbitrate: true });
    expect(out.map((a) => [a.scenario, a.suppressed])).toEqual([
      ['b', undefined],
      ['a', 'contact'],
    ]);
    expect(replay(r, [ev('d', 't', 5)]).map((a) => [a.scenario, a.suppressed])).toEqual([
      ['a', undefined],
      ['b', undefined],
    ]);
  });

  test('evaluation errors are reported through onError with the time they happened', () => {
    const r = rules({ 'x.yaml': 'id: x\nwhen: { event: t, where: data.n > 1 }\nthen: { action: a }' });
    const errors: unknown[] = [];
    replay(r, [ev('d', 't', 9)], { onError: (e) => errors.push(e) });
    expect(errors).toMatchObject([{ scenario: 'x', actor: 'd', stage: 'where', at: 9 }]);
  });
});
