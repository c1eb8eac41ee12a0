import { readFileSync } from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { Arbiter } from '../../src/actions/index.js';
import type { ArbiterCandidate, Verdict } from '../../src/actions/index.js';
import { parsePolicy, policyFromObject } from '../../src/rules/policy.js';
import type { Policy } from '../../src/rules/policy.js';
import type { Profile } from '../../src/shared/index.js';

const MIN = 60_000;
const HOUR = 60 * MIN;

interface Spec {
  scenario: string;
  actor?: string;
  category?: string;
  priority?: number;
  group?: string;
  cooldownMs?: number;
}

function candidate(spec: Spec): ArbiterCandidate {
  const { scenario, actor = 'd1', category = 'notice', priority = 1, group, cooldownMs } = spec;
  const action = {
    id: `${scenario}/${group ?? actor}`,
    gateway: 'gw1',
    scenario,
    action: 'notify',
    actor,
    priority,
    category,
    decidedAt: 0,
    eventAt: 0,
    payload: {},
    ...(group === undefined ? {} : { group }),
  };
  return { action, to: ['upstream'], ...(cooldownMs === undefined ? {} : { cooldownMs }) };
}

/** Drives an arbiter on virtual time; each step returns `scenario: sent|reason` in the order weighed. */
function harness(policy: Policy | undefined, profiles: Record<string, Profile> = {}) {
  const arbiter = new Arbiter(policy);
  const profileOf = (actor: string): Profile | undefined => profiles[actor];
  return {
    arbiter,
    at(now: number, ...specs: Spec[]): string[] {
      return arbiter.decide(specs.map(candidate), now, profileOf).map(show);
    },
  };
}

function show(v: Verdict): string {
  return `${v.candidate.action.scenario}@${v.candidate.action.actor}: ${v.suppressed ?? 'sent'}`;
}

const shipped = (): Policy => {
  const result = parsePolicy(
    'rules/policy.yaml',
    readFileSync(path.resolve(import.meta.dirname, '../../rules/policy.yaml'), 'utf8'),
  );
  if (!result.ok) throw new Error('rules/policy.yaml does not load');
  return result.policy;
};

describe('acceptance: the shipped policy on one device', () => {
  test('support then offer → exclusive:support; a third capped action within the hour → contact; a repeat within 10 minutes → cooldown', () => {
    const h = harness(shipped());
    expect(h.at(0, { scenario: 'line-fault', category: 'support' })).toEqual(['line-fault@d1: sent']);
    expect(h.at(10 * MIN, { scenario: 'upgrade-offer', category: 'offer' })).toEqual([
      'upgrade-offer@d1: exclusive:support',
    ]);
    // The offer was not sent, so it does not count toward the cap: two notices still go out.
    expect(h.at(12 * MIN, { scenario: 'high-usage' })).toEqual(['high-usage@d1: sent']);
    expect(h.at(15 * MIN, { scenario: 'firmware-outdated' })).toEqual(['firmware-outdated@d1: sent']);
    expect(h.at(20 * MIN, { scenario: 'wifi-weak' })).toEqual(['wifi-weak@d1: contact']);
    // Support is exempt from the cap, but not from its cooldown.
    expect(h.at(25 * MIN, { scenario: 'line-fault', category: 'support' })).toEqual(['line-fault@d1: sent']);
    expect(h.at(30 * MIN, { scenario: 'line-fault', category: 'support' })).toEqual([
      'line-fault@d1: cooldown',
    ]);
  });

  test('the offer goes out once two hours have passed since the last support action and the hour is over', () => {
    const h = harness(shipped());
    h.at(0, { scenario: 'line-fault', category: 'support' });
    expect(h.at(2 * HOUR - 1, { scenario: 'upgrade-offer', category: 'offer' })).toEqual([
      'upgrade-offer@d1: exclusive:support',
    ]);
    expect(h.at(2 * HOUR, { scenario: 'upgrade-offer', category: 'offer' })).toEqual([
      'upgrade-offer@d1: sent',
    ]);
  });
});

