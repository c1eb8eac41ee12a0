import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { Arbiter, type ArbiterState, type Verdict } from '../../src/actions/index.js';
import { kthSmallest } from '../../src/actions/kth-smallest.js';
import { compileRuleFiles } from '../../src/rules/index.js';
import { policyFromObject, type Policy } from '../../src/rules/policy.js';
import { DecisionLoop, RulesInForce, VirtualScheduler } from '../../src/runtime/index.js';
import { Engine } from '../../src/engine/index.js';
import type { Candidate } from '../../src/shared/index.js';

/**
 * The arbiter's memory has a bound: past it, the entries whose hold ends soonest are forgotten, which can only let a
 * candidate through that the policy would have held back (never hold one back), and is counted.
 */
const MIN = 60_000;

const policy: Policy = policyFromObject({
  contact: { max: 1, per: '1h', categories: ['offer'] },
  cooldown: '10m',
  exclusive: [{ active: 'support', for: '2h', suppress: ['offer'] }],
});

function candidate(actor: string, category: string, at: number, scenario = category): Candidate {
  return {
    action: {
      id: `${scenario}-${actor}-${String(at)}`,
      gateway: 'gw1',
      scenario,
      action: scenario,
      actor,
      priority: 1,
      category,
      decidedAt: at,
      eventAt: at,
      payload: {},
    },
    to: ['upstream'],
  };
}

function sorted(state: ArbiterState): ArbiterState {
  const byKey = <T extends unknown[]>(list: T[]): T[] =>
    [...list].sort((a, b) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1));
  return {
    ...state,
    contact: byKey(state.contact),
    cooldowns: byKey(state.cooldowns),
    active: byKey(state.active),
  };
}

describe('kthSmallest', () => {
  test('is the kth of the values sorted', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: -5, max: 5 }), { minLength: 1 }), fc.nat(), (values, k) => {
        const i = k % values.length;
        const expected = [...values].sort((a, b) => a - b)[i];
        expect(kthSmallest(Float64Array.from(values), i)).toBe(expected);
      }),
      { numRuns: 500 },
    );
  });
});

describe('Arbiter.evict', () => {
  test('forgets the entries whose hold ends soonest, and says how many went', () => {
    const arbiter = new Arbiter(policy);
    // d1: an offer at 0 (cooldown to 10m, contact key to 1h); d2: support at 30m (cooldown to 40m, exclusive to 2h30).
    arbiter.decide([candidate('d1', 'offer', 0)], 0);
    arbiter.decide([candidate('d2', 'support', 30 * MIN)], 30 * MIN);
    expect(arbiter.size).toBe(4);
    expect(arbiter.evict(4)).toBe(0);
    expect(arbiter.evict(3)).toBe(1);
    expect(arbiter.snapshot().cooldowns.map(([key]) => key)).toEqual([
      JSON.stringify(['actor', 'support', 'd2']),
    ]);
    expect(arbiter.evict(1)).toBe(2);
    // What is left is d2's exclusive send, which holds its offers back longest.
    expect(arbiter.snapshot()).toMatchObject({
      contact: [],
      cooldowns: [],
      active: [[JSON.stringify(['actor', 'd2']), 'support', 30 * MIN]],
    });
    expect(arbiter.decide([candidate('d2', 'offer', 40 * MIN)], 40 * MIN)[0]?.suppressed).toBe(
      'exclusive:support',
    );
    // The offer forgotten no longer counts: d1 gets another within the hour.
    expect(
      arbiter.decide([candidate('d1', 'offer', 20 * MIN, 'offer-2')], 20 * MIN)[0]?.suppressed,
    ).toBeUndefined();
  });

  test('what goes depends on the memory, not the order it was built in', () => {
    const entry = fc.tuple(
      fc.constantFrom('a', 'b', 'c', 'd', 'e', 'f'),
      fc.constantFrom('offer', 'support', 'notice'),
      fc.integer({ min: 0, max: 12 }),
    );
    fc.assert(
      fc.property(
        fc.array(entry, { maxLength: 30 }),
        fc.nat({ max: 20 }),
        fc.integer(),
        (sends, keep, seed) => {
          const arbiter = new Arbiter(policy);
          for (const [actor, category, at] of sends)
            arbiter.decide([candidate(actor, category, at * 10 * MIN)], at * 10 * MIN);
          const state = arbiter.snapshot();
          const shuffle = <T>(list: T[]): T[] =>
            list
              .map((v, i) => ({ v, k: Math.imul(i + 1, seed | 1) >>> 0 }))
              .sort((x, y) => x.k - y.k)
              .map((x) => x.v);
          const other = Arbiter.restore(policy, {
            ...state,
            contact: shuffle(state.contact),
            cooldowns: shuffle(state.cooldowns),
            active: shuffle(state.active),
          });
          const went = arbiter.evict(keep);
          expect(other.evict(keep)).toBe(went);
          expect(arbiter.size).toBeLessThanOrEqual(keep);
          expect(sorted(other.snapshot())).toEqual(sorted(arbiter.snapshot()));
        },
      ),
      { numRuns: 300 },
    );
  });
});

