import { readFileSync } from 'node:fs';
import path from 'node:path';
import { expect, test } from 'vitest';
import { isExpired } from '../../src/actions/index.js';
import { parsePolicy } from '../../src/rules/policy.js';
import type { Action } from '../../src/shared/index.js';

const HOUR = 3_600_000;

const policyFile = path.resolve(import.meta.dirname, '../../rules/policy.yaml');
const loaded = parsePolicy('rules/policy.yaml', readFileSync(policyFile, 'utf8'));
if (!loaded.ok) throw new Error('rules/policy.yaml does not load');
const policy = loaded.policy;

function action(category: string, decidedAt: number): Action {
  return {
    id: 'a1',
    gateway: 'gw1',
    scenario: 's',
    action: 'notify',
    actor: 'd1',
    priority: 1,
    category,
    decidedAt,
    eventAt: decidedAt,
    payload: {},
  };
}

test('an offer not sent within an hour of its decision expires (shipped policy)', () => {
  const offer = action('offer', 5_000);
  expect(isExpired(offer, 5_000, policy)).toBe(false);
  expect(isExpired(offer, 5_000 + HOUR - 1, policy)).toBe(false);
  expect(isExpired(offer, 5_000 + HOUR, policy)).toBe(true);
});

test('categories without a ttl, and every action without a policy, never expire', () => {
  expect(isExpired(action('support', 0), 365 * 24 * HOUR, policy)).toBe(false);
  expect(isExpired(action('offer', 0), 365 * 24 * HOUR, undefined)).toBe(false);
});
