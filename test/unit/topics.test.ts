import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import {
  DEAD_LETTER_TOPIC,
  deviceCommandFilter,
  deviceCommandTopic,
  deviceEventTopic,
  isDeviceEventTopic,
  isGatewayTopic,
  parseDeviceCommandTopic,
  parseDeviceTopic,
  upstreamTopics,
  groupTopics,
} from '../../src/shared/index.js';

// The topic strings are a public contract (README, "Topics"): these tests spell them out literally.
describe('topics as devices and the cloud see them', () => {
  test('a device publishes events on devices/{id}/events/{type}, which parse back', () => {
    expect(deviceEventTopic('dev-1', 'telemetry')).toBe('devices/dev-1/events/telemetry');
    expect(parseDeviceTopic(deviceEventTopic('a.b:c', 'heartbeat'))).toEqual({
      ok: true,
      deviceId: 'a.b:c',
      type: 'heartbeat',
    });
  });

  test('a device gets commands on devices/{id}/commands/{name}', () => {
    expect(deviceCommandTopic('dev-1', 'reboot')).toBe('devices/dev-1/commands/reboot');
    expect(deviceCommandFilter('dev-1')).toBe('devices/dev-1/commands/#');
    expect(parseDeviceCommandTopic('devices/dev-1/commands/reboot', 'dev-1')).toBe('reboot');
    expect(parseDeviceCommandTopic('devices/dev-10/commands/reboot', 'dev-1')).toBeUndefined();
    expect(parseDeviceCommandTopic('devices/dev-1/events/reboot', 'dev-1')).toBeUndefined();
  });

  test('refused publishes go to vigil/deadletter, a gateway topic no device may publish on', () => {
    expect(DEAD_LETTER_TOPIC).toBe('vigil/deadletter');
    expect(isGatewayTopic(DEAD_LETTER_TOPIC)).toBe(true);
    expect(isGatewayTopic('vigil')).toBe(true);
    expect(isGatewayTopic('vigilant/x')).toBe(false);
    expect(isGatewayTopic('devices/vigil/events/x')).toBe(false);
  });

  test('a gateway speaks to the cloud on vigil/{gw}/…', () => {
    expect(upstreamTopics('gw1')).toEqual({
      actions: 'vigil/gw1/actions',
      status: 'vigil/gw1/status',
      rules: 'vigil/gw1/rules',
      rulesStatus: 'vigil/gw1/rules/status',
      rulesShadow: 'vigil/gw1/rules/shadow',
      shadow: 'vigil/gw1/shadow',
      profiles: 'vigil/gw1/profiles',
      profilesStatus: 'vigil/gw1/profiles/status',
      events: 'vigil/gw1/events',
      commands: 'vigil/gw1/commands',
      commandsStatus: 'vigil/gw1/commands/status',
      health: 'vigil/gw1/health',
      keys: 'vigil/gw1/keys',
      keysStatus: 'vigil/gw1/keys/status',
    });
    expect(groupTopics('north')).toEqual({
      rules: 'vigil/groups/north/rules',
      keys: 'vigil/groups/north/keys',
    });
  });
});

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
    ['devices/dev-1/eventsx/telemetry', 'dev-1'],
    ['devices/dev-1', 'dev-1'],
    ['devices', undefined],
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

  test('a topic parsed again gives the same parts, beyond the number of parses kept too; what is kept is frozen', () => {
    const level = fc.string({ minLength: 1, maxLength: 12 }).filter((l) => !/[/+#]/.test(l));
    fc.assert(
      fc.property(fc.array(fc.tuple(level, level), { minLength: 1, maxLength: 40 }), (parts) => {
        for (let round = 0; round < 2; round++) {
          for (const [deviceId, type] of parts) {
            const parsed = parseDeviceTopic(deviceEventTopic(deviceId, type));
            expect(parsed).toEqual({ ok: true, deviceId, type });
            expect(Object.isFrozen(parsed)).toBe(true);
          }
        }
      }),
    );
    // More topics than are kept, then the first of them again.
    for (let i = 0; i < 20_000; i++) parseDeviceTopic(deviceEventTopic(`d${i}`, 'telemetry'));
    expect(parseDeviceTopic('devices/d0/events/telemetry')).toEqual({
      ok: true,
      deviceId: 'd0',
      type: 'telemetry',
    });
    expect(parseDeviceTopic('devices/d19999/events/x/y')).toEqual({
      ok: false,
      reason: 'topic',
      deviceId: 'd19999',
    });
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
