import { Registry } from 'prom-client';
import { afterEach, describe, expect, test } from 'vitest';
import { DurableInputs, rulesRecordOf } from '../../src/runtime/index.js';
import { quietRecoveryDeps } from '../helpers/quiet-recovery.js';
import { QUIET_RULES } from '../helpers/quiet-rules.js';
import { tempDir } from '../helpers/temp.js';
import { captureLogs } from './durability-faults.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const TAIL = 6_000;
const STOPPED = 'recovery stopped by the shutdown before it ended; the next start replays the journal again';

/** A gateway's durable inputs on `dir`, checkpointing only after its recovery. */
async function start(dir: string) {
  const logs = captureLogs('debug');
  const durable = await DurableInputs.open({
    dir,
    logger: logs.logger,
    registry: new Registry(),
    settings: { checkpointIntervalMs: 3_600_000, checkpointRecords: 1e9, replayRecords: 1e9 },
  });
  const restored = durable.restore(QUIET_RULES, { gateway: 'gw1' }, rulesRecordOf(QUIET_RULES, 'dir', 0));
  const recover = () => durable.recover(quietRecoveryDeps(restored));
  const said = () => logs.lines.map((l) => l.msg);
  return { durable, recover, said };
}

describe('a stop while the state is being recovered', () => {
  test('says the recovery did not end, takes no checkpoint, and the next start replays the whole tail', async () => {
    const tmp = await tempDir();
    cleanups.push(() => tmp.remove());
    const dir = `${tmp.path}/journal`;

    // A first run records a tail and is killed: no checkpoint after its first, no close.
    const first = await start(dir);
    cleanups.push(() => first.durable.close().catch(() => undefined));
    await first.recover();
    await first.durable.checkpoint();
    const recorded: Array<Promise<void>> = [];
    for (let i = 0; i < TAIL; i++) {
      const ev = {
        actor: `d${i % 100}`,
        type: 'heartbeat',
        at: 1_000_000,
        data: {},
        source: 'device' as const,
      };
      recorded.push(first.durable.submitEvent(ev, undefined, 'write'));
    }
    await Promise.all(recorded);

    // The second is stopped as its recovery begins.
    const second = await start(dir);
    const recovering = second.recover();
    const closed = second.durable.close();
    const stopped = await recovering;
    await closed;
    expect(stopped.replayed).toBeLessThan(TAIL);
    expect(second.said()).toContain(STOPPED);
    expect(second.said()).not.toContain('state recovered');
    expect(second.said()).not.toContain('checkpoint written');

    const third = await start(dir);
    cleanups.push(() => third.durable.close());
    // The whole tail is replayed again (the journal may hold records of the starts' own beside it).
    expect((await third.recover()).replayed).toBeGreaterThanOrEqual(TAIL);
    expect(third.said()).toContain('state recovered');
    expect(third.said()).not.toContain(STOPPED);
  });
});
