import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { Arbiter } from '../../src/actions/index.js';
import { Engine } from '../../src/engine/index.js';
import { RulesInForce, VirtualRun } from '../../src/runtime/index.js';
import type { Action, Event, Profile } from '../../src/shared/index.js';
import { rulesFrom } from './engine-harness.js';

const SEC = 1_000;

/**
 * A few scenarios of every kind that keeps state and has a horizon, with windows on the 5-second grid the events
 * come on, so that events land exactly on window edges and deadlines.
 */
const rules = rulesFrom({
  'policy.yaml': 'policy:\n  cooldown: 20s\n',
  'hot-count.yaml': `
id: hot-count
when: { event: telemetry, where: data.temp > 80, count: 3, within: 30s }
then: { action: check-fan, to: [upstream] }
`,
  'site-count.yaml': `
id: site-count
when: { event: offline, by: profile.site, distinct: actor, count: 2, within: 20s }
then: { action: site-outage, to: [upstream] }
`,
  'plain-count.yaml': `
id: plain-count
when: { event: offline, count: 4 }
then: { action: flaky, to: [upstream] }
`,
  'hot-average.yaml': `
id: hot-average
when:
  event: telemetry
  window: 40s
  aggregate: { avgTemp: avg(data.temp), n: count(), low: min(data.temp) }
  having: avgTemp > 75 && n >= 2
then: { action: maintenance, to: [upstream], payload: { avgTemp: avgTemp, low: low } }
`,
  'site-average.yaml': `
id: site-average
when:
  event: telemetry
  by: profile.site
  window: 15s
  aggregate: { total: sum(data.temp) }
  having: total > 160
then: { action: site-hot, to: [upstream] }
`,
  'together.yaml': `
id: together
when: { all: [account, contract, assigned], by: profile.site, within: 20s }
then: { action: onboard, to: [upstream] }
`,
  'steps.yaml': `
id: steps
when:
  sequence:
    - event: account
    - event: contract
      within: 15s
    - event: assigned
      within: 10s
then: { action: stepped, to: [upstream] }
`,
  'quiet.yaml': `
id: quiet
when:
  sequence:
    - event: contract
    - absent: assigned
      within: 20s
    - event: telemetry
      within: 15s
then: { action: quiet-then-telemetry, to: [upstream] }
`,
});

const profiles: Record<string, Profile> = {
  d1: { site: 's1' },
  d2: { site: 's1' },
  d3: { site: 's2' },
  d4: { site: 's2' },
};

const TYPES = ['telemetry', 'offline', 'account', 'contract', 'assigned'];

interface Step {
  /** Seconds after the previous event, on a 5-second grid. */
  gap: number;
  actor: string;
  type: string;
  temp: number;
  /** Where a housekeeping pass runs before this event, as a share of the gap (none: no pass). */
  pruneAt: number | undefined;
}

const step: fc.Arbitrary<Step> = fc.record({
  gap: fc.integer({ min: 0, max: 5 }).map((n) => n * 5),
  actor: fc.constantFrom('d1', 'd2', 'd3', 'd4'),
  type: fc.constantFrom(...TYPES, 'telemetry', 'telemetry'),
  temp: fc.integer({ min: 60, max: 100 }),
  pruneAt: fc.option(fc.constantFrom(0, 0.5, 1), { nil: undefined }),
});

/** What a run decided and emitted, in order. */
interface Outcome {
  actions: Array<Pick<Action, 'id' | 'scenario' | 'actor' | 'eventAt' | 'payload'> & { suppressed?: string }>;
  groupsLeft: number;
  pruned: number;
}

/**
 * Runs the steps on virtual time through the gateway's decision loop, with arbitration; `prune` decides what a
 * housekeeping pass does at a moment (undefined: the run never prunes).
 */
