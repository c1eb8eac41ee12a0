import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { Counter, Registry } from 'prom-client';
import { afterEach, describe, expect, test } from 'vitest';
import { CommandMetrics, DeviceCommands, type CommandOutcome } from '../../src/commands/index.js';
import { compileRuleFiles } from '../../src/rules/index.js';
import {
  DecisionLoop,
  DurableInputs,
  RulesInForce,
  rulesRecordOf,
  VirtualScheduler,
} from '../../src/runtime/index.js';
import { DATA_FORMATS, type Action } from '../../src/shared/index.js';
import { openStore, STORE_FORMAT_KEY, type Store } from '../../src/store/index.js';
import { tempDir } from '../helpers/temp.js';
import { captureLogs } from './durability-faults.js';

/**
 * The command outbox drops its oldest command to make room, and remembers the dropped id as it remembers the ids
 * devices acknowledged: a recovery that decides the journal's tail again does not queue those commands again.
 * Real LevelDB, the real journal, engine and device commands.
 */
const loaded = compileRuleFiles([
  {
    path: 'set-relay.yaml',
    text: 'id: set-relay\nwhen: { event: reading }\nthen: { action: set-relay, to: [device], payload: { n: data.n } }\n',
  },
]);
if (!loaded.ok) throw new Error(JSON.stringify(loaded.problems));
const rules = loaded.rules;

const FIXTURES = fileURLToPath(new URL('../fixtures/upgrade/', import.meta.url));
const MAX_COUNT = 3;
const READINGS = 7;

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface Run {
  durable: DurableInputs;
  commands: DeviceCommands;
  /** Writes a checkpoint would wait for. */
  held: Array<Promise<unknown>>;
  /** Commands offered to the device (which is away). */
  offered: string[];
  dropped: string[];
  notResent(): number;
}

/** A gateway's decision path for device commands over `store`: recovers the journal in `dir`, then runs live. */
async function start(dir: string, store: Store): Promise<Run> {
  const registry = new Registry();
  const held: Array<Promise<unknown>> = [];
  const offered: string[] = [];
  const dropped: string[] = [];
  let notResent = 0;
  const commands = new DeviceCommands({
    outbox: store.commands,
    link: {
      sendTo: (_clientId, _topic, payload): Promise<CommandOutcome> => {
        offered.push((JSON.parse(payload) as Action).id);
        return Promise.resolve('not-connected');
      },
      publish: () => Promise.resolve(),
    },
    now: () => 1_000_000,
    policy: () => undefined,
    metrics: new CommandMetrics(registry, new Counter({ name: 'sent', help: 'sent', registers: [registry] })),
    logger: pino({ level: 'silent' }),
    holdCheckpointsFor: (write) => held.push(write),
    notResent: () => (notResent += 1),
    onFate: (action, fate) => fate === 'dropped' && dropped.push(action.id),
  });
  const durable = await DurableInputs.open({
    dir,
    logger: captureLogs().logger,
    registry: new Registry(),
    // No checkpoint but the one after recovery: the readings stay in the journal's tail.
    settings: { checkpointIntervalMs: 3_600_000, checkpointRecords: 1_000_000_000 },
  });
  const restored = durable.restore(rules, { gateway: 'gw1' }, rulesRecordOf(rules, 'dir', 0));
  await durable.recover({
    loop: new DecisionLoop({
      rules: new RulesInForce(restored.rules, restored.engine, restored.arbiter),
      scheduler: new VirtualScheduler(1_000_000),
      outputs: {
        verdict: ({ candidate, suppressed }, _now, replay) => {
          if (suppressed === undefined) commands.decided(candidate.action, replay);
        },
      },
    }),
    clock: { now: () => 1_000_000 },
    profiles: { peek: () => ({ hit: true, profile: undefined }), get: () => Promise.resolve(undefined) },
    pendingWrites: () => new Set(),
    forward: () => undefined,
  });
  // The checkpoint recovery starts in the background: abandoning the run stands for a SIGKILL, which would stop it.
  await durable.checkpoint();
  return { durable, commands, held, offered, dropped, notResent: () => notResent };
}

describe('commands dropped to make room', () => {
  test('are not queued again when a recovery decides them again after a crash', async () => {
    const tmp = await tempDir();
    cleanups.push(() => tmp.remove());
    const journal = join(tmp.path, 'journal');
    const limits = { commands: { maxCount: MAX_COUNT } };
    let store = await openStore(tmp.path, limits);
    cleanups.push(() => store.close());

    const live = await start(journal, store);
    for (let n = 1; n <= READINGS; n++) {
      await live.durable.submitEvent(
        { actor: 'dev-1', type: 'reading', at: 1_000_000 + n, data: { n }, source: 'device' },
        undefined,
        'sync',
      );
    }
    await Promise.all(live.held);
    const queued = store.commands.all().map((a) => a.id);
    expect(queued).toHaveLength(MAX_COUNT);
    expect(live.dropped).toHaveLength(READINGS - MAX_COUNT);
    expect(new Set(live.offered).size).toBe(READINGS);

    // kill -9: no checkpoint, no close of the journal; LevelDB holds what was written.
    cleanups.push(() => live.durable.close().catch(() => undefined));
    await store.close();
    store = await openStore(tmp.path, limits);

    const recovered = await start(journal, store);
    await Promise.all(recovered.held);
    // Every reading was decided again: the queued ones are offered again, the dropped ones neither queued nor offered.
    expect(recovered.notResent()).toBe(READINGS);
    expect(recovered.held).toEqual([]);
    expect(recovered.dropped).toEqual([]);
    expect(store.commands.all().map((a) => a.id)).toEqual(queued);
    expect(live.dropped.map((id) => store.commands.known(id))).toEqual(live.dropped.map(() => 'dropped'));
    expect(recovered.offered.filter((id) => live.dropped.includes(id))).toEqual([]);
    await recovered.commands.stop();
    await recovered.durable.close();
  });

  test('a data directory of the previous release opens, keeps its commands, and remembers them once dropped', async () => {
    const tmp = await tempDir();
    cleanups.push(() => tmp.remove());
    execFileSync('tar', ['-xzf', join(FIXTURES, 'v0.1.0-data.tar.gz'), '-C', tmp.path]);
    const data = join(tmp.path, 'data');
    let store = await openStore(data, { commands: { maxCount: 1 } });
    cleanups.push(() => store.close());
    const old = store.commands.all();
    expect(old.map((a) => a.actor)).toContain('dev-cmd');
    expect(store.commands.unreadableOnOpen).toBe(0);
    expect(store.commands.droppedSize).toBe(0);

    const next: Action = { ...(old[0] as Action), id: 'next' };
    const added = await store.commands.add(next);
    expect(added).toEqual({ status: 'queued', dropped: old.map((action) => ({ action, reason: 'full' })) });
    await store.close();

    store = await openStore(data, { commands: { maxCount: 1 } });
    expect(old.map((a) => store.commands.known(a.id))).toEqual(old.map(() => 'dropped'));
    expect(await store.commands.add(old[0] as Action)).toEqual({ status: 'dropped' });
    expect(store.commands.all().map((a) => a.id)).toEqual(['next']);
    // Dropped ids are an area an older build of this format does not read: the format stays.
    expect(await store.sublevels.state.get(STORE_FORMAT_KEY)).toMatchObject({ format: DATA_FORMATS.store });
  });
});