describe('priority order at one instant', () => {
  test('without a policy everything is sent, highest priority first, ties by scenario id', () => {
    const h = harness(undefined);
    expect(
      h.at(0, { scenario: 'b', priority: 1 }, { scenario: 'c', priority: 9 }, { scenario: 'a', priority: 1 }),
    ).toEqual(['c@d1: sent', 'a@d1: sent', 'b@d1: sent']);
    expect(h.at(0, { scenario: 'a' }, { scenario: 'a' })).toEqual(['a@d1: sent', 'a@d1: sent']);
  });

  test('the highest goes first and the others are weighed after it', () => {
    const policy = policyFromObject({ contact: { max: 2, per: '1h' } });
    expect(
      harness(policy).at(
        0,
        { scenario: 'low', priority: 1 },
        { scenario: 'high', priority: 5 },
        { scenario: 'mid', priority: 3 },
      ),
    ).toEqual(['high@d1: sent', 'mid@d1: sent', 'low@d1: contact']);
  });

  test('a support decided at the same instant as an offer suppresses it only when it ranks higher', () => {
    const support = { scenario: 'line-fault', category: 'support', priority: 10 };
    const offer = { scenario: 'upgrade-offer', category: 'offer', priority: 5 };
    expect(harness(shipped()).at(0, offer, support)).toEqual([
      'line-fault@d1: sent',
      'upgrade-offer@d1: exclusive:support',
    ]);
    expect(harness(shipped()).at(0, { ...offer, priority: 20 }, support)).toEqual([
      'upgrade-offer@d1: sent',
      'line-fault@d1: sent',
    ]);
  });

  test('the verdicts do not depend on the order the candidates arrive in', () => {
    const specs: Spec[] = [
      { scenario: 'a', priority: 2 },
      { scenario: 'b', priority: 2 },
      { scenario: 'c', priority: 1, category: 'offer' },
      { scenario: 'd', priority: 3, category: 'support' },
      { scenario: 'a', actor: 'd2', priority: 2 },
      { scenario: 'e', actor: 'd2', priority: 1 },
      { scenario: 'f', actor: 'd2', priority: 1 },
    ];
    const expected = harness(shipped()).at(0, ...specs);
    fc.assert(
      fc.property(fc.shuffledSubarray(specs, { minLength: specs.length }), (shuffled) => {
        expect(harness(shipped()).at(0, ...shuffled)).toEqual(expected);
      }),
    );
  });
});

describe('contact', () => {
  const policy = (): Policy =>
    policyFromObject({ contact: { max: 2, per: '1h', except: ['support', 'safety'] } });

  test('at most max sent actions per window, on a sliding window', () => {
    const h = harness(policy());
    expect(h.at(0, { scenario: 'a' })).toEqual(['a@d1: sent']);
    expect(h.at(30 * MIN, { scenario: 'b' })).toEqual(['b@d1: sent']);
    expect(h.at(HOUR - 1, { scenario: 'c' })).toEqual(['c@d1: contact']);
    expect(h.at(HOUR, { scenario: 'c' })).toEqual(['c@d1: sent']);
    expect(h.at(HOUR + 1, { scenario: 'd' })).toEqual(['d@d1: contact']);
    expect(h.at(HOUR + 30 * MIN, { scenario: 'd' })).toEqual(['d@d1: sent']);
  });

  test('exempt categories are never capped and do not count', () => {
    const h = harness(policy());
    expect(
      h.at(
        0,
        { scenario: 's1', category: 'support' },
        { scenario: 's2', category: 'safety' },
        { scenario: 's3', category: 'support' },
      ),
    ).toEqual(['s1@d1: sent', 's2@d1: sent', 's3@d1: sent']);
    expect(h.at(1, { scenario: 'a' }, { scenario: 'b' }, { scenario: 'c' })).toEqual([
      'a@d1: sent',
      'b@d1: sent',
      'c@d1: contact',
    ]);
    expect(h.at(2, { scenario: 's4', category: 'safety' })).toEqual(['s4@d1: sent']);
  });

  test('suppressed candidates do not count', () => {
    const h = harness(
      policyFromObject({
        contact: { max: 1, per: '1h', except: ['support'] },
        exclusive: [{ active: 'support', for: '10m', suppress: ['offer'] }],
      }),
    );
    expect(h.at(0, { scenario: 's', category: 'support' })).toEqual(['s@d1: sent']);
    expect(h.at(MIN, { scenario: 'o', category: 'offer' })).toEqual(['o@d1: exclusive:support']);
    expect(h.at(2 * MIN, { scenario: 'a' })).toEqual(['a@d1: sent']);

    const g = harness(policyFromObject({ contact: { max: 2, per: '1h' }, cooldown: '1h' }));
    expect(g.at(0, { scenario: 'a' })).toEqual(['a@d1: sent']);
    expect(g.at(1, { scenario: 'a' })).toEqual(['a@d1: cooldown']);
    expect(g.at(2, { scenario: 'b' })).toEqual(['b@d1: sent']);
    expect(g.at(3, { scenario: 'c' })).toEqual(['c@d1: contact']);
  });

  test('each actor has its own cap', () => {
    const h = harness(policyFromObject({ contact: { max: 1, per: '1h' } }));
    expect(
      h.at(0, { scenario: 'a', actor: 'd1' }, { scenario: 'a', actor: 'd2' }, { scenario: 'b', actor: 'd1' }),
    ).toEqual(['a@d1: sent', 'a@d2: sent', 'b@d1: contact']);
  });

  test('by: the devices of one household share one cap; a device without the field is capped on its own', () => {
    const profiles: Record<string, Profile> = {
      d1: { customer: 'c1' },
      d2: { customer: 'c1' },
      d3: { customer: 'c2' },
      d4: {},
    };
    const h = harness(policyFromObject({ contact: { max: 1, per: '1h', by: 'profile.customer' } }), profiles);
    expect(h.at(0, { scenario: 'a', actor: 'd1' })).toEqual(['a@d1: sent']);
    expect(h.at(1, { scenario: 'a', actor: 'd2' })).toEqual(['a@d2: contact']);
    expect(h.at(2, { scenario: 'a', actor: 'd3' })).toEqual(['a@d3: sent']);
    expect(h.at(3, { scenario: 'a', actor: 'd4' })).toEqual(['a@d4: sent']);
    expect(h.at(4, { scenario: 'b', actor: 'd4' })).toEqual(['b@d4: contact']);
    // No profile at all: also the device's own cap.
    expect(h.at(5, { scenario: 'a', actor: 'unknown' }, { scenario: 'b', actor: 'unknown' })).toEqual([
      'a@unknown: sent',
      'b@unknown: contact',
    ]);
  });
});

