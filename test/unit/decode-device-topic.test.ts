import { describe, expect, test } from 'vitest';
import { isDeviceEventTopic } from '../../src/broker/index.js';
import { parseDeviceTopic } from '../../src/ingest/index.js';

describe('parseDeviceTopic', () => {
  test.each([
    ['devices/dev-1/events/telemetry', 'dev-1', 'telemetry'],
    ['devices/a.b:c/events/heart beat', 'a.b:c', 'heart beat'],
  ])('%s is device %s, type %s', (topic, deviceId, type) => {
    expect(parseDeviceTopic(topic)).toEqual({ ok: true, deviceId, type });
  });

  test.each([
    ['devices//events/telemetry', undefined],
    ['devices/dev-1/events/', 'dev-1'],
    ['devices/dev-1/events', 'dev-1'],
    ['devices/dev-1/events/telemetry/extra', 'dev-1'],
    ['devices/dev-1/commands/reboot', 'dev-1'],
    ['devices/+/events/telemetry', undefined],
    ['devices/dev-1/events/#', 'dev-1'],
    ['/devices/dev-1/events/telemetry', undefined],
    ['sensors/dev-1/events/telemetry', undefined],
    ['', undefined],
  ])('%s is outside the scheme (device %s)', (topic, deviceId) => {
    expect(parseDeviceTopic(topic)).toEqual(
      deviceId === undefined ? { ok: false, reason: 'topic' } : { ok: false, reason: 'topic', deviceId },
    );
  });
});

describe('which publishes the broker hands to ingest', () => {
  test.each([
    ['devices/dev-1/events/telemetry', true],
    ['devices//events/telemetry', true],
    ['devices/dev-1/events', true],
    ['devices/dev-1/events/a/b', true],
    ['devices/dev-1/eventsx/a', false],
    ['devices/dev-1/commands/reboot', false],
    ['devices/dev-1/status', false],
    ['vigil/deadletter', false],
  ])('%s → %s', (topic, expected) => {
    expect(isDeviceEventTopic(topic)).toBe(expected);
  });
});
