import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { Arbiter } from '../../src/actions/index.js';
import type { ArbiterCandidate, ArbiterState } from '../../src/actions/index.js';
import { policyFromObject } from '../../src/rules/policy.js';
import type { Policy } from '../../src/rules/policy.js';
import type { Profile } from '../../src/shared/index.js';

const MIN = 60_000;
const HOUR = 60 * MIN;

function candidate(
  scenario: string,
  actor: string,
  category: string,
  priority = 1,
  group?: string,
): ArbiterCandidate {
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
    ...(group === undefined ? {} : { group }),
  };
  return { action, to: ['upstream'] };
}

const policy = (): Policy =>
  policyFromObject({
    contact: { max: 2, per: '1h', except: ['support'], by: 'profile.customer' },
    cooldown: '10m',
    exclusive: [{ active: 'support', for: '2h', suppress: ['offer'] }],
  });

const profiles: Record<string, Profile> = { d1: { customer: 'c1' }, d2: { customer: 'c1' }, d3: {} };
const profileOf = (actor: string): Profile | undefined => profiles[actor];

const traffic = fc.array(
  fc.record({
    dt: fc.integer({ min: 0, max: 30 * MIN }),
    batch: fc.array(
      fc.record({
        scenario: fc.constantFrom('s1', 's2', 's3'),
        actor: fc.constantFrom('d1', 'd2', 'd3'),
        category: fc.constantFrom('notice', 'offer', 'support'),
        priority: fc.integer({ min: 0, max: 2 }),
        group: fc.option(fc.constantFrom('g1', 'g2'), { nil: undefined }),
      }),
      { minLength: 1, maxLength: 3 },
    ),
  }),
  { maxLength: 40 },
);

type Traffic = typeof traffic extends fc.Arbitrary<infer T> ? T : never;

function feed(arbiter: Arbiter, steps: Traffic, start: number): { reasons: string[]; now: number } {
  const reasons: string[] = [];
  let now = start;
  for (const { dt, batch } of steps) {
    now += dt;
    const candidates = batch.map((c) => candidate(c.scenario, c.actor, c.category, c.priority, c.group));
    for (const v of arbiter.decide(candidates, now, profileOf)) reasons.push(v.suppressed ?? 'sent');
  }
  return { reasons, now };
}

describe('snapshot and restore', () => {
  test('an arbiter restored from a JSON snapshot decides exactly as one that never stopped', () => {
    fc.assert(
      fc.property(traffic, traffic, (before, after) => {
        const steady = new Arbiter(policy());
        const first = feed(steady, before, 0);
        const state = JSON.parse(JSON.stringify(steady.snapshot())) as ArbiterState;
        const restored = Arbiter.restore(policy(), state);
        expect(feed(restored, after, first.now).reasons).toEqual(feed(steady, after, first.now).reasons);
      }),
    );
  });

  test('the snapshot is a copy: deciding further does not change it', () => {
    const arbiter = new Arbiter(policy());
    arbiter.decide([candidate('s1', 'd1', 'notice')], 0, profileOf);
    const state = arbiter.snapshot();
    const copy = structuredClone(state);
    arbiter.decide([candidate('s2', 'd1', 'notice'), candidate('s3', 'd1', 'support')], 1, profileOf);
    expect(state).toEqual(copy);
  });

  test('restored under a new policy, the new policy applies to the remembered sends', () => {
    const loose = policyFromObject({ contact: { max: 3, per: '1h' } });
    const arbiter = new Arbiter(loose);
    arbiter.decide([candidate('s1', 'd1', 'notice'), candidate('s2', 'd1', 'notice')], 0);
    const next = [candidate('s3', 'd1', 'notice')];
    expect(Arbiter.restore(loose, arbiter.snapshot()).decide(next, MIN)[0]?.suppressed).toBeUndefined();
    const strict = policyFromObject({ contact: { max: 2, per: '1h' } });
    expect(Arbiter.restore(strict, arbiter.snapshot()).decide(next, MIN)[0]?.suppressed).toBe('contact');
  });

  test('a snapshot of an unknown version is refused rather than misread', () => {
    const state = { version: 3, contact: [], cooldowns: [], active: [] } as unknown as ArbiterState;
    expect(() => Arbiter.restore(policy(), state)).toThrow(/version 3/);
  });
});