describe('cooldown', () => {
  test('the same scenario for the same actor at most once per cooldown, counted from the last send', () => {
    const h = harness(policyFromObject({ cooldown: '10m' }));
    expect(h.at(0, { scenario: 'a' })).toEqual(['a@d1: sent']);
    expect(h.at(9 * MIN, { scenario: 'a' }, { scenario: 'a', actor: 'd2' }, { scenario: 'b' })).toEqual([
      'a@d1: cooldown',
      'a@d2: sent',
      'b@d1: sent',
    ]);
    // The suppressed repeat at 9 minutes did not restart the cooldown.
    expect(h.at(10 * MIN, { scenario: 'a' })).toEqual(['a@d1: sent']);
    expect(h.at(19 * MIN, { scenario: 'a' })).toEqual(['a@d1: cooldown']);
  });

  test('two candidates of one scenario at one instant: only the first goes', () => {
    const h = harness(policyFromObject({ cooldown: '10m' }));
    expect(h.at(0, { scenario: 'a' }, { scenario: 'a' })).toEqual(['a@d1: sent', 'a@d1: cooldown']);
  });

  test('a scenario with a group cools down per group, across its devices', () => {
    const h = harness(policyFromObject({ cooldown: '10m' }));
    expect(h.at(0, { scenario: 'outage', actor: 'd1', group: 'street-7' })).toEqual(['outage@d1: sent']);
    expect(h.at(MIN, { scenario: 'outage', actor: 'd2', group: 'street-7' })).toEqual([
      'outage@d2: cooldown',
    ]);
    expect(h.at(MIN, { scenario: 'outage', actor: 'd3', group: 'street-8' })).toEqual(['outage@d3: sent']);
  });

  test("a scenario's own cooldown replaces the policy's, and applies without a policy file", () => {
    const h = harness(policyFromObject({ cooldown: '10m' }));
    h.at(
      0,
      { scenario: 'short', cooldownMs: MIN },
      { scenario: 'long', cooldownMs: HOUR },
      { scenario: 'none', cooldownMs: 0 },
    );
    expect(
      h.at(
        MIN,
        { scenario: 'short', cooldownMs: MIN },
        { scenario: 'long', cooldownMs: HOUR },
        { scenario: 'none', cooldownMs: 0 },
      ),
    ).toEqual(['long@d1: cooldown', 'none@d1: sent', 'short@d1: sent']);
    expect(h.at(59 * MIN, { scenario: 'long', cooldownMs: HOUR })).toEqual(['long@d1: cooldown']);

    const bare = harness(undefined);
    bare.at(0, { scenario: 'a', cooldownMs: 5 * MIN }, { scenario: 'b' });
    expect(bare.at(MIN, { scenario: 'a', cooldownMs: 5 * MIN }, { scenario: 'b' })).toEqual([
      'a@d1: cooldown',
      'b@d1: sent',
    ]);
  });
});

