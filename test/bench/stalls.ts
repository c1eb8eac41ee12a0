// How long the decision loop's work blocks the event loop where it grows with the state: a rules swap and a
// checkpoint at 200,000 groups (target ≤ 50 ms each), beside the way both were done before (one deep copy of
// the whole state), and how long recovery takes after a crash at 1,000,000 groups.
// node --import tsx test/bench/stalls.ts [--groups N] [--recovery-groups N]
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { Encoder } from 'cbor-x';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { Arbiter } from '../../src/actions/index.js';
import { Engine } from '../../src/engine/index.js';
import type { Event } from '../../src/shared/index.js';
import { compileRuleFiles, type RuleSet } from '../../src/rules/index.js';
import {
  CheckpointEncoder,
  DecisionLoop,
  DurableInputs,
  RulesInForce,
  rulesRecordOf,
  swapRules,
  VirtualScheduler,
} from '../../src/runtime/index.js';

const { values: args } = parseArgs({
  options: {
    groups: { type: 'string', default: '200000' },
    'recovery-groups': { type: 'string', default: '1000000' },
  },
});
const GROUPS = Number(args.groups);
const RECOVERY_GROUPS = Number(args['recovery-groups']);
const TARGET_MS = 50;

function rules(policy: string): RuleSet {
  const files = {
    'quiet.yaml':
      'id: quiet\nwhen:\n  absent: reading\n  for: 1h\nthen:\n  action: check\n  to: [upstream]\n',
    'burst.yaml':
      'id: burst\nwhen:\n  event: reading\n  count: 5\n  within: 10m\nthen:\n  action: slow\n  to: [upstream]\n',
    'policy.yaml': policy,
  };
  const loaded = compileRuleFiles(Object.entries(files).map(([path, text]) => ({ path, text })));
  if (!loaded.ok) throw new Error(JSON.stringify(loaded.problems));
  return loaded.rules;
}

/** An engine holding `devices` × 2 groups: a silence timer and a count window per device. */
function loadedEngine(ruleSet: RuleSet, devices: number): Engine {
  const engine = new Engine(ruleSet, { gateway: 'bench' });
  for (let i = 0; i < devices; i++) {
    engine.onEvent(
      { actor: `dev-${i}`, type: 'reading', at: 1_000_000 + i, data: { n: i }, source: 'device' },
      undefined,
    );
  }
  return engine;
}

function time<T>(work: () => T): { ms: number; value: T } {
  const started = performance.now();
  const value = work();
  return { ms: performance.now() - started, value };
}

const line = (what: string, ms: number, target = true): string =>
  `| ${what} | ${ms.toFixed(1)} ms | ${target ? (ms <= TARGET_MS ? 'met' : 'missed') : '–'} |`;

function swapStalls(devices: number): string[] {
  const before = rules('policy:\n  cooldown: 10m\n');
  const after = rules('policy:\n  cooldown: 5m\n');
  const engine = loadedEngine(before, devices);
  const groups = engine.stats().reduce((n, s) => n + s.groups, 0);
  // The way a swap was done before: a deep copy of all state out and back in.
  const copy = time(() => {
    Engine.restore(after, { gateway: 'bench' }, engine.snapshot());
    Arbiter.restore(after.policy, new Arbiter(before.policy).snapshot());
  });
  const inForce = new RulesInForce(before, engine, new Arbiter(before.policy));
  const swap = time(() =>
    swapRules({ rules: inForce, armTimer: () => undefined, cancelTimer: () => undefined }, after, {
      gateway: 'bench',
    }),
  );
  return [
    `Rules swap at ${groups.toLocaleString('en')} groups (policy changed, every scenario kept):`,
    '',
    '| | longest stall | ≤ 50 ms |',
    '| --- | --- | --- |',
    line('deep copy of the state (before)', copy.ms, false),
    line('state moved over (now)', swap.ms),
    '',
  ];
}

/** The longest and the total time of the steps of `steps`. */
function stepTimes(steps: Generator<void, void>): { longest: number; total: number } {
  let longest = 0;
  let total = 0;
  for (;;) {
    const started = performance.now();
    const done = steps.next().done === true;
    const ms = performance.now() - started;
    longest = Math.max(longest, ms);
    total += ms;
    if (done) return { longest, total };
  }
}

