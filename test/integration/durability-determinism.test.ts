import { join } from 'node:path';
import fc from 'fast-check';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, test } from 'vitest';
import { compileRuleFiles, type RuleSet } from '../../src/rules/index.js';
import {
  DecisionLoop,
  DurableInputs,
  RulesInForce,
  rulesRecordOf,
  VirtualScheduler,
  type Clock,
  type RulesRecord,
} from '../../src/runtime/index.js';
import type { Profile } from '../../src/shared/index.js';
import { tempDir } from '../helpers/temp.js';
import { captureLogs } from './durability-faults.js';

/**
 * Recovery decides what happened: a run that crashes at random points (between acknowledged inputs) and
 * recovers from its checkpoint and journal each time decides exactly the actions, and the verdicts, of the
 * same inputs run without a crash. The inputs are device events, timer firings (silences), profile changes
 * that decide whether an event fires, rules swaps, and business events emitted for other actors (a device's
 * reading relays an alarm to a hub, whose page escalates to `ops`: each judged by its own actor's profile), all on
 * virtual time and through the real journal. A crash may also come between a decision and the record of the event
 * it emitted for another actor.
 */

/** In both rule sets: device → hub → ops, each hop an event emitted for another actor. */
const CHAIN: Record<string, string> = {
  'relay.yaml': `id: relay
when:
  event: reading
  where: data.n >= 85
then:
  emit:
    event: alarm
    actor: 'data.n >= 95 ? "h1" : "h2"'
    data:
      n: data.n
`,
  'page.yaml': `id: page
priority: 45
when:
  event: alarm
  where: data.n > profile.limit
then:
  action: page
  to: [upstream]
  emit:
    event: escalate
    actor: '"ops"'
    data:
      n: data.n
`,
  'escalated.yaml': `id: escalated
priority: 55
when:
  event: escalate
  where: data.n > profile.limit
  count: 2
  within: 30s
then:
  action: escalate
  to: [upstream]
`,
};

const RULE_SETS: Record<'a' | 'b', Record<string, string>> = {
  a: {
    'hot.yaml': `id: hot
priority: 50
category: support
when:
  event: reading
  where: data.n > profile.limit
then:
  action: cool
  to: [upstream]
`,
    'quiet.yaml': `id: quiet
priority: 40
category: offer
when:
  absent: reading
  for: 10s
then:
  action: check
  to: [upstream]
`,
    // Keyed by a profile field, so that a profile change moves a device to another key.
    'policy.yaml':
      'policy:\n  cooldown: 4s\n  exclusive:\n    - { active: support, for: 15s, suppress: [offer], by: profile.limit }\n',
    ...CHAIN,
  },
  b: {
    'hot.yaml': `id: hot
priority: 50
when:
  event: reading
  where: data.n > profile.limit + 20
then:
  action: cool
  to: [upstream]
`,
    'burst.yaml': `id: burst
priority: 60
when:
  event: reading
  count: 3
  within: 6s
then:
  action: slow-down
  to: [upstream]
`,
    // Named windows, one of them a calendar hour: restored from checkpoints like any window.
    'trend.yaml': `id: trend
priority: 35
when:
  event: reading
  windows:
    recent: 10s
    hour: { every: 1h, tz: Europe/Berlin }
  aggregate:
    avg: avg(data.n)
    n: count()
  having: recent.avg > hour.avg + 10 && hour.n >= 3
then:
  action: trend
  to: [upstream]
`,
    'policy.yaml':
      'policy:\n  contact:\n    - { categories: [general], max: 2, per: 20s, by: profile.limit }\n    - { max: 3, per: 20s }\n',
    ...CHAIN,
  },
};

function compiled(name: 'a' | 'b'): { rules: RuleSet; record: RulesRecord } {
  const loaded = compileRuleFiles(Object.entries(RULE_SETS[name]).map(([path, text]) => ({ path, text })));
  if (!loaded.ok) throw new Error(JSON.stringify(loaded.problems));
  return { rules: loaded.rules, record: rulesRecordOf(loaded.rules, 'bundle', name === 'a' ? 1 : 2) };
}