describe('exclusive', () => {
  const policy = (): Policy =>
    policyFromObject({
      cooldown: '30m',
      exclusive: [
        { active: 'support', for: '10m', suppress: ['offer', 'survey'] },
        { active: 'safety', for: '1h', suppress: ['offer'] },
      ],
    });

  test('only the listed categories of the same actor are suppressed, for the rule duration', () => {
    const h = harness(policy());
    h.at(0, { scenario: 'ticket', category: 'support' });
    expect(
      h.at(
        5 * MIN,
        { scenario: 'promo', category: 'offer' },
        { scenario: 'nps', category: 'survey' },
        { scenario: 'tip', category: 'notice' },
        { scenario: 'promo', category: 'offer', actor: 'd2' },
      ),
    ).toEqual(['nps@d1: exclusive:support', 'promo@d1: exclusive:support', 'promo@d2: sent', 'tip@d1: sent']);
    // The suppressed offer at 5 minutes did not start its cooldown, so it goes as soon as the rule lapses.
    expect(h.at(10 * MIN, { scenario: 'promo', category: 'offer' })).toEqual(['promo@d1: sent']);
  });

  test('the reason names the rule that applies', () => {
    const h = harness(policy());
    h.at(0, { scenario: 'smoke', category: 'safety' });
    expect(h.at(30 * MIN, { scenario: 'promo', category: 'offer' })).toEqual(['promo@d1: exclusive:safety']);
  });

  test('only a sent action activates the rule', () => {
    const h = harness(policy());
    h.at(0, { scenario: 'ticket', category: 'support' });
    expect(h.at(5 * MIN, { scenario: 'ticket', category: 'support' })).toEqual(['ticket@d1: cooldown']);
    // Had the suppressed repeat counted, offers would be held back until 15 minutes.
    expect(h.at(10 * MIN, { scenario: 'promo', category: 'offer' })).toEqual(['promo@d1: sent']);
  });
});

describe('when several rules apply, one reason is reported: cooldown, then exclusive, then contact', () => {
  test('cooldown over contact, exclusive over contact', () => {
    const h = harness(shipped());
    h.at(0, { scenario: 'a' }, { scenario: 'b' }, { scenario: 's', category: 'support' });
    expect(h.at(MIN, { scenario: 'a' })).toEqual(['a@d1: cooldown']);
    expect(h.at(MIN, { scenario: 'o', category: 'offer' })).toEqual(['o@d1: exclusive:support']);
    expect(h.at(MIN, { scenario: 'c' })).toEqual(['c@d1: contact']);
  });
});

test('a large fleet under the shipped policy: every verdict obeys every rule', () => {
  // Replays random traffic and checks the sent actions against the rules from scratch.
  const categories = ['notice', 'offer', 'support', 'safety'];
  const step = fc.record({
    dt: fc.integer({ min: 0, max: 20 * MIN }),
    specs: fc.array(
      fc.record({
        scenario: fc.constantFrom('s1', 's2', 's3', 's4'),
        actor: fc.constantFrom('d1', 'd2', 'd3'),
        category: fc.constantFrom(...categories),
        priority: fc.integer({ min: 0, max: 3 }),
      }),
      { minLength: 1, maxLength: 4 },
    ),
  });
  fc.assert(
    fc.property(fc.array(step, { maxLength: 60 }), (steps) => {
      const arbiter = new Arbiter(shipped());
      const sent: { at: number; scenario: string; actor: string; category: string }[] = [];
      let now = 0;
      for (const { dt, specs } of steps) {
        now += dt;
        for (const v of arbiter.decide(specs.map(candidate), now)) {
          const { scenario, actor, category } = v.candidate.action;
          const mine = sent.filter((s) => s.actor === actor);
          const capped = mine.filter((s) => !['support', 'safety'].includes(s.category) && s.at > now - HOUR);
          const cooling = mine.some((s) => s.scenario === scenario && s.at > now - 10 * MIN);
          const excluded =
            category === 'offer' && mine.some((s) => s.category === 'support' && s.at > now - 2 * HOUR);
          const overCap = !['support', 'safety'].includes(category) && capped.length >= 2;
          const expected = cooling
            ? 'cooldown'
            : excluded
              ? 'exclusive:support'
              : overCap
                ? 'contact'
                : undefined;
          expect(v.suppressed).toBe(expected);
          if (v.suppressed === undefined) sent.push({ at: now, scenario, actor, category });
        }
      }
    }),
  );
});