function checkpointStalls(devices: number): string[] {
  const ruleSet = rules('policy:\n  cooldown: 10m\n');
  const engine = loadedEngine(ruleSet, devices);
  const groups = engine.stats().reduce((n, s) => n + s.groups, 0);
  const lastSeen: Array<[string, number]> = Array.from({ length: devices }, (_, i) => [
    `dev-${i}`,
    1_000_000 + i,
  ]);
  const arbiter = { version: 1 as const, contact: [], cooldowns: [], active: [] };
  const whole = time(() => engine.snapshot());
  const encoder = new Encoder({ useRecords: false, mapsAsObjects: true });
  const encodeWhole = time(() => encoder.encode({ engine: whole.value, lastSeen }));
  // The view of the engine taken at the checkpoint's instant: the only step inputs wait for.
  const view = time(() => engine.checkpointView());
  const chunked = new CheckpointEncoder(
    { version: 1, seq: 1, at: 0, engine: view.value.state, arbiter, lastSeen, duplicates: [] },
    2_000,
  );
  const live = stepTimes(chunked.engineGroups());
  view.value.release();
  const copies = stepTimes(chunked.copies());
  const file = chunked.finish();
  return [
    `Checkpoint at ${groups.toLocaleString('en')} groups and ${devices.toLocaleString('en')} last-seen times:`,
    '',
    '| | longest stall | ≤ 50 ms |',
    '| --- | --- | --- |',
    line('one deep copy of the engine (before)', whole.ms, false),
    line(
      `one CBOR encoding of the copy (before; ${(encodeWhole.value.length / 1e6).toFixed(1)} MB)`,
      encodeWhole.ms,
      false,
    ),
    line('view of the engine taken, copy-on-write (now; inputs wait for this step only)', view.ms),
    line(
      `engine encoded from the view, 2,000 groups a step (now; ${live.total.toFixed(0)} ms in all, inputs applied meanwhile)`,
      live.longest,
    ),
    line(
      `last-seen times encoded, 2,000 a step (now; ${copies.total.toFixed(0)} ms in all; ${(file.bytes / 1e6).toFixed(1)} MB)`,
      copies.longest,
    ),
    '',
  ];
}

/**
 * A durable gateway core in `dir` with the bench's rules, recovered and live. `onRecovering`: when the recovery the
 * broker is already listening through begins (after the journal and the checkpoint are open and the state restored).
 */
async function openDurable(
  dir: string,
  clock: { now: () => number },
  onLiveEvent?: (ev: Event) => void,
  onRecovering?: () => void,
): Promise<DurableInputs> {
  const ruleSet = rules('policy:\n  cooldown: 10m\n');
  const record = rulesRecordOf(ruleSet, 'dir', 0);
  const durable = await DurableInputs.open({
    dir,
    logger: pino({ level: 'silent' }),
    registry: new Registry(),
  });
  const restored = durable.restore(ruleSet, { gateway: 'bench' }, record);
  const loop = new DecisionLoop({
    rules: new RulesInForce(restored.rules, restored.engine, restored.arbiter),
    scheduler: new VirtualScheduler(clock.now()),
    outputs: { verdict: () => undefined },
  });
  onRecovering?.();
  await durable.recover({
    loop,
    clock,
    profiles: { peek: () => ({ hit: true, profile: undefined }), get: () => Promise.resolve(undefined) },
    pendingWrites: () => [],
    forward: () => undefined,
    onLiveEvent,
  });
  return durable;
}

/** Submits one reading of each of `count` devices, `from` on, a thousand at a time. */
async function readings(durable: DurableInputs, clock: { now: () => number }, from: number, count: number) {
  for (let i = from; i < from + count; i += 1_000) {
    await Promise.all(
      Array.from({ length: Math.min(1_000, from + count - i) }, (_, k) =>
        durable.submitEvent(
          { actor: `dev-${i + k}`, type: 'reading', at: clock.now(), data: { n: i + k }, source: 'device' },
          undefined,
          'write',
        ),
      ),
    );
  }
}

/**
 * A whole checkpoint of a live gateway core (copy, encoding, file written and synced): the longest turn of the
 * event loop meanwhile (a chain of setImmediate measures the gaps between turns) and the longest an input
 * submitted every millisecond meanwhile waited to be applied.
 */