type Op =
  /** `lost`: the process dies after deciding on the event, before the events it emitted are recorded. */
  | { op: 'event'; actor: string; n: number; dt: number; lost: boolean }
  | { op: 'profile'; actor: string; limit: number }
  | { op: 'swap'; to: 'a' | 'b' }
  | { op: 'advance'; dt: number }
  | { op: 'checkpoint' }
  | { op: 'crash' };

const DEVICES = ['d1', 'd2', 'd3'];
const ACTORS = [...DEVICES, 'h1', 'h2', 'ops'];
const device = fc.constantFrom(...DEVICES);
const actor = fc.constantFrom(...ACTORS);
const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 8,
    arbitrary: fc.record({
      op: fc.constant('event' as const),
      actor: device,
      n: fc.integer({ min: 0, max: 100 }),
      dt: fc.integer({ min: 0, max: 4_000 }),
      lost: fc.boolean(),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant('profile' as const),
      actor,
      limit: fc.integer({ min: 0, max: 100 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      op: fc.constant('swap' as const),
      to: fc.constantFrom('a' as const, 'b' as const),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({ op: fc.constant('advance' as const), dt: fc.integer({ min: 0, max: 15_000 }) }),
  },
  { weight: 1, arbitrary: fc.constant({ op: 'checkpoint' as const }) },
  { weight: 2, arbitrary: fc.constant({ op: 'crash' as const }) },
);

/** One gateway's decision loop over the journal in `dir`: recovered, then live, on the shared virtual clock. */
interface Instance {
  durable: DurableInputs;
  scheduler: VirtualScheduler;
}

/** The scenarios that decided anything, across all runs: the chain must have been exercised. */
const scenariosSent = new Set<string>();
/** Emitted events a recovery decided again and found unrecorded, across all runs. */
let resubmitted = 0;

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/**
 * Runs `ops` against a fresh journal; `crashes` decides whether a `crash` op abandons the instance (no
 * checkpoint, no close: what a SIGKILL leaves) and starts another on the same directory. Returns every
 * verdict made, live or re-decided by a recovery, as `id verdict` strings.
 */
async function run(ops: readonly Op[], crashes: boolean): Promise<Set<string>> {
  const tmp = await tempDir();
  cleanups.push(() => tmp.remove());
  const dir = join(tmp.path, 'journal');
  let now = 1_000_000;
  const clock: Clock = { now: () => now };
  const profiles = new Map<string, Profile>(ACTORS.map((a) => [a, { limit: 50 }]));
  const verdicts = new Set<string>();
  let inForce = compiled('a');
  const abandoned: DurableInputs[] = [];
  /** Emitted events being recorded; checkpoints wait for them, as the gateway's do. */
  const emits = new Set<Promise<void>>();
  /** Set while the process is about to die: what it emits is never recorded. */
  let dying = false;

  const start = async (): Promise<Instance> => {
    const durable = await DurableInputs.open({
      dir,
      logger: captureLogs().logger,
      registry: new Registry(),
      // Checkpoints only when the test takes them; segments small enough that rotation happens.
      settings: { checkpointIntervalMs: 3_600_000, checkpointRecords: 1_000_000_000 },
    });
    const restored = durable.restore(inForce.rules, { gateway: 'gw1' }, inForce.record);
    const scheduler = new VirtualScheduler(now);
    const loop = new DecisionLoop({
      rules: new RulesInForce(restored.rules, restored.engine, restored.arbiter),
      scheduler,
      outputs: {
        verdict: (v) => {
          verdicts.add(`${v.candidate.action.id} ${v.suppressed ?? 'sent'}`);
          scenariosSent.add(v.candidate.action.scenario);
        },
        emitted: (input, replay) => durable.emitted(input, replay),
      },
    });
    let recovering = true;
    await durable.recover({
      loop,
      clock,
      profiles: {
        peek: (id) => ({ hit: true, profile: profiles.get(id) }),
        get: (id) => Promise.resolve(profiles.get(id)),
      },
      pendingWrites: () => emits,
      // The gateway's entrance: the emitted event is recorded with its actor's profile, then applied.
      forward: (input) => {
        if (dying) return;
        if (recovering) resubmitted++;
        const recorded = durable.submitEmitted(input, profiles.get(input.event.actor));
        emits.add(recorded);
        void recorded.catch(() => undefined).finally(() => emits.delete(recorded));
      },
    });
    recovering = false;
    // The checkpoint recovery starts in the background is awaited: abandoning an instance stands for a SIGKILL,
    // which would also stop that write, and an abandoned instance must not write on after its successor opened.
    await durable.checkpoint();
    return { durable, scheduler };
  };

  let gw = await start();
  const advance = async (to: number, inclusive: boolean): Promise<void> => {
    const fired: Array<Promise<void>> = [];
    gw.scheduler.advance(to, inclusive, (timer, who, dueAt) => {
      now = Math.max(now, dueAt);
      fired.push(
        gw.durable.submitTimer(timer, dueAt, who, who === undefined ? undefined : profiles.get(who)),
      );
    });
    await Promise.all(fired);
    now = Math.max(now, to);
  };

  for (const op of ops) {
    switch (op.op) {
      case 'event':
        await advance(now + op.dt, false);
        dying = crashes && op.lost;
        await gw.durable.submitEvent(
          { actor: op.actor, type: 'reading', at: now, data: { n: op.n }, source: 'device' },
          profiles.get(op.actor),
          'sync',
        );
        if (dying) {
          abandoned.push(gw.durable);
          dying = false;
          gw = await start();
        }
        break;
      case 'profile': {
        const before = profiles.get(op.actor) ?? null;
        const after = { limit: op.limit };
        await gw.durable.submitProfiles([{ id: op.actor, before, after }], now);
        profiles.set(op.actor, after);
        break;
      }
      case 'swap': {
        const next = compiled(op.to);
        if (next.record.hash === inForce.record.hash) break;
        await gw.durable.submitRules(next.rules, next.record, now);
        inForce = next;
        break;
      }
      case 'advance':
        await advance(now + op.dt, true);
        break;
      case 'checkpoint':
        await gw.durable.checkpoint();
        break;
      case 'crash':
        if (!crashes) break;
        abandoned.push(gw.durable);
        gw = await start();
        break;
    }
    // What the input emitted, and what that emitted in turn, is recorded before the next input comes.
    while (emits.size > 0) await Promise.all(emits);
  }
  await advance(now + 60_000, true);
  await gw.durable.close();
  // The abandoned instances hold nothing unwritten; their files are closed so the directory can go.
  for (const d of abandoned) await d.close().catch(() => undefined);
  return verdicts;
}

describe('recovery decides what an uncrashed run decides', () => {
  test('crashes at random points between acknowledged inputs, with profile changes and rules swaps', async () => {
    const seed = Number(process.env.VIGIL_DETERMINISM_SEED ?? 20261206);
    const numRuns = 100;

    console.log(`durability determinism: seed ${seed}, ${numRuns} runs`);
    await fc.assert(
      fc.asyncProperty(fc.array(opArb, { minLength: 5, maxLength: 60 }), async (ops) => {
        const straight = await run(ops, false);
        const crashed = await run(ops, true);
        expect([...crashed].sort()).toEqual([...straight].sort());
      }),
      { seed, numRuns },
    );
    expect([...scenariosSent].sort()).toEqual(['burst', 'escalated', 'hot', 'page', 'quiet', 'trend']);
    expect(resubmitted).toBeGreaterThan(0);
  }, 120_000);
});
