import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, test } from 'vitest';
import { parsePolicy, policyFromObject } from '../../src/rules/policy.js';
import type { Policy } from '../../src/rules/policy.js';
import { formatProblem, RuleError } from '../../src/shared/index.js';

const root = path.resolve(import.meta.dirname, '../..');

function load(relative: string): ReturnType<typeof parsePolicy> {
  return parsePolicy(relative, readFileSync(path.join(root, relative), 'utf8'));
}

function problemsOf(relative: string): string[] {
  const result = load(relative);
  if (result.ok) throw new Error(`${relative} was expected to be rejected`);
  return result.problems.map(formatProblem);
}

function policyOf(result: ReturnType<typeof parsePolicy>): Policy {
  if (!result.ok) throw new Error(result.problems.map(formatProblem).join('\n'));
  return result.policy;
}

describe('the shipped rules/policy.yaml', () => {
  test('loads as written, with every value in milliseconds', () => {
    const policy = policyOf(load('rules/policy.yaml'));
    expect(policy).toEqual({
      contact: [{ max: 2, perMs: 3_600_000, except: ['support', 'safety'] }],
      cooldownMs: 600_000,
      exclusive: [{ active: 'support', forMs: 7_200_000, suppress: ['offer'] }],
      rate: { count: 100, perMs: 1_000 },
      ttlMs: new Map([['offer', 3_600_000]]),
    });
  });
});

describe('invalid policy values are reported as file:line, all at once', () => {
  test('bad values, one per line', () => {
    expect(problemsOf('test/fixtures/policy/bad-values.yaml')).toEqual([
      expect.stringMatching(
        /^test\/fixtures\/policy\/bad-values\.yaml:4:\d+: policy\.contact\.max: .*greater than 0/,
      ),
      expect.stringMatching(
        /^test\/fixtures\/policy\/bad-values\.yaml:5:\d+: policy\.contact\.per: "1x" is not a duration/,
      ),
      expect.stringMatching(
        /^test\/fixtures\/policy\/bad-values\.yaml:6:\d+: policy\.contact\.except: .*string, not 42/,
      ),
      expect.stringMatching(/^test\/fixtures\/policy\/bad-values\.yaml:7:\d+: policy\.contact\.by: /),
      expect.stringMatching(
        /^test\/fixtures\/policy\/bad-values\.yaml:8:\d+: policy\.cooldown: "soon" is not a duration/,
      ),
      expect.stringMatching(
        /^test\/fixtures\/policy\/bad-values\.yaml:11:\d+: policy\.exclusive\[0\]\.for: .*longer than 0/,
      ),
      expect.stringMatching(
        /^test\/fixtures\/policy\/bad-values\.yaml:13:\d+: policy\.rate: .*100\/s.*"100\/hour"/,
      ),
      expect.stringMatching(
        /^test\/fixtures\/policy\/bad-values\.yaml:15:\d+: policy\.ttl\.offer: "forever" is not a duration/,
      ),
    ]);
  });

  test('unknown keys, typos included, at the line of the key', () => {
    expect(problemsOf('test/fixtures/policy/unknown-keys.yaml')).toEqual([
      expect.stringMatching(/:5:\d+: policy\.contact: unknown key "maximum"/),
      expect.stringMatching(/:6:\d+: policy: unknown key "cooldwon"/),
      expect.stringMatching(/:11:\d+: policy\.exclusive\[0\]: unknown key "until"/),
    ]);
  });

  test('missing and empty fields, and a negative rate', () => {
    expect(problemsOf('test/fixtures/policy/missing-fields.yaml')).toEqual([
      expect.stringMatching(/:2:\d+: policy\.contact\.max is required/),
      expect.stringMatching(/:2:\d+: policy\.contact\.per is required/),
      expect.stringMatching(/:5:\d+: policy\.exclusive\[0\]\.for is required/),
      expect.stringMatching(/:6:\d+: policy\.exclusive\[0\]\.suppress: list at least one category/),
      expect.stringMatching(/:7:\d+: policy\.rate: .*"-5\/s"/),
    ]);
  });

  test('values of the wrong shape', () => {
    expect(problemsOf('test/fixtures/policy/wrong-shapes.yaml')).toEqual([
      expect.stringMatching(/:2:\d+: policy\.contact: expected a mapping/),
      expect.stringMatching(/:4:\d+: policy\.exclusive: expected a list/),
      expect.stringMatching(/:5:\d+: policy\.ttl: expected a mapping/),
      expect.stringMatching(/:6:\d+: policy\.rate: .*not 100$/),
    ]);
  });

  test('a contact.by naming an unknown variable is caught when the policy loads', () => {
    expect(problemsOf('test/fixtures/policy/typo-in-by.yaml')).toEqual([
      expect.stringMatching(/:5:\d+: policy\.contact\.by: .*profil/),
    ]);
  });

  test('YAML that does not parse', () => {
    expect(problemsOf('test/fixtures/policy/not-yaml.yaml')).toEqual([
      expect.stringMatching(/not-yaml\.yaml:4:\d+: /),
    ]);
  });

  test.each([
    ['an empty file', '', 1, /top-level "policy:"/],
    ['a file without policy:', 'rules:\n  x: 1\n', 1, /unknown key "rules"/],
    ['a duplicate key', 'policy:\n  cooldown: 1m\n  cooldown: 2m\n', 3, /unique/],
    [
      'a category that is a number',
      'policy:\n  ttl:\n    1: 1h\n',
      3,
      /category must be a non-empty string, not 1/,
    ],
    ['a fractional max', 'policy:\n  contact:\n    max: 1.5\n    per: 1h\n', 3, /whole number/],
    ['a zero ttl', 'policy:\n  ttl:\n    offer: 0s\n', 3, /policy\.ttl\.offer: must be longer than 0/],
    [
      'a contact.by that is not a string',
      'policy:\n  contact:\n    max: 1\n    per: 1h\n    by: [a]\n',
      5,
      /by: /,
    ],
  ])('%s', (_name, text, line, message) => {
    const result = parsePolicy('p.yaml', text);
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.problems[0]).toMatchObject({ file: 'p.yaml', line });
    expect(result.problems[0]?.message).toMatch(message);
  });
});

describe('valid variations', () => {
  test('an empty policy constrains nothing', () => {
    expect(policyOf(parsePolicy('p.yaml', 'policy:\n'))).toEqual({
      contact: [],
      exclusive: [],
      ttlMs: new Map(),
    });
  });

  test('per-minute rates, zero cooldown, and a contact key computed over the profile', () => {
    const policy = policyOf(
      parsePolicy(
        'p.yaml',
        'policy:\n  rate: 600/m\n  cooldown: 0s\n  contact: { max: 1, per: 30m, by: profile.customer }\n',
      ),
    );
    expect(policy.rate).toEqual({ count: 600, perMs: 60_000 });
    expect(policy.cooldownMs).toBe(0);
    expect(policy.contact[0]?.by?.evaluate({ profile: { customer: 'c1' }, actor: 'd1' })).toEqual({
      ok: true,
      value: 'c1',
    });
  });

  test('policyFromObject goes through the same checks', () => {
    expect(policyFromObject({ cooldown: '5m' }).cooldownMs).toBe(300_000);
    expect(() => policyFromObject({ contact: { max: -1, per: '1h' } })).toThrow(RuleError);
    let thrown: unknown;
    try {
      policyFromObject({ rate: 'fast' });
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(RuleError);
    expect(thrown).toMatchObject({ code: 'VIGIL_RULE_INVALID' });
    expect((thrown as RuleError).message).toMatch(/policy\.rate/);
  });
});
