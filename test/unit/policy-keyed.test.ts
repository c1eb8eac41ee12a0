import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { Arbiter } from '../../src/actions/index.js';
import type { ArbiterCandidate, ArbiterState, SavedArbiterState } from '../../src/actions/index.js';
import { compileRuleFiles } from '../../src/rules/index.js';
import { parsePolicy, policyFromObject } from '../../src/rules/policy.js';
import type { Policy } from '../../src/rules/policy.js';
import type { Profile, RuleProblem } from '../../src/shared/index.js';

const MIN = 60_000;
const HOUR = 60 * MIN;

/** The policy of the issue: support holds offers back for the whole household, and two contact caps. */
const HOUSEHOLD = `policy:
  exclusive:
    - active: support
      for: 2h
      suppress: [offer]
      by: profile.household
  contact:
    - categories: [offer]
      max: 1
      per: 24h
      by: profile.customerId
    - except: [support, safety]
      max: 3
      per: 1h
`;

const SCHEMA = `schema:
  events:
    telemetry:
      temp: number
  profile:
    household: string
    customerId: string
    floor: number
    vip: boolean
`;

function policyOf(text: string): Policy {
  const result = parsePolicy('policy.yaml', text);
  if (!result.ok) throw new Error(result.problems.map((p) => p.message).join('\n'));
  return result.policy;
}

function problems(files: Record<string, string>): RuleProblem[] {
  const result = compileRuleFiles(Object.entries(files).map(([path, text]) => ({ path, text })));
  return result.ok ? [] : result.problems;
}

function candidate(scenario: string, actor: string, category: string, priority = 1): ArbiterCandidate {
  const action = {
    id: `${scenario}/${actor}`,
    gateway: 'gw1',
    scenario,
    action: 'notify',
    actor,
    priority,
    category,
    decidedAt: 0,
    eventAt: 0,
    payload: {},
  };
  return { action, to: ['upstream'] };
}

/** Router and set-top box of one home (one customer), a second home, and a device without a profile. */
const profiles: Record<string, Profile> = {
  router: { household: 'h1', customerId: 'c1' },
  stb: { household: 'h1', customerId: 'c1' },
  other: { household: 'h2', customerId: 'c2' },
};
const profileOf = (actor: string): Profile | undefined => profiles[actor];

function harness(policy: Policy) {
  const arbiter = new Arbiter(policy);
  return {
    arbiter,
    at(now: number, ...cs: Array<[scenario: string, actor: string, category: string]>): string[] {
      return arbiter
        .decide(
          cs.map(([s, a, c]) => candidate(s, a, c)),
          now,
          profileOf,
        )
        .map((v) => `${v.candidate.action.scenario}@${v.candidate.action.actor}: ${v.suppressed ?? 'sent'}`);
    },
  };
}

describe('parse', () => {
  test('the form of the issue: exclusive by a profile field, a list of contact caps', () => {
    const policy = policyOf(HOUSEHOLD);
    expect(policy.exclusive).toMatchObject([{ active: 'support', forMs: 2 * HOUR, suppress: ['offer'] }]);
    expect(policy.exclusive[0]?.by?.source).toBe('profile.household');
    expect(policy.contact).toMatchObject([
      { categories: ['offer'], except: [], max: 1, perMs: 24 * HOUR },
      { except: ['support', 'safety'], max: 3, perMs: HOUR },
    ]);
    expect(policy.contact[0]?.by?.source).toBe('profile.customerId');
    expect(policy.contact[1]?.by).toBeUndefined();
    expect(policy.contact[1]?.categories).toBeUndefined();
  });

  test('the single-object contact and an exclusive without by still load as one cap, per actor', () => {
    const policy = policyOf(
      'policy:\n  contact: { max: 2, per: 1h, except: [support] }\n  exclusive: [{ active: support, for: 2h, suppress: [offer] }]\n',
    );
    expect(policy.contact).toEqual([{ max: 2, perMs: HOUR, except: ['support'] }]);
    expect(policy.exclusive).toEqual([{ active: 'support', forMs: 2 * HOUR, suppress: ['offer'] }]);
  });

  test.each([
    [
      'a cap with both categories and except',
      'policy:\n  contact:\n    - categories: [offer]\n      except: [support]\n      max: 1\n      per: 1h\n',
      {
        line: 4,
        col: 7,
        message: 'policy.contact[0]: give either categories (those capped) or except (those not), not both',
      },
    ],
    [
      'an empty list of categories',
      'policy:\n  contact:\n    - categories: []\n      max: 1\n      per: 1h\n',
      { line: 3, col: 19, message: 'policy.contact[0].categories: list at least one' },
    ],
    [
      'a cap of a list without per',
      'policy:\n  contact:\n    - max: 1\n    - max: 2\n      per: 1h\n',
      { line: 3, col: 7, message: 'policy.contact[0].per is required' },
    ],
    [
      'an unknown key in a cap',
      'policy:\n  contact:\n    - max: 1\n      per: 1h\n      per_actor: true\n',
      {
        line: 5,
        col: 7,
        message: expect.stringMatching(/^policy\.contact\[0\]: unknown key "per_actor"/) as unknown,
      },
    ],
    [
      'an exclusive by that names an unknown variable',
      'policy:\n  exclusive:\n    - active: support\n      for: 2h\n      suppress: [offer]\n      by: household\n',
      {
        line: 6,
        col: 11,
        message: expect.stringMatching(/^policy\.exclusive\[0\]\.by: .*household/) as unknown,
      },
    ],
    [
      'an exclusive by that is not an expression',
      'policy:\n  exclusive:\n    - active: support\n      for: 2h\n      suppress: [offer]\n      by: [a]\n',
      {
        line: 6,
        col: 11,
        message: expect.stringMatching(/^policy\.exclusive\[0\]\.by: expected a CEL expression/) as unknown,
      },
    ],
  ])('%s is reported at its line and column', (_name, text, problem) => {
    const result = parsePolicy('p.yaml', text);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.problems).toEqual([{ file: 'p.yaml', ...problem }]);
  });
});

