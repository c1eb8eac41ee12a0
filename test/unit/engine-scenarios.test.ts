import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { Engine, type Effect, type EmittedInput } from '../../src/engine/index.js';
import { shippedRulesDir } from '../../src/rules/index.js';
import type { Event } from '../../src/shared/index.js';
import { Harness, rulesFrom, shipped } from './engine-harness.js';

const MIN = 60_000;
const HOUR = 60 * MIN;

describe('trigger: event + where (overheat, low-battery)', () => {
  const profiles = { d1: { maxTemp: 50, site: 'north' } };

  test('a reading above the profile limit decides the action with its payload', () => {
    const h = new Harness(shipped('overheat.yaml'), profiles);
    h.feed({ actor: 'd1', type: 'telemetry', at: 1_000, data: { temp: 61, bat: 3.9 } });
    h.feed({ actor: 'd1', type: 'telemetry', at: 2_000, data: { temp: 50, bat: 3.9 } });
    expect(h.actions).toEqual([
      {
        id: expect.stringMatching(/^[0-9a-f]{16}$/) as unknown,
        gateway: 'gw-test',
        scenario: 'overheat',
        action: 'inspect-device',
        actor: 'd1',
        priority: 70,
        category: 'maintenance',
        decidedAt: 1_000,
        eventAt: 1_000,
        payload: { temp: 61, site: 'north' },
      },
    ]);
    expect(h.effects.find((e) => e.kind === 'decide')).toMatchObject({
      candidate: { to: ['upstream', 'device'] },
    });
  });

  test('a device without a profile: the condition is an evaluation error, not a crash and not a match', () => {
    const h = new Harness(shipped('overheat.yaml'));
    h.feed({ actor: 'stranger', type: 'telemetry', at: 0, data: { temp: 99 } });
    expect(h.actions).toEqual([]);
    expect(h.errors).toEqual([
      {
        kind: 'error',
        scenario: 'overheat',
        actor: 'stranger',
        stage: 'where',
        message: expect.stringMatching(/no profile for stranger/) as unknown,
      },
    ]);
    expect(h.engine.stats().find((s) => s.scenario === 'overheat')).toMatchObject({
      evaluations: 1,
      matches: 0,
      errors: 1,
    });
  });

  test('a payload field that cannot be evaluated is an error, counted, and the action is not sent', () => {
    const h = new Harness(
      rulesFrom({
        'x.yaml':
          'id: x\nwhen: { event: t }\nthen:\n  action: y\n  payload: { site: profile.site, temp: data.temp }',
      }),
      { d2: { maxTemp: 50 } },
    );
    h.feed({ actor: 'd2', type: 't', at: 0, data: { temp: 70 } });
    h.feed({ actor: 'nobody', type: 't', at: 1, data: { temp: 70 } });
    expect(h.actions).toEqual([]);
    expect(h.errors).toMatchObject([
      {
        scenario: 'x',
        actor: 'd2',
        stage: 'payload',
        message: expect.stringMatching(
          /^payload\.site: profile\.site: No such key: site.*\(action y not sent\)$/,
        ) as unknown,
      },
      {
        scenario: 'x',
        actor: 'nobody',
        stage: 'payload',
        message: expect.stringMatching(/^payload\.site: .*no profile for nobody/) as unknown,
      },
    ]);
    expect(h.engine.stats()[0]).toMatchObject({ matches: 2, errors: 2 });
  });

  test('a payload default written in CEL applies, with a profile lacking the field and with no profile', () => {
    const h = new Harness(
      rulesFrom({
        'x.yaml':
          'id: x\nwhen: { event: t }\nthen:\n  action: y\n  payload: { site: \'has(profile.site) ? profile.site : "unknown"\' }',
      }),
      { a: { site: 'north' }, b: {} },
    );
    for (const actor of ['a', 'b', 'c']) h.feed({ actor, type: 't', at: 0 });
    expect(h.actions.map((a) => [a.actor, a.payload.site])).toEqual([
      ['a', 'north'],
      ['b', 'unknown'],
      ['c', 'unknown'],
    ]);
    expect(h.errors).toEqual([]);
  });

  test('integers and doubles compare: bat 3 (JSON), 3n (CBOR) and 3.0 are all below 3.3', () => {
    const h = new Harness(shipped('low-battery.yaml'));
    h.feed({ actor: 'a', type: 'telemetry', at: 0, data: { bat: 3 } });
    h.feed({ actor: 'b', type: 'telemetry', at: 0, data: { bat: 3n } });
    h.feed({ actor: 'c', type: 'telemetry', at: 0, data: { bat: 3.3 } });
    expect(h.actions.map((a) => [a.actor, a.payload])).toEqual([
      ['a', { bat: 3 }],
      ['b', { bat: 3 }],
    ]);
    expect(h.errors).toEqual([]);
  });

  test('a condition that is not a boolean does not hold and is counted', () => {
    const h = new Harness(
      rulesFrom({ 'x.yaml': 'id: x\nwhen: { event: a, where: data.flag }\nthen: { action: y }' }),
    );
    h.feed({ actor: 'd', type: 'a', at: 0, data: { flag: 'yes' } });
    h.feed({ actor: 'd', type: 'a', at: 1, data: { flag: true } });
    expect(h.actions).toHaveLength(1);
    expect(h.errors).toMatchObject([
      { stage: 'where', message: expect.stringMatching(/gives string, not true or false/) as unknown },
    ]);
  });

  test('any: [a, b] fires on either', () => {
    const h = new Harness(
      rulesFrom({ 'x.yaml': 'id: x\nwhen: { any: [door-open, window-open] }\nthen: { action: alarm }' }),
    );
    h.feed({ actor: 'd', type: 'door-open', at: 0 });
    h.feed({ actor: 'd', type: 'window-open', at: 1 });
    h.feed({ actor: 'd', type: 'telemetry', at: 2 });
    expect(h.actions.map((a) => a.eventAt)).toEqual([0, 1]);
  });

  test('action ids are deterministic: same input, same id; another input, another id', () => {
    const run = (): string[] => {
      const h = new Harness(shipped('overheat.yaml', 'low-battery.yaml'), profiles);
      h.feed({ actor: 'd1', type: 'telemetry', at: 5, data: { temp: 61, bat: 3 } });
      h.feed({ actor: 'd1', type: 'telemetry', at: 6, data: { temp: 61, bat: 3 } });
      h.feed({ actor: 'd1', type: 'telemetry', at: 6, data: { bat: 3, temp: 62 } });
      return h.actions.map((a) => a.id);
    };
    const ids = run();
    expect(run()).toEqual(ids);
    expect(ids).toHaveLength(6);
    expect(new Set(ids).size).toBe(6);
  });

  test('data keys in another order give the same id', () => {
    const ids = [
      { temp: 61, bat: 3 },
      { bat: 3, temp: 61 },
    ].map((data) => {
      const h = new Harness(shipped('overheat.yaml'), profiles);
      h.feed({ actor: 'd1', type: 'telemetry', at: 5, data });
      return h.actions[0]?.id;
    });
    expect(ids[0]).toBeDefined();
    expect(ids[0]).toBe(ids[1]);
  });
});

