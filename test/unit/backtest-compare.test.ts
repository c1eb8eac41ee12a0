import { describe, expect, test } from 'vitest';
import { compareRuns } from '../../src/runtime/backtest.js';
import type { ReplayError, ReplayOutput } from '../../src/runtime/index.js';

function action(id: string, payload: Record<string, unknown>, suppressed?: string): ReplayOutput {
  return {
    id,
    gateway: 'g',
    scenario: id.split('-')[0] as string,
    action: 'a',
    actor: 'd1',
    priority: 1,
    category: 'c',
    decidedAt: Number(id.split('-')[1]),
    eventAt: Number(id.split('-')[1]),
    payload,
    to: ['upstream'],
    ...(suppressed !== undefined ? { suppressed } : {}),
  };
}

const none: ReplayError[] = [];

describe('compareRuns', () => {
  test('classifies each action by id: new, gone, payload, suppression; unchanged ones are not listed', () => {
    const old = [
      action('s-1', { v: 1 }),
      action('s-2', { v: 2 }),
      action('s-3', { v: 3 }),
      action('s-4', { v: 4 }, 'cooldown'),
      action('t-5', { v: 5 }),
    ];
    const next = [
      action('s-1', { v: 1 }),
      action('s-3', { v: 30 }),
      action('s-4', { v: 4 }, 'contact'),
      action('t-5', { v: 5 }, 'contact'),
      action('t-6', { v: 6 }),
    ];
    const error: ReplayError = {
      kind: 'error',
      scenario: 't',
      actor: 'd1',
      stage: 'payload',
      message: 'x',
      at: 6,
    };
    const diff = compareRuns({ actions: old, errors: none }, { actions: next, errors: [error] });
    expect(diff.changes.map((c) => [c.id, c.kind])).toEqual([
      ['s-2', 'no-longer-fires'],
      ['s-3', 'changed-payload'],
      ['s-4', 'changed-suppression'],
      ['t-5', 'changed-suppression'],
      ['t-6', 'fires-newly'],
    ]);
    expect(diff.changes[2]).toMatchObject({
      old: { verdict: 'suppressed', reason: 'cooldown' },
      new: { verdict: 'suppressed', reason: 'contact' },
    });
    expect(diff.scenarios).toEqual([
      {
        scenario: 's',
        old: { sent: 3, suppressed: 1, errors: 0 },
        new: { sent: 2, suppressed: 1, errors: 0 },
        changes: { 'fires-newly': 0, 'no-longer-fires': 1, 'changed-payload': 1, 'changed-suppression': 1 },
      },
      {
        scenario: 't',
        old: { sent: 1, suppressed: 0, errors: 0 },
        new: { sent: 1, suppressed: 1, errors: 1 },
        changes: { 'fires-newly': 1, 'no-longer-fires': 0, 'changed-payload': 0, 'changed-suppression': 1 },
      },
    ]);
  });

  test('the same runs compare equal', () => {
    const run = { actions: [action('s-1', { v: 1 }), action('s-2', { v: 2 }, 'contact')], errors: none };
    expect(compareRuns(run, run).changes).toEqual([]);
  });
});
