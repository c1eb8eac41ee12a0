// What one checkpoint makes the process take back after the quiet release gave its memory up, at the state the full
// churn ends in: 160,000 hot-average windows (3 readings each), their devices' last-seen times, the arbiter's 250,000
// entries (its bound: half cooldowns, half exclusive memory). A live gateway core on a real journal in a temp dir
// (the shipped rules without device-offline, whose silences have all fired by then); each round makes V8's "last
// resort" collection (what `QuietRelease` makes), then one checkpoint, and reads the process's memory before, at its
// highest meanwhile (every 5 ms), and after. Run it with the gateway's settings:
// MALLOC_ARENA_MAX=2 node --max-old-space-size=512 --max-semi-space-size=4 --import tsx test/bench/checkpoint-memory.ts
//   [--groups N] [--arbiter N] [--rounds N]
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { Arbiter } from '../../src/actions/index.js';
import { loadRulesDir } from '../../src/rules/index.js';
import {
  DecisionLoop,
  DurableInputs,
  releaseUnusedMemory,
  RulesInForce,
  rulesRecordOf,
  VirtualScheduler,
} from '../../src/runtime/index.js';

const { values: args } = parseArgs({
  options: {
    groups: { type: 'string', default: '160000' },
    arbiter: { type: 'string', default: '250000' },
    rounds: { type: 'string', default: '3' },
  },
});
const GROUPS = Number(args.groups);
const ARBITER = Number(args.arbiter);
const ROUNDS = Number(args.rounds);

interface Reading {
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  /** malloc's main arena (the `[heap]` mapping), resident. */
  arena: number;
}

async function reading(): Promise<Reading> {
  const { rss, heapUsed, heapTotal, external } = process.memoryUsage();
  const smaps = await readFile('/proc/self/smaps', 'utf8');
  const at = smaps.indexOf('[heap]');
  const arena = at < 0 ? 0 : Number(/Rss:\s+(\d+) kB/.exec(smaps.slice(at))?.[1] ?? 0) * 1024;
  return { rss, heapUsed, heapTotal, external, arena };
}

const mb = (bytes: number): string => (bytes / 1048576).toFixed(1);

const loaded = await loadRulesDir(fileURLToPath(new URL('../../rules/', import.meta.url)));
if (!loaded.ok) throw new Error(JSON.stringify(loaded.problems));
const ruleSet = {
  ...loaded.rules,
  scenarios: loaded.rules.scenarios.filter((s) => s.id !== 'device-offline'),
};
const dir = await mkdtemp(join(tmpdir(), 'vigil-bench-checkpoint-memory-'));
let now = 1_000_000_000;
const clock = { now: () => now };
const durable = await DurableInputs.open({
  dir,
  logger: pino({ level: 'silent' }),
  registry: new Registry(),
});
const restored = durable.restore(ruleSet, { gateway: 'bench' }, rulesRecordOf(ruleSet, 'dir', 0));
// The arbiter at its bound: what a churn of devices going offline leaves (a cooldown and an exclusive entry each).
const half = Math.floor(ARBITER / 2);
const arbiter = Arbiter.restore(ruleSet.policy, {
  version: 2,
  contact: [],
  cooldowns: Array.from({ length: ARBITER - half }, (_, i) => [
    JSON.stringify(['actor', 'device-offline', `churn-${i}`]),
    now + 600_000,
  ]),
  active: Array.from({ length: half }, (_, i) => [`churn-${i}`, 'support', now]),
});
const loop = new DecisionLoop({
  rules: new RulesInForce(restored.rules, restored.engine, arbiter),
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

/** Device `churn-i`'s readings, as the churn sends them: 3 each, a block of 1,000 devices at a time. */
for (let first = 0; first < GROUPS; first += 1_000) {
  for (let e = 0; e < 3; e++) {
    const submitted: Array<Promise<unknown>> = [];
    for (let i = first; i < Math.min(GROUPS, first + 1_000); i++) {
      const temp = 15 + ((i * 7 + e * 13) % 300) / 10;
      now += 1;
      submitted.push(
        durable.submitEvent(
          { actor: `churn-${i}`, type: 'telemetry', at: now, data: { temp, bat: 3.9 }, source: 'device' },
          undefined,
          'write',
        ),
      );
    }
    await Promise.all(submitted);
  }
}
// The churn's checkpoints were taken while it ran: the first one here is not the one measured.
await durable.checkpoint();
console.log(
  `${restored.engine.groupCount().toLocaleString('en')} engine groups, ${arbiter.size.toLocaleString('en')} arbiter entries; MB (RSS, heap used / committed, external, malloc's main arena):`,
);
const line = (label: string, r: Reading): string =>
  `| ${label} | ${mb(r.rss)} | ${mb(r.heapUsed)} / ${mb(r.heapTotal)} | ${mb(r.external)} | ${mb(r.arena)} |`;
console.log('| round | RSS | heap used / committed | external | main arena |');
console.log('| --- | ---: | ---: | ---: | ---: |');
for (let round = 1; round <= ROUNDS; round++) {
  releaseUnusedMemory();
  await new Promise((resolve) => setTimeout(resolve, 200));
  const before = await reading();
  const peak = { ...before };
  const sampler = setInterval(() => {
    const m = process.memoryUsage();
    peak.rss = Math.max(peak.rss, m.rss);
    peak.heapTotal = Math.max(peak.heapTotal, m.heapTotal);
    peak.heapUsed = Math.max(peak.heapUsed, m.heapUsed);
    peak.external = Math.max(peak.external, m.external);
  }, 5);
  // One input since the last checkpoint, as housekeeping's pass leaves one.
  now += 1_000;
  await durable.submitEvent(
    { actor: 'churn-0', type: 'telemetry', at: now, data: { temp: 20, bat: 3.9 }, source: 'device' },
    undefined,
    'write',
  );
  const started = performance.now();
  await durable.checkpoint();
  const ms = performance.now() - started;
  clearInterval(sampler);
  const after = await reading();
  await new Promise((resolve) => setTimeout(resolve, 2_000));
  const later = await reading();
  console.log(line(`${round}: after the collection`, before));
  console.log(
    line(`${round}: highest during the checkpoint (${ms.toFixed(0)} ms)`, { ...peak, arena: after.arena }),
  );
  console.log(line(`${round}: once written`, after));
  console.log(line(`${round}: 2 s later`, later));
  console.log(
    `| ${round}: grown by | ${mb(later.rss - before.rss)} | ${mb(later.heapUsed - before.heapUsed)} / ${mb(later.heapTotal - before.heapTotal)} | ${mb(later.external - before.external)} | ${mb(later.arena - before.arena)} |`,
  );
}
await durable.close();
await rm(dir, { recursive: true, force: true });