describe('absent: any … for (device-offline)', () => {
  const profiles = { d1: { site: 'north' } };

  test('a device silent for 5 minutes is reported once, at the deadline', () => {
    const h = new Harness(shipped('device-offline.yaml'), profiles);
    h.feed({ actor: 'd1', type: 'heartbeat', at: 0 });
    h.advanceTo(299_999);
    expect(h.actions).toEqual([]);
    h.advanceTo(300_000);
    expect(h.actions).toMatchObject([
      {
        scenario: 'device-offline',
        actor: 'd1',
        eventAt: 300_000,
        decidedAt: 300_000,
        payload: { lastSeen: 0, site: 'north' },
      },
    ]);
    expect(h.actions[0]?.late).toBeUndefined();
    h.advanceTo(900_000);
    expect(h.actions).toHaveLength(1);
  });

  test('each event from the device restarts the silence; the next silence is reported again', () => {
    const h = new Harness(shipped('device-offline.yaml'), profiles);
    h.feed({ actor: 'd1', type: 'telemetry', at: 0 });
    h.feed({ actor: 'd1', type: 'telemetry', at: 200_000 });
    h.feed({ actor: 'd1', type: 'disconnected', at: 250_000, source: 'broker' });
    h.advanceTo(549_999);
    expect(h.actions).toEqual([]);
    h.advanceTo(550_000);
    h.feed({ actor: 'd1', type: 'connected', at: 700_000, source: 'broker' });
    h.advanceTo(2 * HOUR);
    expect(h.actions.map((a) => [a.eventAt, a.payload.lastSeen])).toEqual([
      [550_000, 250_000],
      [1_000_000, 700_000],
    ]);
  });

  test('events the cloud sends about a device, and business events, are not signs of life', () => {
    const h = new Harness(shipped('device-offline.yaml'), profiles);
    h.feed({ actor: 'd1', type: 'telemetry', at: 0 });
    h.feed({ actor: 'd1', type: 'provisioned', at: 100_000, source: 'cloud' });
    h.feed({ actor: 'd1', type: 'offline', at: 200_000, source: 'engine' });
    h.feed({ actor: 'ghost', type: 'provisioned', at: 0, source: 'cloud' });
    h.advanceTo(HOUR);
    expect(h.actions.map((a) => [a.actor, a.eventAt])).toEqual([['d1', 300_000]]);
  });

  test('an event exactly at the deadline keeps the device online', () => {
    const h = new Harness(shipped('device-offline.yaml'), profiles);
    h.feed({ actor: 'd1', type: 'telemetry', at: 0 });
    h.feed({ actor: 'd1', type: 'telemetry', at: 300_000 });
    h.advanceTo(599_999);
    expect(h.actions).toEqual([]);
    h.advanceTo(600_000);
    expect(h.actions).toHaveLength(1);
  });

  test('it emits the business event offline for the device, in the same step', () => {
    const h = new Harness(shipped('device-offline.yaml'), profiles);
    h.feed({ actor: 'd1', type: 'telemetry', at: 0 }).advanceTo(300_000);
    expect(h.emitted).toEqual([{ actor: 'd1', type: 'offline', at: 300_000, data: {}, source: 'engine' }]);
  });

  test('a timer fired early is put back, not honoured; one fired late is marked late', () => {
    const h = new Harness(shipped('device-offline.yaml'), profiles);
    h.feed({ actor: 'd1', type: 'telemetry', at: 0 });
    const key = h.timers.peek()?.key ?? '';
    h.timers.clear();
    expect(h.fire(key, 299_999)).toEqual([{ kind: 'schedule', timer: key, actor: 'd1', dueAt: 300_000 }]);
    expect(h.actions).toEqual([]);
    h.fire(key, 305_000);
    expect(h.actions).toMatchObject([{ eventAt: 300_000, decidedAt: 305_000, late: true }]);
    // A stale timer (the state moved on) does nothing.
    expect(h.fire(key, 900_000)).toEqual([]);
  });
});