describe('rules check with a schema', () => {
  test('the policy of the issue passes against a profile that declares its fields', () => {
    expect(problems({ 'policy.yaml': HOUSEHOLD, 'schema.yaml': SCHEMA })).toEqual([]);
  });

  test('an unknown profile field in a by is an error, at its file:line:col, with a hint', () => {
    const text = HOUSEHOLD.replace('by: profile.household', 'by: profile.houshold').replace(
      'by: profile.customerId',
      'by: profile.customer',
    );
    expect(problems({ 'policy.yaml': text, 'schema.yaml': SCHEMA })).toEqual([
      {
        file: 'policy.yaml',
        line: 6,
        col: 11,
        message:
          'policy.exclusive[0].by: profile.houshold: the profile has no field "houshold" (schema.yaml)',
        hint: 'did you mean profile.household?',
      },
      {
        file: 'policy.yaml',
        line: 11,
        col: 11,
        message: 'policy.contact[0].by: profile.customer: the profile has no field "customer" (schema.yaml)',
        hint: 'did you mean profile.customerId?',
      },
    ]);
    // Without a schema, the same policy loads: nothing says what a profile holds.
    expect(problems({ 'policy.yaml': text })).toEqual([]);
  });

  test('a by that gives neither a string nor a number is an error', () => {
    const text = 'policy:\n  contact:\n    max: 1\n    per: 1h\n    by: profile.vip\n';
    expect(problems({ 'policy.yaml': text, 'schema.yaml': SCHEMA })).toMatchObject([
      { file: 'policy.yaml', line: 5, col: 9, message: 'policy.contact.by: gives bool, not a key' },
    ]);
    const number = 'policy:\n  contact:\n    max: 1\n    per: 1h\n    by: profile.floor\n';
    expect(problems({ 'policy.yaml': number, 'schema.yaml': SCHEMA })).toEqual([]);
  });
});

describe('arbitration on virtual time', () => {
  test('a support action to the router holds offers back for the whole household, for 2 hours', () => {
    const h = harness(policyOf(HOUSEHOLD));
    expect(h.at(0, ['callback', 'router', 'support'])).toEqual(['callback@router: sent']);
    expect(h.at(MIN, ['upsell', 'stb', 'offer'], ['upsell', 'other', 'offer'])).toEqual([
      'upsell@other: sent',
      'upsell@stb: exclusive:support',
    ]);
    expect(h.at(2 * HOUR - 1, ['upsell', 'stb', 'offer'])).toEqual(['upsell@stb: exclusive:support']);
    expect(h.at(2 * HOUR, ['upsell', 'stb', 'offer'])).toEqual(['upsell@stb: sent']);
  });

  test('a device without the profile field is held back on its own only', () => {
    const h = harness(policyOf(HOUSEHOLD));
    h.at(0, ['callback', 'loner', 'support']);
    expect(h.at(1, ['upsell', 'loner', 'offer'], ['upsell', 'stb', 'offer'])).toEqual([
      'upsell@loner: exclusive:support',
      'upsell@stb: sent',
    ]);
  });

  test('one offer per customer a day across its devices; other categories capped by the hourly cap per device', () => {
    const h = harness(policyOf(HOUSEHOLD));
    expect(h.at(0, ['upsell', 'router', 'offer'])).toEqual(['upsell@router: sent']);
    // The hourly cap counts the offer too (it caps all but support and safety), per device.
    expect(
      h.at(10, ['n1', 'router', 'notice'], ['n2', 'router', 'notice'], ['n3', 'router', 'notice']),
    ).toEqual(['n1@router: sent', 'n2@router: sent', 'n3@router: contact']);
    expect(h.at(20, ['n4', 'stb', 'notice'], ['n5', 'stb', 'notice'], ['s1', 'stb', 'safety'])).toEqual([
      'n4@stb: sent',
      'n5@stb: sent',
      's1@stb: sent',
    ]);
    // The customer's one offer of the day went to the router.
    expect(h.at(HOUR, ['upsell2', 'stb', 'offer'])).toEqual(['upsell2@stb: contact']);
    expect(h.at(24 * HOUR - 1, ['upsell3', 'stb', 'offer'])).toEqual(['upsell3@stb: contact']);
    expect(h.at(24 * HOUR, ['upsell3', 'stb', 'offer'])).toEqual(['upsell3@stb: sent']);
  });

  test('a suppressed candidate counts toward no cap', () => {
    const h = harness(policyOf(HOUSEHOLD));
    h.at(0, ['n1', 'router', 'notice'], ['n2', 'router', 'notice'], ['n3', 'router', 'notice']);
    // Refused by the hourly cap, so the daily offer cap of the customer is not used up.
    expect(h.at(1, ['upsell', 'router', 'offer'])).toEqual(['upsell@router: contact']);
    expect(h.at(HOUR, ['upsell', 'stb', 'offer'])).toEqual(['upsell@stb: sent']);
  });
});

