// How long the decision loop's work blocks the event loop where it grows with the state: a rules swap and a
// checkpoint at 200,000 groups (target ≤ 50 ms each), beside the way both were done before (one deep copy of
// the whole state), and how long recovery takes after a crash at 1,000,000 groups.
// node --import tsx test/bench/stalls.ts [--groups N] [--recovery-groups N]
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { Encoder } from 'cbor-x';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { Arbiter } from '../../src/actions/index.js';
import { Engine } from '../../src/engine/index.js';
import { compileRuleFiles, type RuleSet } from '../../src/rules/index.js';
import {
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

function checkpointStalls(devices: number): string[] {
  const ruleSet = rules('policy:\n  cooldown: 10m\n');
  const engine = loadedEngine(ruleSet, devices);
  const groups = engine.stats().reduce((n, s) => n + s.groups, 0);
  const whole = time(() => engine.snapshot());
  let longest = 0;
  let total = 0;
  const chunks = engine.snapshotInChunks(2_000);
  let state;
  for (;;) {
    const started = performance.now();
    const step = chunks.next();
    const ms = performance.now() - started;
    longest = Math.max(longest, ms);
    total += ms;
    if (step.done === true) {
      state = step.value;
      break;
    }
  }
  const encoder = new Encoder({ useRecords: false, mapsAsObjects: true });
  const encode = time(() => encoder.encode(state));
  return [
    `Checkpoint at ${groups.toLocaleString('en')} groups:`,
    '',
    '| | longest stall | ≤ 50 ms |',
    '| --- | --- | --- |',
    line('one deep copy of the engine (before)', whole.ms, false),
    line(`copy in chunks of 2,000 groups (now; ${total.toFixed(0)} ms in all, inputs wait)`, longest),
    line(`CBOR encoding of the checkpoint (${(encode.value.length / 1e6).toFixed(1)} MB)`, encode.ms),
    '',
  ];
}

async function recoveryTime(devices: number): Promise<string[]> {
  const dir = await mkdtemp(join(tmpdir(), 'vigil-bench-recovery-'));
  const logger = pino({ level: 'silent' });
  const ruleSet = rules('policy:\n  cooldown: 10m\n');
  const record = rulesRecordOf(ruleSet, 'dir', 0);
  let now = 1_000_000;
  const clock = { now: () => now };
  const start = async (): Promise<DurableInputs> => {
    const durable = await DurableInputs.open({ dir, logger, registry: new Registry() });
    const restored = durable.restore(ruleSet, { gateway: 'bench' }, record);
    const loop = new DecisionLoop({
      rules: new RulesInForce(restored.rules, restored.engine, restored.arbiter),
      scheduler: new VirtualScheduler(now),
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
  };
  try {
    const first = await start();
    const submit = (i: number) =>
      first.submitEvent(
        { actor: `dev-${i}`, type: 'reading', at: now++, data: { n: i }, source: 'device' },
        undefined,
        'write',
      );
    for (let i = 0; i < devices; i += 1_000) {
      await Promise.all(Array.from({ length: Math.min(1_000, devices - i) }, (_, k) => submit(i + k)));
    }
    await first.checkpoint();
    // A tail after the checkpoint, then the crash: nothing closed, nothing more written.
    const tail = Math.round(devices / 10);
    for (let i = 0; i < tail; i += 1_000) {
      await Promise.all(Array.from({ length: Math.min(1_000, tail - i) }, (_, k) => submit(i + k)));
    }
    const started = performance.now();
    const second = await start();
    const ms = performance.now() - started;
    await second.close();
    await first.close().catch(() => undefined);
    return [
      `Recovery after a crash at ${(devices * 2).toLocaleString('en')} groups (checkpoint + ${tail.toLocaleString('en')} journal records): ${(ms / 1000).toFixed(2)} s`,
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
  ...(await recoveryTime(RECOVERY_GROUPS / 2)),
];
process.stdout.write(out.join('\n') + '\n');