describe('absent: <type> … for, and absence per group', () => {
  test('silence of one event type: other events do not restart it', () => {
    const h = new Harness(
      rulesFrom({
        'x.yaml': 'id: no-heartbeat\nwhen: { absent: heartbeat, for: 10m }\nthen: { action: check }',
      }),
    );
    h.feed({ actor: 'd', type: 'telemetry', at: 0 });
    h.advanceTo(HOUR);
    expect(h.actions).toEqual([]);
    h.feed({ actor: 'd', type: 'heartbeat', at: HOUR });
    h.feed({ actor: 'd', type: 'telemetry', at: HOUR + 5 * MIN });
    h.advanceTo(2 * HOUR);
    expect(h.actions).toMatchObject([{ scenario: 'no-heartbeat', actor: 'd', eventAt: HOUR + 10 * MIN }]);
  });

  test('absence per site: fires when no device of the site sent anything, for the last one heard', () => {
    const h = new Harness(
      rulesFrom({
        'x.yaml':
          'id: site-silent\nwhen: { absent: any, for: 5m, by: profile.site }\nthen:\n  action: visit\n  payload: { site: group, lastSeen: last.at }',
      }),
      { a: { site: 'north' }, b: { site: 'north' } },
    );
    h.feed({ actor: 'a', type: 'telemetry', at: 0 });
    h.feed({ actor: 'b', type: 'telemetry', at: 2 * MIN });
    h.advanceTo(HOUR);
    expect(h.actions).toMatchObject([
      {
        scenario: 'site-silent',
        actor: 'b',
        group: 'north',
        eventAt: 7 * MIN,
        payload: { site: 'north', lastSeen: 2 * MIN },
      },
    ]);
  });
});

describe('then', () => {
  test('a scenario cooldown travels with its candidate, for the arbiter', () => {
    const h = new Harness(
      rulesFrom({ 'x.yaml': 'id: x\ncooldown: 15m\nwhen: { event: t }\nthen: { action: y, to: device }' }),
    );
    h.feed({ actor: 'd', type: 't', at: 0 });
    expect(h.effects.find((e) => e.kind === 'decide')).toMatchObject({
      candidate: { cooldownMs: 15 * MIN, to: ['device'] },
    });
  });

  test('emitted data that cannot be evaluated is an error, counted; the event is not emitted', () => {
    const h = new Harness(
      rulesFrom({
        'x.yaml':
          'id: x\nwhen: { event: t }\nthen:\n  emit: { event: u, data: { v: data.missing, w: actor } }',
      }),
    );
    h.feed({ actor: 'd', type: 't', at: 3 });
    expect(h.emitted).toEqual([]);
    expect(h.errors).toMatchObject([
      {
        scenario: 'x',
        actor: 'd',
        stage: 'emit',
        message: expect.stringMatching(/^emit\.v: data\.missing: .*\(event u not sent\)$/) as unknown,
      },
    ]);
  });

  test("emit.actor names whose event it is, and the scenarios it feeds see that actor's profile", () => {
    const h = new Harness(
      rulesFrom({
        'x.yaml': 'id: x\nwhen: { event: paired }\nthen:\n  emit: { event: owner-paired, actor: data.owner }',
        'y.yaml':
          'id: y\nwhen: { event: owner-paired }\nthen:\n  action: thank\n  payload: { name: profile.name }',
      }),
      { 'cust-7': { name: 'Ada' } },
    );
    h.feed({ actor: 'dev-1', type: 'paired', at: 0, data: { owner: 'cust-7' } });
    h.feed({ actor: 'dev-2', type: 'paired', at: 1, data: {} });
    expect(h.emitted).toMatchObject([{ actor: 'cust-7', type: 'owner-paired' }]);
    expect(h.actions).toMatchObject([{ scenario: 'y', actor: 'cust-7', payload: { name: 'Ada' } }]);
    expect(h.errors).toMatchObject([{ scenario: 'x', actor: 'dev-2', stage: 'emit' }]);
  });
});

