// The engine's step for the crash benchmark's windowed averages alone, on virtual time: its `windowScenarios` rules
// (`window: Nm`, `avg(data.temp)`, `having: avgTemp > 1000`, by device), telemetry from `--devices` devices at
// `--per-device` events/s each. Prints events per CPU-second and bytes allocated per event over the measured stretch,
// after a warm-up that fills the windows.
// node --import tsx test/bench/window-step.ts [--help]
import { parseArgs } from 'node:util';
import { loadavg } from 'node:os';
import { allocatedSync, type Allocation } from './allocated.js';
import { Engine } from '../../src/engine/index.js';
import { compileRuleFiles } from '../../src/rules/index.js';
import type { Event } from '../../src/shared/index.js';
import { windowScenarios } from './startup-crash.js';

const USAGE = `Usage: node --import tsx test/bench/window-step.ts [options]

The engine alone on the crash benchmark's windowed averages (no journal, no broker), on virtual time.

  --scenarios N   windowed-average scenarios, windows of 1..N minutes (default 8, as the crash benchmark's)
  --devices N     devices sending telemetry (default 10000)
  --per-device R  events a second each device sends (default 2)
  --warm S        seconds of virtual time before measuring: the windows fill (default 30)
  --measure S     seconds of virtual time measured (default 30)
  --help          this text`;

const { values } = parseArgs({
  options: {
    scenarios: { type: 'string', default: '8' },
    devices: { type: 'string', default: '10000' },
    'per-device': { type: 'string', default: '2' },
    warm: { type: 'string', default: '30' },
    measure: { type: 'string', default: '30' },
    help: { type: 'boolean', default: false },
  },
});
if (values.help) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}
const devices = Number(values.devices);
const rate = devices * Number(values['per-device']);
const warmEvents = Math.round(Number(values.warm) * rate);
const measuredEvents = Math.round(Number(values.measure) * rate);

const loaded = compileRuleFiles([
  { path: 'bench-windows.yaml', text: windowScenarios(Number(values.scenarios)) },
]);
if (!loaded.ok) throw new Error(JSON.stringify(loaded.problems));
const engine = new Engine(loaded.rules, { gateway: 'gw-bench' });
const actors = Array.from({ length: devices }, (_, i) => `dev-${i}`);

let seed = 1;
const random = (): number => (seed = (seed * 1_103_515_245 + 12_345) & 0x7fffffff) / 0x7fffffff;
const startAt = 1_000_000;
let k = 0;

/** The next reading, devices in turn, `rate` a second of virtual time; a temperature with one decimal, as sent. */
function next(): Event {
  const at = startAt + Math.floor((k * 1_000) / rate);
  const actor = actors[k++ % devices] as string;
  const temp = Math.round((18 + random() * 24) * 10) / 10;
  return { actor, type: 'telemetry', at, data: { temp, hum: 40 }, source: 'device' };
}

let effects = 0;
const run = (n: number): void => {
  for (let j = 0; j < n; j++) effects += engine.onEvent(next(), undefined).length;
};
const make = (n: number): void => {
  for (let j = 0; j < n; j++) if (next().at < 0) effects++;
};

/** CPU µs and bytes allocated (the heap's growth plus what each collection freed) per call of `work`'s unit. */
function measure(work: (n: number) => void, n: number): Allocation {
  return allocatedSync(() => work(n), n);
}

run(warmEvents);
const fed = measure(run, measuredEvents);
const alone = measure(make, measuredEvents);
const cpuUs = fed.cpuUs - alone.cpuUs;
const groups = engine.stats().reduce((n, s) => n + s.groups, 0);
process.stdout.write(
  `${values.scenarios} windowed averages, ${devices} devices at ${values['per-device']}/s each, ` +
    `${values.warm} s warm, ${values.measure} s measured (${groups} groups): ` +
    `${Math.round(1e6 / cpuUs).toLocaleString('en-US')} events per CPU-second ` +
    `(${cpuUs.toFixed(2)} µs each, making the events excluded), ` +
    `${(fed.bytes - alone.bytes).toFixed(0)} B allocated per event; ${effects} effects; ` +
    `load average ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}\n`,
);
