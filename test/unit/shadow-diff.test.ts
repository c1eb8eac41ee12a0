import { describe, expect, test } from 'vitest';
import { ShadowDiff } from '../../src/shadow/index.js';
import type { Candidate } from '../../src/shared/index.js';

function candidate(
  id: string,
  scenario: string,
  eventAt: number,
  payload: unknown,
  action = 'act',
): Candidate {
  return {
    to: ['upstream'],
    action: {
      id,
      gateway: 'gw1',
      scenario,
      action,
      actor: 'd1',
      priority: 50,
      category: 'alert',
      decidedAt: eventAt,
      eventAt,
      payload: payload as Record<string, unknown>,
    },
  };
}

describe('ShadowDiff', () => {
  test('pairs the two sides by action id: same, newly, no longer, changed; key order is not a change', () => {
    const diff = new ShadowDiff();
    diff.live(candidate('a', 's', 1_000, { x: 1, y: 2 }));
    diff.shadow(candidate('a', 's', 1_000, { y: 2, x: 1 }));
    diff.shadow(candidate('b', 's', 1_000, { x: 1 }));
    diff.live(candidate('c', 't', 1_000, { x: 1 }));
    diff.live(candidate('d', 't', 1_000, { x: 1 }));
    diff.shadow(candidate('d', 't', 1_000, { x: 2 }));
    diff.live(candidate('e', 't', 1_000, { x: 1 }, 'one'));
    diff.shadow(candidate('e', 't', 1_000, { x: 1 }, 'other'));
    diff.settle(1_001);
    const { scenarios, totals, examples } = diff.report();
    expect(scenarios).toEqual({
      s: { live: 1, shadow: 2, same: 1, newly: 1, noLonger: 0, changed: 0 },
      t: { live: 3, shadow: 2, same: 0, newly: 0, noLonger: 1, changed: 2 },
    });
    expect(totals).toEqual({ live: 4, shadow: 4, same: 1, newly: 1, noLonger: 1, changed: 2 });
    expect(examples.map((e) => [e.kind, e.id])).toEqual([
      ['changed', 'e'],
      ['changed', 'd'],
      ['no-longer', 'c'],
      ['newly', 'b'],
    ]);
    expect(examples[1]).toMatchObject({
      live: { x: 1 },
      shadow: { x: 2 },
      eventAt: '1970-01-01T00:00:01.000Z',
    });
  });

  test('a decision waits until settled, so the other side may still make it', () => {
    const diff = new ShadowDiff();
    diff.live(candidate('a', 's', 5_000, {}));
    diff.settle(5_000);
    expect(diff.report().totals.live).toBe(0);
    expect(diff.waiting).toBe(1);
    diff.shadow(candidate('a', 's', 5_000, {}));
    diff.settle(5_001);
    expect(diff.report().scenarios['s']).toMatchObject({ same: 1, noLonger: 0, newly: 0 });
    expect(diff.waiting).toBe(0);
  });

  test('beyond its bound the oldest waiting decision is counted early, and that is counted too', () => {
    const diff = new ShadowDiff(2);
    diff.live(candidate('a', 's', 1, {}));
    diff.live(candidate('b', 's', 2, {}));
    diff.live(candidate('c', 's', 3, {}));
    expect(diff.waiting).toBe(2);
    expect(diff.settledEarly).toBe(1);
    expect(diff.report().scenarios['s']).toMatchObject({ live: 1, noLonger: 1 });
  });
});