describe('sequence', () => {
  test('provisioned and never connected within 24 hours escalates at the deadline', () => {
    const h = new Harness(shipped('not-registered.yaml'));
    h.feed({ actor: 'd9', type: 'provisioned', at: 1_000, source: 'cloud' });
    h.advanceTo(1_000 + 24 * HOUR - 1);
    expect(h.actions).toEqual([]);
    h.advanceTo(1_000 + 24 * HOUR);
    expect(h.actions).toMatchObject([
      { scenario: 'provisioned-not-registered', actor: 'd9', eventAt: 1_000 + 24 * HOUR },
    ]);
  });

  test('a connection before the deadline ends the match quietly', () => {
    const h = new Harness(shipped('not-registered.yaml'));
    h.feed({ actor: 'd9', type: 'provisioned', at: 0, source: 'cloud' });
    h.feed({ actor: 'd9', type: 'connected', at: 23 * HOUR, source: 'broker' });
    h.advanceTo(48 * HOUR);
    expect(h.actions).toEqual([]);
    expect(h.timers.size).toBe(0);
  });

  test('a connection exactly at the deadline is in time (the event wins)', () => {
    const h = new Harness(shipped('not-registered.yaml'));
    h.feed({ actor: 'd9', type: 'provisioned', at: 0, source: 'cloud' });
    h.feed({ actor: 'd9', type: 'connected', at: 24 * HOUR, source: 'broker' });
    h.advanceTo(48 * HOUR);
    expect(h.actions).toEqual([]);
  });

  test('a new first-step event while a match is pending starts it afresh', () => {
    const h = new Harness(shipped('not-registered.yaml'));
    h.feed({ actor: 'd9', type: 'provisioned', at: 0, source: 'cloud' });
    h.feed({ actor: 'd9', type: 'provisioned', at: 10 * HOUR, source: 'cloud' });
    h.advanceTo(34 * HOUR - 1);
    expect(h.actions).toEqual([]);
    h.advanceTo(34 * HOUR);
    expect(h.actions).toMatchObject([{ eventAt: 34 * HOUR }]);
  });

  test('a connection of another device does not count', () => {
    const h = new Harness(shipped('not-registered.yaml'));
    h.feed({ actor: 'd9', type: 'provisioned', at: 0, source: 'cloud' });
    h.feed({ actor: 'd8', type: 'connected', at: HOUR, source: 'broker' });
    h.advanceTo(24 * HOUR);
    expect(h.actions.map((a) => a.actor)).toEqual(['d9']);
  });

  const threeSteps = rulesFrom({
    'intrusion.yaml': [
      'id: intrusion',
      'when:',
      '  sequence:',
      '    - event: door-open',
      '      where: data.zone == "vault"',
      '    - event: motion',
      '      within: 30s',
      '    - absent: badge',
      '      within: 1m',
      'then:',
      '  action: alarm',
      '  payload:',
      '    zone: last.data.zone',
      '    sensor: last.data.sensor',
      '    lastAt: last.at',
    ].join('\n'),
  });

  test('three steps, where on a step, within between steps, an absent step last', () => {
    const h = new Harness(threeSteps);
    h.feed({ actor: 'd', type: 'door-open', at: 0, data: { zone: 'vault' } });
    h.feed({ actor: 'd', type: 'motion', at: 30_000, data: { sensor: 'pir-2' } });
    h.advanceTo(90_000);
    expect(h.actions).toMatchObject([
      { scenario: 'intrusion', eventAt: 90_000, payload: { zone: 'vault', sensor: 'pir-2', lastAt: 30_000 } },
    ]);
  });

  test('a step that comes too late, or fails its where, does not advance the match', () => {
    const h = new Harness(threeSteps);
    h.feed({ actor: 'a', type: 'door-open', at: 0, data: { zone: 'vault' } });
    h.feed({ actor: 'a', type: 'motion', at: 30_001 });
    h.feed({ actor: 'b', type: 'door-open', at: 0, data: { zone: 'lobby' } });
    h.feed({ actor: 'b', type: 'motion', at: 1_000 });
    h.feed({ actor: 'c', type: 'door-open', at: 0, data: { zone: 'vault' } });
    h.feed({ actor: 'c', type: 'motion', at: 1_000 });
    h.feed({ actor: 'c', type: 'badge', at: 50_000 });
    h.advanceTo(HOUR);
    expect(h.actions).toEqual([]);
  });

  test('an absent step in the middle passes at its deadline and the next step follows', () => {
    const h = new Harness(
      rulesFrom({
        'x.yaml': [
          'id: unattended',
          'when:',
          '  sequence:',
          '    - event: start',
          '    - absent: ack',
          '      within: 10s',
          '    - event: done',
          '      within: 10s',
          'then: { action: review }',
        ].join('\n'),
      }),
    );
    h.feed({ actor: 'a', type: 'start', at: 0 });
    h.feed({ actor: 'a', type: 'done', at: 20_000 });
    h.feed({ actor: 'b', type: 'start', at: 0 });
    h.feed({ actor: 'b', type: 'done', at: 20_001 });
    h.feed({ actor: 'c', type: 'start', at: 0 });
    h.feed({ actor: 'c', type: 'done', at: 5_000 });
    h.advanceTo(HOUR);
    expect(h.actions.map((a) => [a.actor, a.eventAt])).toEqual([['a', 20_000]]);
  });

  test('by groups a sequence by any expression, and the action carries the group', () => {
    const h = new Harness(
      rulesFrom({
        'x.yaml': [
          'id: order-stuck',
          'when:',
          '  by: data.order',
          '  sequence:',
          '    - event: paid',
          '    - absent: shipped',
          '      within: 1h',
          'then: { action: chase }',
        ].join('\n'),
      }),
    );
    h.feed({ actor: 'shop', type: 'paid', at: 0, data: { order: 'o1' } });
    h.feed({ actor: 'shop', type: 'paid', at: 0, data: { order: 'o2' } });
    h.feed({ actor: 'warehouse', type: 'shipped', at: 30 * MIN, data: { order: 'o1' } });
    h.advanceTo(2 * HOUR);
    expect(h.actions).toMatchObject([{ scenario: 'order-stuck', group: 'o2', actor: 'shop', eventAt: HOUR }]);
  });
});

