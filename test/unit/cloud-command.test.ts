import { describe, expect, test } from 'vitest';
import {
  cloudCommandAction,
  cloudCommandOf,
  commandPayload,
  parseCloudCommand,
} from '../../src/commands/index.js';

const parse = (body: unknown, maxBytes = 1024) =>
  parseCloudCommand(Buffer.from(typeof body === 'string' ? body : JSON.stringify(body)), maxBytes);

describe('parseCloudCommand', () => {
  test('a well-formed command, with data and who sent it', () => {
    expect(
      parse({ id: 'c-1', device: 'dev-1', command: 'reboot', data: { delayS: 5 }, ttl: '10m', by: 'ops' }),
    ).toEqual({
      ok: true,
      command: {
        id: 'c-1',
        device: 'dev-1',
        command: 'reboot',
        data: { delayS: 5 },
        ttlMs: 600_000,
        by: 'ops',
      },
    });
  });

  test('data may be left out: the device receives {}', () => {
    const parsed = parse({ id: 'c-1', device: 'dev-1', command: 'reboot', ttl: '30s' });
    expect(parsed).toMatchObject({ ok: true, command: { data: {}, ttlMs: 30_000 } });
  });

  test.each([
    ['{"id": ', 'json', 'the command is not JSON', undefined],
    [[1, 2], 'not-object', 'the command is not a JSON object', undefined],
    [{ device: 'dev-1', command: 'x', ttl: '1m' }, 'missing-field', '"id" is missing', undefined],
    [{ id: 'c-1', command: 'x', ttl: '1m' }, 'missing-field', '"device" is missing', 'c-1'],
    [{ id: 'c-1', device: 'dev-1', ttl: '1m' }, 'missing-field', '"command" is missing', 'c-1'],
    [{ id: 'c-1', device: 'dev-1', command: 'x' }, 'missing-field', '"ttl" is missing', 'c-1'],
    [
      { id: 7, device: 'dev-1', command: 'x', ttl: '1m' },
      'bad-field',
      expect.stringMatching(/^"id"/),
      undefined,
    ],
    [
      { id: 'c-1', device: 'a/b', command: 'x', ttl: '1m' },
      'bad-field',
      '"device" "a/b" is not a device id',
      'c-1',
    ],
    [
      { id: 'c-1', device: 'dev-1', command: 'a/#', ttl: '1m' },
      'bad-field',
      expect.stringMatching(/^"command"/),
      'c-1',
    ],
    [
      { id: 'c-1', device: 'dev-1', command: 'x', ttl: 'soon' },
      'bad-field',
      expect.stringMatching(/^"ttl"/),
      'c-1',
    ],
    [
      { id: 'c-1', device: 'dev-1', command: 'x', ttl: '0s' },
      'bad-field',
      expect.stringMatching(/^"ttl"/),
      'c-1',
    ],
    [
      { id: 'c-1', device: 'dev-1', command: 'x', ttl: '1m', by: 3 },
      'bad-field',
      '"by" must be a string',
      'c-1',
    ],
  ])('%j is refused: %s', (body, reason, detail, id) => {
    const expected: Record<string, unknown> = { ok: false, reason, detail: detail as unknown };
    if (id !== undefined) expected['id'] = id;
    expect(parse(body)).toEqual(expected);
  });

  test('over the size bound, refused before it is read', () => {
    expect(parse({ id: 'c-1', device: 'dev-1', command: 'x', ttl: '1m' }, 10)).toMatchObject({
      ok: false,
      reason: 'too-large',
    });
  });
});

describe('a cloud command in the command outbox', () => {
  test('is kept apart from decided actions, expires at its own ttl, and sends its data alone', () => {
    const parsed = parse({ id: 'c-1', device: 'dev-1', command: 'reboot', data: [1], ttl: '10s' });
    if (!parsed.ok) throw new Error('not parsed');
    const action = cloudCommandAction('gw1', parsed.command, 1_000);
    expect(action).toMatchObject({ id: 'cloud:c-1', actor: 'dev-1', action: 'reboot', decidedAt: 1_000 });
    expect(cloudCommandOf(action)).toEqual({ id: 'c-1', data: [1], expiresAt: 11_000 });
    expect(commandPayload(action)).toBe('[1]');
    const decided = { ...action, scenario: 'overheat', id: 'abc' };
    expect(cloudCommandOf(decided)).toBeUndefined();
    expect(JSON.parse(commandPayload(decided))).toEqual(decided);
  });
});