const traffic = fc.array(
  fc.record({
    dt: fc.integer({ min: 0, max: 3 * HOUR }),
    batch: fc.array(
      fc.record({
        scenario: fc.constantFrom('s1', 's2', 's3'),
        actor: fc.constantFrom('router', 'stb', 'other', 'loner'),
        category: fc.constantFrom('notice', 'offer', 'support', 'safety'),
        priority: fc.integer({ min: 0, max: 2 }),
      }),
      { minLength: 1, maxLength: 3 },
    ),
  }),
  { maxLength: 40 },
);

type Traffic = typeof traffic extends fc.Arbitrary<infer T> ? T : never;

function feed(
  arbiter: Arbiter,
  steps: Traffic,
  start: number,
  prune = false,
): { reasons: string[]; now: number } {
  const reasons: string[] = [];
  let now = start;
  for (const { dt, batch } of steps) {
    now += dt;
    if (prune) arbiter.prune(now);
    const cs = batch.map((c) => candidate(c.scenario, c.actor, c.category, c.priority));
    for (const v of arbiter.decide(cs, now, profileOf)) reasons.push(v.suppressed ?? 'sent');
  }
  return { reasons, now };
}

describe('state', () => {
  test('restored from a JSON snapshot, it decides exactly as one that never stopped; pruning changes nothing', () => {
    fc.assert(
      fc.property(traffic, traffic, (before, after) => {
        const steady = new Arbiter(policyOf(HOUSEHOLD));
        const first = feed(steady, before, 0);
        const state = JSON.parse(JSON.stringify(steady.snapshot())) as ArbiterState;
        const restored = Arbiter.restore(policyOf(HOUSEHOLD), state);
        const expected = feed(steady, after, first.now).reasons;
        expect(feed(restored, after, first.now, true).reasons).toEqual(expected);
      }),
    );
  });

  test('a changed max or per applies to the sends already counted; pruned, nothing of the day is forgotten', () => {
    const h = harness(policyOf(HOUSEHOLD));
    h.at(0, ['upsell', 'router', 'offer']);
    const stricter = policyOf(HOUSEHOLD.replace('per: 24h', 'per: 48h'));
    const swapped = h.arbiter.withPolicy(stricter);
    swapped.prune(24 * HOUR);
    expect(swapped.decide([candidate('upsell', 'stb', 'offer')], 24 * HOUR, profileOf)[0]?.suppressed).toBe(
      'contact',
    );
  });

  test('a version 1 state (one cap, per actor) is read as the state of the first cap', () => {
    const v1: SavedArbiterState = {
      version: 1,
      contact: [['["actor","d1"]', [0, 1]]],
      cooldowns: [],
      active: [['d1', 'support', 0]],
    };
    const policy = policyFromObject({
      contact: { max: 2, per: '1h' },
      exclusive: [{ active: 'support', for: '2h', suppress: ['offer'] }],
    });
    const arbiter = Arbiter.restore(policy, v1);
    expect(arbiter.decide([candidate('s', 'd1', 'notice')], MIN)[0]?.suppressed).toBe('contact');
    expect(arbiter.decide([candidate('s', 'd1', 'offer')], MIN)[0]?.suppressed).toBe('exclusive:support');
    expect(arbiter.decide([candidate('s', 'd2', 'offer')], MIN)[0]?.suppressed).toBeUndefined();
    expect(arbiter.snapshot().version).toBe(2);
  });
});