function run(steps: readonly Step[], prune?: (r: VirtualRun, at: number) => number): Outcome {
  const engine = new Engine(rules, { gateway: 'gw-prune' });
  const inForce = new RulesInForce(rules, engine, new Arbiter(rules.policy));
  const out: Outcome = { actions: [], groupsLeft: 0, pruned: 0 };
  const r = new VirtualRun(
    inForce,
    (actor) => profiles[actor],
    {
      verdict: (v) => {
        const { id, scenario, actor, eventAt, payload } = v.candidate.action;
        const line: Outcome['actions'][number] = { id, scenario, actor, eventAt, payload };
        if (v.suppressed !== undefined) line.suppressed = v.suppressed;
        out.actions.push(line);
      },
    },
    true,
  );
  let at = 0;
  for (const s of steps) {
    const next = at + s.gap * SEC;
    if (prune && s.pruneAt !== undefined) out.pruned += prune(r, at + Math.round(s.pruneAt * (next - at)));
    at = next;
    const ev: Event = { actor: s.actor, type: s.type, at, data: { temp: s.temp }, source: 'device' };
    r.feed(ev);
  }
  const end = at + 60 * SEC;
  if (prune) out.pruned += prune(r, end);
  r.advanceTo(end + 60 * SEC);
  out.groupsLeft = engine.groupCount();
  return out;
}

const sameDecisions = (prune: (r: VirtualRun, at: number) => number) =>
  fc.property(fc.array(step, { minLength: 1, maxLength: 60 }), (steps) => {
    const pruned = run(steps, prune);
    expect(pruned.actions).toEqual(run(steps).actions);
  });

describe('housekeeping on virtual time', () => {
  test('pruning at any moment never changes a decision', () => {
    fc.assert(
      sameDecisions((r, at) => r.prune(at)),
      { numRuns: 300 },
    );
  });

  test('a pass that forgets groups too early is caught', () => {
    // Pruning 10 seconds ahead of time drops windows and matches that could still complete.
    const eager = fc.check(
      sameDecisions((r, at) => r.loop.rules.engine.prune(at + 10 * SEC)),
      { numRuns: 300 },
    );
    expect(eager.failed).toBe(true);
  });

  test('pruning forgets what can no longer fire and keeps what can', () => {
    const steps: Step[] = [
      { gap: 0, actor: 'd1', type: 'telemetry', temp: 90, pruneAt: undefined },
      { gap: 5, actor: 'd3', type: 'contract', temp: 60, pruneAt: undefined },
      { gap: 5, actor: 'd2', type: 'offline', temp: 60, pruneAt: undefined },
    ];
    const engine = new Engine(rules, { gateway: 'gw-prune' });
    const r = new VirtualRun(
      new RulesInForce(rules, engine, new Arbiter(rules.policy)),
      (a) => profiles[a],
      {
        verdict: () => undefined,
      },
      true,
    );
    let at = 0;
    for (const s of steps) {
      at += s.gap * SEC;
      r.feed({ actor: s.actor, type: s.type, at, data: { temp: s.temp }, source: 'device' });
    }
    const groups = () =>
      Object.fromEntries(
        engine
          .stats()
          .filter((s) => s.groups > 0)
          .map((s) => [s.scenario, s.groups]),
      );
    expect(groups()).toEqual({
      'hot-count': 1,
      'hot-average': 1,
      'site-average': 1,
      'site-count': 1,
      'plain-count': 1,
      together: 1,
      quiet: 1,
    });
    // At 30 s: the 30-second count still holds the reading at 0 (its window is inclusive), the 40-second average
    // and the 20-second site count too (the offline at 10 s), and the sequence waits (its absent step, then the
    // telemetry it fell due for); the 15-second site average and the 20-second `all` have nothing left.
    expect(r.prune(30 * SEC)).toBe(2);
    expect(groups()).toEqual({
      'hot-count': 1,
      'hot-average': 1,
      'site-count': 1,
      'plain-count': 1,
      quiet: 1,
    });
    expect(r.prune(31 * SEC)).toBe(2);
    // Much later only the count without a window is left: it can complete whenever.
    expect(r.prune(10 * 60 * SEC)).toBe(2);
    expect(groups()).toEqual({ 'plain-count': 1 });
    expect(engine.groupCount()).toBe(1);
  });
});
