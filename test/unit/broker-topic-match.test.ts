import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { topicMatches } from '../../src/broker/index.js';

describe('topicMatches', () => {
  test.each([
    ['devices/dev-1/commands/#', 'devices/dev-1/commands/reboot', true],
    ['devices/dev-1/commands/#', 'devices/dev-1/commands', true],
    ['devices/dev-1/commands/#', 'devices/dev-2/commands/reboot', false],
    ['devices/dev-1/commands/+', 'devices/dev-1/commands/reboot', true],
    ['devices/dev-1/commands/+', 'devices/dev-1/commands/a/b', false],
    ['devices/+/commands/reboot', 'devices/dev-9/commands/reboot', true],
    ['devices/dev-1/commands/reboot', 'devices/dev-1/commands/reboot', true],
    ['devices/dev-1/commands/reboot', 'devices/dev-1/commands/reboo', false],
    ['devices/dev-1/commands', 'devices/dev-1/commands/reboot', false],
    ['#', 'devices/dev-1/commands/reboot', true],
    ['#', '$SYS/broker/clients', false],
    ['+/broker/clients', '$SYS/broker/clients', false],
  ])('%s against %s: %s', (filter, topic, expected) => {
    expect(topicMatches(filter, topic)).toBe(expected);
  });

  test('matches as the levels split apart would, for any filter and topic', () => {
    // The reference: both split into their levels, compared level by level.
    const bySplit = (filter: string, topic: string): boolean => {
      if (topic.startsWith('$') && (filter.startsWith('+') || filter.startsWith('#'))) return false;
      const f = filter.split('/');
      const t = topic.split('/');
      for (let i = 0; i < f.length; i++) {
        if (f[i] === '#') return true;
        if (i >= t.length) return false;
        if (f[i] !== '+' && f[i] !== t[i]) return false;
      }
      return f.length === t.length;
    };
    const level = fc.constantFrom('', 'a', 'ab', 'b', '$s', '+', '#', 'a#', '+b');
    const path = fc.array(level, { minLength: 1, maxLength: 5 }).map((l) => l.join('/'));
    fc.assert(
      fc.property(path, path, (filter, topic) => {
        expect(topicMatches(filter, topic)).toBe(bySplit(filter, topic));
      }),
      { numRuns: 5_000 },
    );
  });
});
