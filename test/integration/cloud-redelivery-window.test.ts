import { join } from 'node:path';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, test } from 'vitest';
import { compileRuleFiles, type RuleSet } from '../../src/rules/index.js';
import {
  DecisionLoop,
  DurableInputs,
  RulesInForce,
  rulesRecordOf,
  UPSTREAM_SENDER,
  VirtualScheduler,
  type Clock,
} from '../../src/runtime/index.js';
import type { PublishSource } from '../../src/runtime/durable-inputs.js';
import { tempDir } from '../helpers/temp.js';
import { captureLogs } from './durability-faults.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const ORDER_RULES = {
  'order.yaml': `id: order
description: Every order from the cloud is confirmed to the cloud, with its number.
priority: 50
category: maintenance
when:
  event: order
then:
  action: confirm-order
  to: [upstream]
  payload:
    n: data.n
`,
};

/** More cloud events than the packet ids remembered per device client (1,024). */
const BACKLOG = 1_500;
const TOPIC = 'vigil/gw1/events';

function orderRules(): RuleSet {
  const loaded = compileRuleFiles(Object.entries(ORDER_RULES).map(([path, text]) => ({ path, text })));
  if (!loaded.ok) throw new Error(JSON.stringify(loaded.problems));
  return loaded.rules;
}

/** Order `n` as the cloud broker delivers it: its payload and where it came from. */
function order(
  n: number,
  messageId: number,
  connection: number,
): { data: { n: number }; source: PublishSource } {
  const payload = Buffer.from(JSON.stringify({ actor: `cust-${n % 8}`, type: 'order', data: { n } }));
  const hash = DurableInputs.hashPublish(TOPIC, payload);
  return { data: { n }, source: { clientId: UPSTREAM_SENDER, connection, messageId, hash } };
}

/** DurableInputs with the decision loop over the journal in `dir`, recovered and live. */
async function start(dir: string, clock: Clock): Promise<DurableInputs> {
  const rules = orderRules();
  const durable = await DurableInputs.open({ dir, logger: captureLogs().logger, registry: new Registry() });
  cleanups.push(() => durable.close());
  const restored = durable.restore(rules, { gateway: 'gw1' }, rulesRecordOf(rules, 'dir', 0));
  const loop = new DecisionLoop({
    rules: new RulesInForce(restored.rules, restored.engine, restored.arbiter),
    scheduler: new VirtualScheduler(),
    outputs: { verdict: () => undefined },
  });
  await durable.recover({
    loop,
    clock,
    profiles: { peek: () => ({ hit: true, profile: undefined }), get: () => Promise.resolve(undefined) },
    pendingWrites: () => [],
    forward: () => undefined,
  });
  return durable;
}

/** Records order `n` as a new cloud event. */
function record(durable: DurableInputs, clock: Clock, n: number, messageId: number, connection: number) {
  const { data, source } = order(n, messageId, connection);
  const ev = { actor: `cust-${n % 8}`, type: 'order', at: clock.now(), data, source: 'cloud' as const };
  return durable.submitEvent(ev, undefined, 'sync', source);
}

describe("the cloud broker's second delivery of a message, after the queue it kept for the gateway's session", () => {
  // aedes, resuming the session while the cloud publishes, delivers a message published meanwhile at once and
  // again after the messages it queued while the gateway was away: thousands later after a long absence.
  test('is recognised after more cloud events than a device client has ids remembered, live and after a restart', async () => {
    const tmp = await tempDir();
    cleanups.push(() => tmp.remove());
    const dir = join(tmp.path, 'journal');
    let now = 1_000_000;
    const clock: Clock = { now: () => now };

    const first = await start(dir, clock);
    // The live delivery comes first, under the next id of the connection; the queued messages follow.
    await record(first, clock, 4_041, 30_000, 1);
    const backlog: Array<Promise<void>> = [];
    for (let i = 1; i <= BACKLOG; i++) {
      now += 1;
      backlog.push(record(first, clock, 2_500 + i, 30_000 + i, 1));
    }
    await Promise.all(backlog);
    // Then the copy from the queue: same packet id, topic and payload, no DUP.
    const again = order(4_041, 30_000, 1).source;
    expect(first.resent(again, false, true)).toBeDefined();
    // A message the broker never sent is new.
    expect(first.resent(order(9_999, 40_000, 1).source, false, true)).toBeUndefined();

    // Across a restart, from the checkpoint and from the journal after it: the gateway died before the PUBACK.
    await first.checkpoint();
    for (let i = 1; i <= BACKLOG; i++) {
      now += 1;
      backlog.push(record(first, clock, 5_000 + i, 40_000 + i, 1));
    }
    await Promise.all(backlog);
    await first.close();
    const second = await start(dir, clock);
    expect(second.resent(order(4_041, 30_000, 2).source, false, true)).toBeDefined();
    expect(second.resent(order(2_501, 30_001, 2).source, false, true)).toBeDefined();
    expect(second.resent(order(5_001, 40_001, 2).source, false, true)).toBeDefined();
  }, 60_000);
});