const OFFER =
  'id: offer\ncategory: offer\nwhen: { event: looked }\nthen: { action: offer, to: [upstream] }\n';
const SUPPORT =
  'id: support\ncategory: support\npriority: 90\nwhen: { event: ticket }\nthen: { action: call, to: [upstream] }\n';
const loaded = compileRuleFiles([
  { path: 'offer.yaml', text: OFFER },
  { path: 'support.yaml', text: SUPPORT },
  {
    path: 'policy.yaml',
    text: 'policy:\n  contact: { max: 2, per: 1h, categories: [offer] }\n  cooldown: 10m\n  exclusive: [{ active: support, for: 2h, suppress: [offer] }]\n',
  },
]);
if (!loaded.ok) throw new Error(JSON.stringify(loaded.problems));
const rules = loaded.rules;

/** A decision loop whose arbiter remembers at most `arbiterEntries`; the verdicts and evictions it hands on. */
function run(arbiterEntries: number | undefined) {
  const verdicts: string[] = [];
  const evictions: number[] = [];
  const loop = new DecisionLoop({
    rules: new RulesInForce(rules, new Engine(rules, { gateway: 'gw1' }), new Arbiter(rules.policy)),
    scheduler: new VirtualScheduler(0),
    outputs: {
      verdict: (v: Verdict<Candidate>) => verdicts.push(v.suppressed ?? 'sent'),
      evicted: (entries) => evictions.push(entries),
    },
    ...(arbiterEntries === undefined ? {} : { arbiterEntries }),
  });
  return { loop, verdicts, evictions };
}

describe('the bounded arbiter in the decision loop', () => {
  const input = fc.tuple(
    fc.integer({ min: 0, max: 40 }),
    fc.constantFrom('looked', 'ticket'),
    fc.integer({ min: 0, max: 10 * MIN }),
  );

  test('holds its memory to the bound, counts what it forgot, and differs from an unbounded one only by letting through', () => {
    let diverged = 0;
    fc.assert(
      fc.property(fc.array(input, { maxLength: 120 }), fc.integer({ min: 1, max: 40 }), (inputs, bound) => {
        const bounded = run(bound);
        const unbounded = run(undefined);
        let at = 0;
        let evictedBefore = 0;
        for (const [device, type, step] of inputs) {
          at += step;
          const ev = { actor: `d${String(device)}`, type, at, data: {}, source: 'device' as const };
          const from = bounded.verdicts.length;
          bounded.loop.onEvent(ev, undefined);
          unbounded.loop.onEvent(ev, undefined);
          expect(bounded.loop.rules.arbiter.size).toBeLessThanOrEqual(bound);
          const mine = bounded.verdicts.slice(from);
          const theirs = unbounded.verdicts.slice(from);
          if (JSON.stringify(mine) !== JSON.stringify(theirs)) {
            // The first difference: something was forgotten before it, and it never suppresses what the unbounded
            // arbiter sends. It lets a candidate through, or (having forgotten a cooldown but not the exclusive window
            // behind it) names the reason it still remembers.
            expect(evictedBefore).toBeGreaterThan(0);
            expect(mine.filter((v, i) => theirs[i] === 'sent' && v !== 'sent')).toEqual([]);
            if (mine.includes('sent')) diverged++;
            return;
          }
          evictedBefore = bounded.evictions.reduce((a, b) => a + b, 0);
        }
        expect(unbounded.evictions).toEqual([]);
      }),
      { numRuns: 300 },
    );
    // The runs do reach the bound and let something through.
    expect(diverged).toBeGreaterThan(0);
  });

  test('a bound never reached changes nothing', () => {
    const bounded = run(1_000);
    const unbounded = run(undefined);
    for (let i = 0; i < 200; i++) {
      const ev = {
        actor: `d${String(i % 3)}`,
        type: i % 50 === 0 ? 'ticket' : 'looked',
        at: i * MIN,
        data: {},
        source: 'device' as const,
      };
      bounded.loop.onEvent(ev, undefined);
      unbounded.loop.onEvent(ev, undefined);
    }
    expect(bounded.verdicts).toEqual(unbounded.verdicts);
    expect(bounded.verdicts).toContain('contact');
    expect(bounded.verdicts).toContain('exclusive:support');
    expect(bounded.evictions).toEqual([]);
  });
});