describe('count / within / distinct', () => {
  test('three hot readings within two minutes fire once; the fourth does not fire again', () => {
    const h = new Harness(shipped('overheat-sustained.yaml'));
    for (const [at, temp] of [
      [0, 81],
      [10_000, 79],
      [30_000, 85],
      [60_000, 90],
      [70_000, 95],
    ] as const)
      h.feed({ actor: 'd', type: 'telemetry', at, data: { temp } });
    expect(h.actions).toMatchObject([{ scenario: 'overheat-sustained', eventAt: 60_000 }]);
    h.feed({ actor: 'd', type: 'telemetry', at: 80_000, data: { temp: 95 } });
    h.feed({ actor: 'd', type: 'telemetry', at: 90_000, data: { temp: 95 } });
    expect(h.actions.map((a) => a.eventAt)).toEqual([60_000, 90_000]);
  });

  test('the window is inclusive: exactly two minutes apart still counts, a millisecond more does not', () => {
    const run = (third: number): number => {
      const h = new Harness(shipped('overheat-sustained.yaml'));
      for (const at of [0, 60_000, third]) h.feed({ actor: 'd', type: 'telemetry', at, data: { temp: 90 } });
      return h.actions.length;
    };
    expect(run(120_000)).toBe(1);
    expect(run(120_001)).toBe(0);
  });

  test('groups are per device', () => {
    const h = new Harness(shipped('overheat-sustained.yaml'));
    for (const actor of ['a', 'b', 'a', 'b', 'c'])
      h.feed({ actor, type: 'telemetry', at: 0, data: { temp: 90 } });
    expect(h.actions).toEqual([]);
  });

  const sites = {
    d1: { site: 'north' },
    d2: { site: 'north' },
    d3: { site: 'north' },
    d4: { site: 'south' },
  };

  test('distinct counts different devices of one site; the action carries the site as group', () => {
    const h = new Harness(shipped('site-outage.yaml'), sites);
    for (const [actor, at] of [
      ['d1', 0],
      ['d1', 1_000],
      ['d4', 2_000],
      ['d2', 3_000],
      ['d3', 4_000],
    ] as const)
      h.feed({ actor, type: 'offline', at, source: 'engine' });
    expect(h.actions).toMatchObject([
      { scenario: 'site-outage', group: 'north', actor: 'd3', eventAt: 4_000, payload: { site: 'north' } },
    ]);
  });

  test('devices offline more than 10 minutes apart do not make an outage', () => {
    const h = new Harness(shipped('site-outage.yaml'), sites);
    h.feed({ actor: 'd1', type: 'offline', at: 0, source: 'engine' });
    h.feed({ actor: 'd2', type: 'offline', at: 5 * MIN, source: 'engine' });
    h.feed({ actor: 'd3', type: 'offline', at: 10 * MIN + 1, source: 'engine' });
    expect(h.actions).toEqual([]);
    h.feed({ actor: 'd1', type: 'offline', at: 11 * MIN, source: 'engine' });
    expect(h.actions).toMatchObject([{ actor: 'd1', eventAt: 11 * MIN }]);
  });

  test('an event whose group cannot be computed is left out and counted, never a group of its own', () => {
    const h = new Harness(shipped('site-outage.yaml'), {
      d1: { site: 'north' },
      d2: { site: 'north' },
      d5: {},
    });
    h.feed({ actor: 'd1', type: 'offline', at: 0, source: 'engine' });
    h.feed({ actor: 'x', type: 'offline', at: 1, source: 'engine' });
    h.feed({ actor: 'd5', type: 'offline', at: 2, source: 'engine' });
    h.feed({ actor: 'd2', type: 'offline', at: 3, source: 'engine' });
    expect(h.actions).toEqual([]);
    expect(h.errors.map((e) => [e.actor, e.stage])).toEqual([
      ['x', 'by'],
      ['d5', 'by'],
    ]);
    expect(h.engine.stats().find((s) => s.scenario === 'site-outage')).toMatchObject({
      groups: 1,
      errors: 2,
    });
  });

  test('three devices of a site going silent: three device-offline, one site-outage, in the same steps', () => {
    const h = new Harness(shipped('device-offline.yaml', 'site-outage.yaml'), sites);
    h.feed({ actor: 'd1', type: 'telemetry', at: 0 });
    h.feed({ actor: 'd2', type: 'telemetry', at: 60_000 });
    h.feed({ actor: 'd3', type: 'telemetry', at: 120_000 });
    h.feed({ actor: 'd4', type: 'telemetry', at: 120_000 });
    h.advanceTo(HOUR);
    expect(h.actions.map((a) => [a.scenario, a.actor, a.group, a.eventAt])).toEqual([
      ['device-offline', 'd1', undefined, 300_000],
      ['device-offline', 'd2', undefined, 360_000],
      ['device-offline', 'd3', undefined, 420_000],
      ['site-outage', 'd3', 'north', 420_000],
      ['device-offline', 'd4', undefined, 420_000],
    ]);
  });

  test('the threshold template: humidity above 85 twice within 5 minutes', () => {
    const h = new Harness(shipped('humidity-high.yaml'));
    h.feed({ actor: 'd', type: 'telemetry', at: 0, data: { hum: 86 } });
    h.feed({ actor: 'd', type: 'telemetry', at: 60_000, data: { hum: 85 } });
    h.feed({ actor: 'd', type: 'telemetry', at: 300_000, data: { hum: 90 } });
    expect(h.actions).toMatchObject([
      { scenario: 'humidity-high', action: 'check-enclosure', eventAt: 300_000 },
    ]);
  });
});