async function liveCheckpoint(devices: number): Promise<string[]> {
  const dir = await mkdtemp(join(tmpdir(), 'vigil-bench-checkpoint-'));
  let now = 1_000_000;
  const clock = { now: () => now++ };
  const submittedAt = new Map<string, number>();
  let longestWait = 0;
  const durable = await openDurable(dir, clock, (ev) => {
    const at = submittedAt.get(ev.actor);
    if (at !== undefined) longestWait = Math.max(longestWait, performance.now() - at);
  });
  try {
    await readings(durable, clock, 0, devices);
    await durable.checkpoint();
    const groups = devices * 2;
    let longest = 0;
    let last = performance.now();
    let running = true;
    const tick = (): void => {
      const t = performance.now();
      longest = Math.max(longest, t - last);
      last = t;
      if (running) setImmediate(tick);
    };
    let n = 0;
    const feeder = setInterval(() => {
      const actor = `dev-${n++ % devices}`;
      submittedAt.set(actor, performance.now());
      void durable.submitEvent(
        { actor, type: 'reading', at: clock.now(), data: {}, source: 'device' },
        undefined,
        'write',
      );
    }, 1);
    setImmediate(tick);
    const started = performance.now();
    await durable.checkpoint();
    const ms = performance.now() - started;
    running = false;
    clearInterval(feeder);
    const bytes = (
      await stat(
        join(
          dir,
          (await readdir(dir))
            .filter((f) => f.startsWith('checkpoint-'))
            .sort()
            .at(-1) ?? '',
        ),
      )
    ).size;
    await durable.close();
    return [
      `A live checkpoint at ${groups.toLocaleString('en')} groups (${(bytes / 1e6).toFixed(1)} MB written and synced, ${ms.toFixed(0)} ms in all):`,
      '',
      '| | longest | ≤ 50 ms |',
      '| --- | --- | --- |',
      line('event-loop stall during the checkpoint', longest),
      line('wait of an input submitted meanwhile (recorded, then applied)', longestWait, false),
      '',
    ];
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function recoveryTime(devices: number): Promise<string[]> {
  const dir = await mkdtemp(join(tmpdir(), 'vigil-bench-recovery-'));
  let now = 1_000_000;
  const clock = { now: () => now++ };
  try {
    const first = await openDurable(dir, clock);
    await readings(first, clock, 0, devices);
    await first.checkpoint();
    // A tail after the checkpoint, then the crash: nothing closed, nothing more written.
    const tail = Math.round(devices / 10);
    await readings(first, clock, 0, tail);
    // The longest turn of the event loop while the broker would already listen (a chain of setImmediate).
    let recoveringAt: number | undefined;
    let longest = 0;
    let last = 0;
    const tick = (): void => {
      const t = performance.now();
      longest = Math.max(longest, t - last);
      last = t;
      if (recoveringAt !== undefined) setImmediate(tick);
    };
    const started = performance.now();
    const second = await openDurable(dir, clock, undefined, () => {
      recoveringAt = last = performance.now();
      setImmediate(tick);
    });
    const ended = performance.now();
    const recovering = ended - (recoveringAt ?? started);
    recoveringAt = undefined;
    await second.close();
    await first.close().catch(() => undefined);
    return [
      `Recovery after a crash at ${(devices * 2).toLocaleString('en')} groups (checkpoint + ${tail.toLocaleString('en')} journal records): ${((ended - started) / 1000).toFixed(2)} s`,
      '',
      '| | ms |',
      '| --- | --- |',
      `| journal and checkpoint opened, state restored (before the broker listens) | ${(ended - started - recovering).toFixed(0)} |`,
      `| journal tail replayed, timers armed (the broker listening) | ${recovering.toFixed(0)} |`,
      `| longest event-loop stall while the broker listens | ${longest.toFixed(1)} |`,
      '',
    ];
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const out = [
  `# Loop stalls (${new Date().toISOString()})`,
  '',
  ...swapStalls(GROUPS / 2),
  ...checkpointStalls(GROUPS / 2),
  ...(await liveCheckpoint(GROUPS / 2)),
  ...(await recoveryTime(RECOVERY_GROUPS / 2)),
];
process.stdout.write(out.join('\n') + '\n');
