import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { Counter, Registry } from 'prom-client';
import { afterEach, beforeEach, expect, test } from 'vitest';
import { CommandMetrics, DeviceCommands, type CommandOutcome } from '../../src/commands/index.js';
import type { Action } from '../../src/shared/index.js';
import { openStore, type Store } from '../../src/store/index.js';

let dir: string;
let store: Store;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'vigil-commands-replay-'));
  store = await openStore(dir);
});

afterEach(async () => {
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

function command(id: string): Action {
  return {
    id,
    gateway: 'gw1',
    scenario: 'set-relay',
    action: 'set-relay',
    actor: 'dev-1',
    priority: 50,
    category: 'control',
    decidedAt: 1_000,
    eventAt: 990,
    payload: {},
  };
}

/** Device commands on the real command outbox; the device is away (`not-connected`), every send recorded. */
function deviceCommands(): {
  commands: DeviceCommands;
  sent: string[];
  held: unknown[];
  notResent: () => number;
} {
  const registry = new Registry();
  const sent: string[] = [];
  const held: unknown[] = [];
  let notResent = 0;
  const commands = new DeviceCommands({
    outbox: store.commands,
    link: {
      sendTo: (_clientId, _topic, payload): Promise<CommandOutcome> => {
        sent.push((JSON.parse(payload) as Action).id);
        return Promise.resolve('not-connected');
      },
      publish: () => Promise.resolve(),
    },
    now: () => 2_000,
    policy: () => undefined,
    metrics: new CommandMetrics(registry, new Counter({ name: 'sent', help: 'sent', registers: [registry] })),
    logger: pino({ level: 'silent' }),
    holdCheckpointsFor: (write) => held.push(write),
    notResent: () => (notResent += 1),
  });
  return { commands, sent, held, notResent: () => notResent };
}

test('a command decided again by recovery that is queued already is answered at once: not written, offered again', async () => {
  await store.commands.add(command('a'));
  const { commands, sent, held, notResent } = deviceCommands();
  const bytes = store.commands.bytes;
  commands.decided(command('a'), true);
  // Answered in the same turn, with nothing for a checkpoint to wait for.
  expect(notResent()).toBe(1);
  expect(held).toEqual([]);
  expect(sent).toEqual(['a']);
  expect(store.commands.size).toBe(1);
  expect(store.commands.bytes).toBe(bytes);
  await commands.stop();
});

test('a command decided again whose device acknowledged it is neither queued nor sent', async () => {
  await store.commands.add(command('a'));
  await store.commands.acknowledge('a', 1_500);
  const { commands, sent, held, notResent } = deviceCommands();
  commands.decided(command('a'), true);
  expect(notResent()).toBe(1);
  expect([held, sent, store.commands.size]).toEqual([[], [], 0]);
  await commands.stop();
});

test('a command decided again that was dropped to make room is neither queued nor sent', async () => {
  await store.close();
  store = await openStore(dir, { commands: { maxCount: 1 } });
  await store.commands.add(command('a'));
  await store.commands.add(command('b'));
  const { commands, sent, held, notResent } = deviceCommands();
  commands.decided(command('a'), true);
  expect(notResent()).toBe(1);
  expect([held, sent, store.commands.all().map((a) => a.id)]).toEqual([[], [], ['b']]);
  await commands.stop();
});

test('a command new to the outbox is still written, and a checkpoint waits for it', async () => {
  const { commands, sent, held, notResent } = deviceCommands();
  commands.decided(command('b'), true);
  expect(held).toHaveLength(1);
  await Promise.all(held);
  await commands.stop();
  expect(notResent()).toBe(0);
  expect(store.commands.known('b')).toBe('queued');
  expect(sent).toEqual(['b']);
});