describe('window / aggregate / having (hot-average)', () => {
  test('fires on each reading while the 10-minute average of at least 5 readings is above 70', () => {
    const h = new Harness(shipped('hot-average.yaml'));
    const temps = [72, 75, 69, 71, 74, 60, 80];
    temps.forEach((temp, i) => h.feed({ actor: 'd', type: 'telemetry', at: i * MIN, data: { temp } }));
    // 5 readings: avg 72.2 → fires; 6: 70.17 → fires; 7: 71.57 → fires.
    expect(h.actions.map((a) => [a.eventAt, Math.round((a.payload.avgTemp as number) * 100) / 100])).toEqual([
      [4 * MIN, 72.2],
      [5 * MIN, 70.17],
      [6 * MIN, 71.57],
    ]);
  });

  test('readings older than the window drop out', () => {
    const h = new Harness(shipped('hot-average.yaml'));
    for (const at of [0, MIN, 2 * MIN, 3 * MIN])
      h.feed({ actor: 'd', type: 'telemetry', at, data: { temp: 90 } });
    // The reading at 0 is now more than 10 minutes old: four remain.
    h.feed({ actor: 'd', type: 'telemetry', at: 10 * MIN + 1, data: { temp: 90 } });
    expect(h.actions).toEqual([]);
    // The reading at 1 minute is exactly 10 minutes old and still counts: five.
    h.feed({ actor: 'd', type: 'telemetry', at: 11 * MIN, data: { temp: 90 } });
    expect(h.actions.map((a) => a.eventAt)).toEqual([11 * MIN]);
  });

  test('a reading without a number is left out of the window and counted', () => {
    const h = new Harness(shipped('hot-average.yaml'));
    h.feed({ actor: 'd', type: 'telemetry', at: 0, data: { hum: 40 } });
    h.feed({ actor: 'd', type: 'telemetry', at: 1, data: { temp: 'hot' } });
    expect(h.errors.map((e) => e.stage)).toEqual(['aggregate', 'aggregate']);
    expect(h.engine.stats().find((s) => s.scenario === 'hot-average')?.groups).toBe(0);
  });

  test('count, sum, avg, min, max, first, last', () => {
    const h = new Harness(
      rulesFrom({
        'x.yaml': [
          'id: stats',
          'when:',
          '  event: reading',
          '  window: 1m',
          '  aggregate: { n: count(), s: sum(data.v), a: avg(data.v), lo: min(data.v), hi: max(data.v), f: first(data.v), l: last(data.v) }',
          '  having: n == 3',
          'then:',
          '  action: report',
          '  payload: { n: n, s: s, a: a, lo: lo, hi: hi, f: f, l: l }',
        ].join('\n'),
      }),
    );
    for (const [at, v] of [
      [0, 4],
      [1_000, 10n],
      [2_000, 1.5],
    ] as const)
      h.feed({ actor: 'd', type: 'reading', at, data: { v } });
    expect(h.actions).toMatchObject([
      { payload: { n: 3, s: 15.5, a: 15.5 / 3, lo: 1.5, hi: 10, f: 4, l: 1.5 } },
    ]);
  });
});

describe('all: [...] within (customer-created)', () => {
  const rules = (): ReturnType<typeof rulesFrom> =>
    rulesFrom({
      'customer-created.yaml': readFileSync(join(shippedRulesDir(), 'customer-created.yaml'), 'utf8'),
      'welcome.yaml':
        'id: welcome\nwhen: { event: customer-created }\nthen:\n  action: send-welcome\n  payload: { plan: data.plan }',
    });

  test.each([
    ['account-created', 'contract-created', 'device-assigned'],
    ['device-assigned', 'contract-created', 'account-created'],
    ['contract-created', 'account-created', 'device-assigned'],
  ])(
    'in any order (%s, %s, %s) they make one business event, seen by other scenarios in the same step',
    (...types) => {
      const h = new Harness(rules());
      types.forEach((type, i) =>
        h.feed({
          actor: 'cust-1',
          type,
          at: i * 20_000,
          source: 'cloud',
          data: type === 'contract-created' ? { plan: 'gold' } : {},
        }),
      );
      expect(h.emitted).toEqual([
        { actor: 'cust-1', type: 'customer-created', at: 40_000, data: { plan: 'gold' }, source: 'engine' },
      ]);
      expect(h.actions).toMatchObject([
        { scenario: 'welcome', actor: 'cust-1', eventAt: 40_000, payload: { plan: 'gold' } },
      ]);
    },
  );

  test('records more than a minute apart do not combine; the group starts afresh after firing', () => {
    const h = new Harness(rules());
    h.feed({ actor: 'c', type: 'account-created', at: 0, source: 'cloud' });
    h.feed({ actor: 'c', type: 'contract-created', at: 30_000, source: 'cloud', data: { plan: 'basic' } });
    h.feed({ actor: 'c', type: 'device-assigned', at: 60_001, source: 'cloud' });
    expect(h.emitted).toEqual([]);
    h.feed({ actor: 'c', type: 'account-created', at: 70_000, source: 'cloud' });
    expect(h.emitted.map((e) => e.at)).toEqual([70_000]);
    h.feed({ actor: 'c', type: 'device-assigned', at: 71_000, source: 'cloud' });
    expect(h.emitted).toHaveLength(1);
  });
});

