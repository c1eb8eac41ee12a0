import { describe, expect, test } from 'vitest';
import { checkPublish, checkSubscribe, type Identity } from '../../src/broker/index.js';

const limits = { maxTopicBytes: 64, maxTopicLevels: 6 };
const dev1: Identity = { kind: 'device', deviceId: 'dev-1' };
const anonymous: Identity = { kind: 'anonymous' };

const refusalOf = (v: ReturnType<typeof checkPublish>) => (v.ok ? 'ok' : v.refusal);

describe('what a device may publish', () => {
  test.each([
    ['devices/dev-1/events/telemetry', 'ok'],
    ['devices/dev-1/status', 'ok'],
    ['devices/dev-2/events/telemetry', 'acl'],
    ['devices/dev-1x/events/telemetry', 'acl'],
    ['devices/dev-1', 'acl'],
    ['devices/', 'acl'],
    ['other/topic', 'acl'],
    ['vigil/deadletter', 'acl'],
    ['vigil/gw/actions', 'acl'],
    ['$SYS/broker/clients', 'acl'],
    ['$vigil/dropped', 'acl'],
    ['devices/dev-1/a/b/c/d/e', 'topic-levels'],
    [`devices/dev-1/events/${'x'.repeat(60)}`, 'topic-length'],
    ['devices/dev-1/events/\u0000', 'malformed'],
    ['devices/dev-1/events/caf\uFFFD', 'malformed'],
  ])('%s: %s', (topic, expected) => {
    expect(refusalOf(checkPublish(dev1, topic, limits))).toBe(expected);
  });

  test('a refusal says why, naming what the device may do', () => {
    expect(checkPublish(dev1, 'devices/dev-2/events/t', limits)).toEqual({
      ok: false,
      refusal: 'acl',
      reason: 'device dev-1 may publish only under devices/dev-1/',
    });
  });

  test('the length limit counts UTF-8 bytes, not characters', () => {
    const topic = `devices/dev-1/events/${'é'.repeat(20)}`; // 21 + 40 bytes, 41 characters
    expect(refusalOf(checkPublish(dev1, topic, limits))).toBe('ok');
    expect(refusalOf(checkPublish(dev1, `${topic}éé`, limits))).toBe('topic-length');
  });
});

describe('what a device may subscribe to', () => {
  test.each([
    ['devices/dev-1/commands/#', 'ok'],
    ['devices/dev-1/commands/+', 'ok'],
    ['devices/dev-1/commands/reboot', 'ok'],
    ['devices/dev-2/commands/#', 'acl'],
    ['devices/+/commands/#', 'acl'],
    ['devices/#', 'acl'],
    ['#', 'acl'],
    ['devices/dev-1/#', 'acl'],
    ['devices/dev-1/events/#', 'acl'],
    ['vigil/deadletter', 'acl'],
    ['$SYS/#', 'acl'],
    ['$share/g/devices/dev-1/commands/#', 'acl'],
    ['devices/dev-1/commands/a/b/c/d', 'topic-levels'],
  ])('%s: %s', (filter, expected) => {
    expect(refusalOf(checkSubscribe(dev1, filter, limits))).toBe(expected);
  });
});

describe('anonymous clients (development only)', () => {
  test('may publish as any device, but never on $ or vigil/ topics', () => {
    expect(refusalOf(checkPublish(anonymous, 'devices/dev-9/events/t', limits))).toBe('ok');
    expect(refusalOf(checkPublish(anonymous, 'vigil/deadletter', limits))).toBe('acl');
    expect(refusalOf(checkPublish(anonymous, '$SYS/x', limits))).toBe('acl');
  });

  test('may watch anything but $ topics, and the limits still hold', () => {
    expect(refusalOf(checkSubscribe(anonymous, '#', limits))).toBe('ok');
    expect(refusalOf(checkSubscribe(anonymous, 'vigil/deadletter', limits))).toBe('ok');
    expect(refusalOf(checkSubscribe(anonymous, '$SYS/#', limits))).toBe('acl');
    expect(refusalOf(checkSubscribe(anonymous, 'a/b/c/d/e/f/g', limits))).toBe('topic-levels');
  });
});