describe('prune', () => {
  test('never changes a decision', () => {
    fc.assert(
      fc.property(traffic, fc.array(fc.boolean(), { minLength: 40, maxLength: 40 }), (steps, pruneAt) => {
        const plain = new Arbiter(policy());
        const pruned = new Arbiter(policy());
        let now = 0;
        steps.forEach(({ dt, batch }, i) => {
          now += dt;
          const candidates = batch.map((c) =>
            candidate(c.scenario, c.actor, c.category, c.priority, c.group),
          );
          if (pruneAt[i]) pruned.prune(now);
          const a = plain.decide(candidates, now, profileOf).map((v) => v.suppressed ?? 'sent');
          const b = pruned.decide(candidates, now, profileOf).map((v) => v.suppressed ?? 'sent');
          expect(b).toEqual(a);
        });
      }),
    );
  });

  test('pruned at the last instant of every window, nothing that still applies is forgotten', () => {
    const arbiter = new Arbiter(policy());
    arbiter.decide(
      [candidate('s1', 'd3', 'notice'), candidate('s2', 'd3', 'notice'), candidate('s3', 'd3', 'support')],
      0,
    );
    arbiter.prune(10 * MIN - 1);
    expect(arbiter.decide([candidate('s1', 'd3', 'notice')], 10 * MIN - 1)[0]?.suppressed).toBe('cooldown');
    arbiter.prune(HOUR - 1);
    expect(arbiter.decide([candidate('s9', 'd3', 'notice')], HOUR - 1)[0]?.suppressed).toBe('contact');
    arbiter.prune(2 * HOUR - 1);
    expect(arbiter.decide([candidate('s8', 'd3', 'offer')], 2 * HOUR - 1)[0]?.suppressed).toBe(
      'exclusive:support',
    );
  });

  test('memory stays bounded: what every window has passed is forgotten', () => {
    const arbiter = new Arbiter(policy());
    for (let i = 0; i < 10_000; i++) {
      arbiter.decide(
        [candidate('s1', `dev-${i}`, 'notice'), candidate('s2', `dev-${i}`, 'support')],
        i * 100,
        () => undefined,
      );
    }
    const size = (s: ArbiterState) => ({
      contact: s.contact.length,
      cooldowns: s.cooldowns.length,
      active: s.active.length,
    });
    expect(size(arbiter.snapshot())).toEqual({ contact: 10_000, cooldowns: 20_000, active: 10_000 });
    const last = 9_999 * 100;
    // Sends were at i × 100 ms. An hour and 500 s in, the cooldowns (10 minutes) have all ended, the contact
    // windows (1 hour) of the sends after 500 s have not, and no exclusive window (2 hours) has.
    arbiter.prune(HOUR + 500_000);
    expect(size(arbiter.snapshot())).toEqual({ contact: 4_999, cooldowns: 0, active: 10_000 });
    arbiter.prune(last + 2 * HOUR);
    expect(size(arbiter.snapshot())).toEqual({ contact: 0, cooldowns: 0, active: 0 });
  });

  test('one busy contact key keeps no more than max send times', () => {
    const arbiter = new Arbiter(policyFromObject({ contact: { max: 3, per: '1m' } }));
    for (let i = 0; i < 1_000; i++) arbiter.decide([candidate(`s${i}`, 'd1', 'notice')], i * 20_000);
    const [entry] = arbiter.snapshot().contact;
    expect(entry?.[1].length).toBeLessThanOrEqual(3);
  });

  test('without a policy nothing is remembered', () => {
    const arbiter = new Arbiter(undefined);
    arbiter.decide([candidate('s1', 'd1', 'offer'), candidate('s2', 'd1', 'support')], 0);
    expect(arbiter.snapshot()).toEqual({ version: 2, contact: [], cooldowns: [], active: [] });
  });
});