describe('emit chains', () => {
  const chain = (depth: number): Record<string, string> => {
    const files: Record<string, string> = {};
    for (let i = 0; i < depth; i++)
      files[`s${i}.yaml`] = `id: s${i}\nwhen: { event: e${i} }\nthen: { emit: e${i + 1} }`;
    files['end.yaml'] = `id: end\nwhen: { event: e${depth} }\nthen: { action: done }`;
    return files;
  };

  test('emitted events flow through the chain within one step', () => {
    const h = new Harness(rulesFrom(chain(4)));
    h.feed({ actor: 'd', type: 'e0', at: 7 });
    expect(h.emitted.map((e) => e.type)).toEqual(['e1', 'e2', 'e3', 'e4']);
    expect(h.actions).toMatchObject([{ scenario: 'end', eventAt: 7 }]);
  });

  test('the runtime depth limit stops a chain deeper than allowed, as an error', () => {
    const h = new Harness(rulesFrom(chain(4)), {}, { gateway: 'g', maxEmitDepth: 2 });
    h.feed({ actor: 'd', type: 'e0', at: 7 });
    expect(h.actions).toEqual([]);
    expect(h.errors).toMatchObject([
      { scenario: 's2', stage: 'emit', message: expect.stringMatching(/deeper than 2/) as unknown },
    ]);
  });

  test("an event for another actor is not fed back within the step: it is an input of its own, with a deterministic id, judged by that actor's profile", () => {
    const rules = rulesFrom({
      'x.yaml': 'id: x\nwhen: { event: paired }\nthen:\n  emit: { event: owner-paired, actor: data.owner }',
      'y.yaml':
        'id: y\nwhen: { event: owner-paired }\nthen:\n  action: thank\n  payload: { name: profile.name }',
    });
    const paired = {
      actor: 'dev-1',
      type: 'paired',
      at: 5,
      data: { owner: 'cust-7' },
      source: 'device' as const,
    };
    const emittedBy = (effects: readonly Effect[]): EmittedInput[] =>
      effects.flatMap((e) => (e.kind === 'emit' && e.input ? [e.input] : []));
    const engine = new Engine(rules, { gateway: 'g' });
    const effects = engine.onEvent(paired, { name: 'the device' });
    expect(effects.filter((e) => e.kind === 'decide')).toEqual([]);
    const [input] = emittedBy(effects);
    expect(input).toMatchObject({ depth: 1, event: { actor: 'cust-7', type: 'owner-paired', at: 5 } });
    // The same decision made again (a recovery, a replay) emits the same id; another input another one.
    expect(emittedBy(new Engine(rules, { gateway: 'g' }).onEvent(paired, undefined))[0]?.id).toBe(input?.id);
    expect(emittedBy(engine.onEvent({ ...paired, at: 6 }, undefined))[0]?.id).not.toBe(input?.id);
    const decided = engine.onEmitted(input as EmittedInput, { name: 'Ada' });
    expect(decided).toMatchObject([
      { kind: 'decide', candidate: { action: { actor: 'cust-7', payload: { name: 'Ada' } } } },
    ]);
  });

  test('the depth limit holds across actors: an emitted event applied as an input counts on from its depth', () => {
    const files: Record<string, string> = {};
    for (let i = 0; i < 4; i++)
      files[`s${i}.yaml`] =
        `id: s${i}\nwhen: { event: e${i} }\nthen: { emit: { event: e${i + 1}, actor: '"a${i + 1}"' } }`;
    files['end.yaml'] = 'id: end\nwhen: { event: e4 }\nthen: { action: done }';
    const deep = new Harness(rulesFrom(files), {}, { gateway: 'g', maxEmitDepth: 2 });
    deep.feed({ actor: 'a0', type: 'e0', at: 7 });
    expect(deep.emitted.map((e) => e.actor)).toEqual(['a1', 'a2', 'a3']);
    expect(deep.actions).toEqual([]);
    expect(deep.errors).toMatchObject([
      {
        scenario: 's2',
        actor: 'a2',
        message: expect.stringMatching(/e3 not applied: .*deeper than 2/) as unknown,
      },
    ]);
    const enough = new Harness(rulesFrom(files));
    enough.feed({ actor: 'a0', type: 'e0', at: 7 });
    expect(enough.actions).toMatchObject([{ scenario: 'end', actor: 'a4', eventAt: 7 }]);
  });

  test('a grouped scenario emits for its group key', () => {
    const h = new Harness(
      rulesFrom({
        'x.yaml':
          'id: x\nwhen: { event: alarm, by: data.building, count: 2 }\nthen: { emit: { event: building-alarm, data: { n: "2" } } }',
      }),
    );
    h.feed({ actor: 'a', type: 'alarm', at: 0, data: { building: 'b7' } });
    h.feed({ actor: 'b', type: 'alarm', at: 1, data: { building: 'b7' } });
    expect(h.emitted).toEqual([
      { actor: 'b7', type: 'building-alarm', at: 1, data: { n: 2 }, source: 'engine' },
    ]);
  });
});

