// How long inputs wait while a checkpoint takes the engine's state, with the shipped rules and the benchmark's fleet
// (1,000 devices sending telemetry at 5,000 events/s, so hot-average holds 1,000 windows of up to 3,000 readings):
// encoding the engine's groups from the live engine (what inputs waited for before the copy-on-write view), taking
// the view (what they wait for now), and what the events applied while a view lasts pay for it (their groups'
// first copy).
// node --import tsx test/bench/checkpoint-hold.ts [--devices N] [--rate N] [--seconds N] [--rounds N]
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { Engine } from '../../src/engine/index.js';
import { loadRulesDir } from '../../src/rules/index.js';
import { CheckpointEncoder } from '../../src/runtime/index.js';
import type { Event } from '../../src/shared/index.js';

const { values: args } = parseArgs({
  options: {
    devices: { type: 'string', default: '1000' },
    rate: { type: 'string', default: '5000' },
    seconds: { type: 'string', default: '600' },
    rounds: { type: 'string', default: '15' },
  },
});
const DEVICES = Number(args.devices);
const RATE = Number(args.rate);
const SECONDS = Number(args.seconds);
const ROUNDS = Number(args.rounds);

const loaded = await loadRulesDir(fileURLToPath(new URL('../../rules/', import.meta.url)));
if (!loaded.ok) throw new Error(JSON.stringify(loaded.problems));
const engine = new Engine(loaded.rules, { gateway: 'bench' });

let at = 1_000_000;
let n = 0;
/** The next reading: the devices in turn, `RATE` a second, temperatures around 65. */
function reading(): Event {
  const i = n++ % DEVICES;
  at += 1_000 / RATE;
  const temp = 55 + ((n * 7919) % 200) / 10;
  return { actor: `dev-${i}`, type: 'telemetry', at: Math.floor(at), data: { temp }, source: 'device' };
}
for (let k = 0; k < SECONDS * RATE; k++) engine.onEvent(reading(), undefined);

/** CPU and wall milliseconds of `work`. */
function measure(work: () => void): { cpu: number; wall: number } {
  const cpu0 = process.cpuUsage();
  const wall0 = performance.now();
  work();
  const used = process.cpuUsage(cpu0);
  return { cpu: (used.user + used.system) / 1_000, wall: performance.now() - wall0 };
}

const arbiter = { version: 1 as const, contact: [], cooldowns: [], active: [] };
const encodeLive = (): void => {
  const encoder = new CheckpointEncoder(
    { version: 1, seq: 1, at, engine: engine.liveState(), arbiter, lastSeen: [], duplicates: [] },
    2_000,
  );
  const groups = encoder.engineGroups();
  while (groups.next().done !== true);
};
// The events of the time the engine part takes to encode, one per device in turn (at most one per device).
const during = Math.min(DEVICES, Math.ceil(RATE / 50));
const results = {
  encode: [] as number[],
  view: [] as number[],
  withView: [] as number[],
  without: [] as number[],
};
for (let r = 0; r < ROUNDS; r++) {
  results.encode.push(measure(encodeLive).cpu);
  let view: ReturnType<Engine['checkpointView']> | undefined;
  results.view.push(measure(() => (view = engine.checkpointView())).cpu);
  results.withView.push(
    measure(() => {
      for (let k = 0; k < during; k++) engine.onEvent(reading(), undefined);
    }).cpu,
  );
  view?.release();
  results.without.push(
    measure(() => {
      for (let k = 0; k < during; k++) engine.onEvent(reading(), undefined);
    }).cpu,
  );
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
const row = (what: string, xs: number[]): string =>
  `| ${what} | ${median(xs).toFixed(2)} | ${Math.max(...xs).toFixed(2)} |`;
const groups = engine.groupCount();
process.stdout.write(
  [
    `Checkpoint hold: ${groups.toLocaleString('en')} groups after ${SECONDS} s at ${RATE.toLocaleString('en')} events/s from ${DEVICES.toLocaleString('en')} devices, ${ROUNDS} rounds (CPU ms):`,
    '',
    '| | median | max |',
    '| --- | --- | --- |',
    row("engine's groups encoded from the live engine (inputs waited for this before)", results.encode),
    row('copy-on-write view taken (inputs wait for this now)', results.view),
    row(`${during} events while a view lasts (each group's first copy)`, results.withView),
    row(`${during} events without a view`, results.without),
    '',
  ].join('\n'),
);
