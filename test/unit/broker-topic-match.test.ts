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
});