describe('state: stats, index, snapshot, restore, prune', () => {
  const profiles = { d1: { site: 'north', maxTemp: 50 }, d2: { site: 'north' }, d3: { site: 'north' } };

  test('an event costs nothing for scenarios that do not listen to it', () => {
    const h = new Harness(shipped('overheat.yaml', 'site-outage.yaml', 'device-offline.yaml'), profiles);
    h.feed({ actor: 'd1', type: 'heartbeat', at: 0 });
    expect(Object.fromEntries(h.engine.stats().map((s) => [s.scenario, s.evaluations]))).toEqual({
      'device-offline': 1,
      overheat: 0,
      'site-outage': 0,
    });
  });

  test('stats count evaluations, matches, errors and the last firing', () => {
    const h = new Harness(shipped('overheat.yaml'), profiles);
    h.feed({ actor: 'd1', type: 'telemetry', at: 10, data: { temp: 60 } });
    h.feed({ actor: 'd1', type: 'telemetry', at: 20, data: { temp: 40 } });
    h.feed({ actor: 'zz', type: 'telemetry', at: 30, data: { temp: 60 } });
    expect(h.engine.stats()).toEqual([
      { scenario: 'overheat', evaluations: 3, matches: 1, errors: 1, lastFiredAt: 10, groups: 0 },
    ]);
  });

  test('a snapshot restored into a new engine continues exactly where the old one was', () => {
    const rules = shipped(
      'device-offline.yaml',
      'site-outage.yaml',
      'overheat-sustained.yaml',
      'hot-average.yaml',
      'not-registered.yaml',
      'customer-created.yaml',
    );
    const first = (h: Harness): Harness =>
      h
        .feed({ actor: 'd1', type: 'telemetry', at: 0, data: { temp: 90 } })
        .feed({ actor: 'd1', type: 'telemetry', at: 1_000, data: { temp: 90 } })
        .feed({ actor: 'd2', type: 'telemetry', at: 2_000, data: { temp: 75 } })
        .feed({ actor: 'd9', type: 'provisioned', at: 3_000, source: 'cloud' })
        .feed({ actor: 'c', type: 'account-created', at: 4_000, source: 'cloud' })
        .advanceTo(301_000);
    const second = (h: Harness): Harness =>
      h
        .feed({ actor: 'd1', type: 'telemetry', at: 302_000, data: { temp: 90 } })
        .feed({ actor: 'd3', type: 'telemetry', at: 303_000, data: { temp: 90 } })
        .advanceTo(30 * HOUR);

    const straight = second(first(new Harness(rules, profiles)));

    const before = first(new Harness(rules, profiles));
    const state = JSON.parse(JSON.stringify(before.engine.snapshot())) as ReturnType<Engine['snapshot']>;
    const resumed = new Harness(rules, profiles).restore(state);
    expect(resumed.engine.pendingTimers()).toEqual(before.engine.pendingTimers());
    expect(resumed.timers.snapshot()).toEqual(before.timers.snapshot());
    second(resumed);

    const tail = straight.actions.slice(before.actions.length);
    expect(tail.length).toBeGreaterThan(2);
    expect(resumed.actions).toEqual(tail);
    // The counters too: evaluations of events and of timers, matches, the last firing.
    expect(resumed.engine.stats()).toEqual(straight.engine.stats());
  });

  test('a rules swap keeps the counters of the scenarios it keeps and starts the changed ones at zero', () => {
    const v1 = rulesFrom({
      'a.yaml': 'id: a\nwhen: { event: t, count: 2 }\nthen: { action: x }',
      'b.yaml': 'id: b\nwhen: { event: t, count: 2 }\nthen: { action: y }',
    });
    const v2 = rulesFrom({
      'a.yaml': 'id: a\nwhen: { event: t, count: 2 }\nthen: { action: x }',
      'b.yaml': 'id: b\nwhen: { event: t, count: 3 }\nthen: { action: y }',
    });
    const event = (at: number): Event => ({ actor: 'd', type: 't', at, data: {}, source: 'device' });
    const old = new Engine(v1, { gateway: 'gw' });
    old.onEvent(event(0), undefined);
    old.onEvent(event(1), undefined);
    const swapped = Engine.continueFrom(v2, { gateway: 'gw' }, old);
    swapped.onEvent(event(2), undefined);
    expect(swapped.stats().map((s) => [s.scenario, s.evaluations, s.matches])).toEqual([
      ['a', 3, 1],
      ['b', 1, 0],
    ]);
  });

  test('a changed scenario starts empty after a restore; an unchanged one keeps its state', () => {
    const v1 = rulesFrom({
      'a.yaml': 'id: a\nwhen: { event: t, count: 2 }\nthen: { action: x }',
      'b.yaml': 'id: b\nwhen: { event: t, count: 2 }\nthen: { action: y }',
    });
    const v2 = rulesFrom({
      'a.yaml': 'id: a\npriority: 99\nwhen: { event: t, count: 2 }\nthen: { action: x2 }',
      'b.yaml': 'id: b\nwhen: { event: t, count: 3 }\nthen: { action: y }',
    });
    const h = new Harness(v1).feed({ actor: 'd', type: 't', at: 0 });
    const after = new Harness(v2).restore(h.engine.snapshot());
    after.feed({ actor: 'd', type: 't', at: 1 });
    expect(after.actions.map((a) => a.action)).toEqual(['x2']);
  });

  test('prune forgets windows that can no longer match, keeps silence timers', () => {
    const h = new Harness(shipped('overheat-sustained.yaml', 'device-offline.yaml'));
    h.feed({ actor: 'd', type: 'telemetry', at: 0, data: { temp: 90 } });
    h.engine.prune(120_000);
    expect(h.engine.stats().map((s) => [s.scenario, s.groups])).toEqual([
      ['overheat-sustained', 1],
      ['device-offline', 1],
    ]);
    h.engine.prune(120_001);
    expect(h.engine.stats().map((s) => [s.scenario, s.groups])).toEqual([
      ['overheat-sustained', 0],
      ['device-offline', 1],
    ]);
  });
});
