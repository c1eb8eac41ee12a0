import { parseArgs } from 'node:util';
import { allocatedSync, type Allocation } from './allocated.js';
import { Engine } from '../../src/engine/index.js';
import { loadRulesDir, shippedRulesDir } from '../../src/rules/index.js';
import type { Event, Profile } from '../../src/shared/index.js';

const USAGE = `Usage: node --import tsx test/bench/engine-alloc.ts [options]

Bytes the scenario engine allocates per event, on virtual time: the shipped rules, seeded telemetry, counted as
alloc-probe.ts counts (the heap's growth plus what each collection freed), less what making the events allocates.

  --devices N  devices sending telemetry (default 1000)
  --rate N     events a second, in virtual time (default 5000)
  --events N   events measured (default 300000)
  --help       this text
`;

const { values } = parseArgs({
  options: {
    help: { type: 'boolean', default: false },
    devices: { type: 'string', default: '1000' },
    rate: { type: 'string', default: '5000' },
    events: { type: 'string', default: '300000' },
  },
});
if (values.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}
const devices = Number(values.devices);
const stepMs = 1_000 / Number(values.rate);
const events = Number(values.events);

const loaded = await loadRulesDir(shippedRulesDir());
if (!loaded.ok) throw new Error(JSON.stringify(loaded.problems));
const engine = new Engine(loaded.rules, { gateway: 'gw-bench' });
const profiles: Profile[] = Array.from({ length: devices }, (_, i) => ({ site: `s${i % 50}`, maxTemp: 80 }));

let seed = 1;
const random = (): number => (seed = (seed * 1_103_515_245 + 12_345) & 0x7fffffff) / 0x7fffffff;
let clock = 1_000_000;
let k = 0;

/** A telemetry event as ingest makes one: mostly ordinary readings, a few hot ones and low batteries. */
function next(): { ev: Event; profile: Profile | undefined } {
  const i = k++ % devices;
  clock += stepMs;
  const u = random();
  const temp = u < 0.02 ? 81 + random() * 14 : u < 0.05 ? 71 + random() * 8 : 18 + random() * 24;
  const bat = random() < 0.02 ? 2.9 + random() * 0.35 : 3.4 + random() * 0.8;
  const at = Math.floor(clock);
  const text = `{"temp":${temp.toFixed(1)},"hum":${(20 + random() * 70).toFixed(1)},"bat":${bat.toFixed(2)},"ts":${at}}`;
  const data = JSON.parse(text) as Record<string, unknown>;
  return { ev: { actor: `dev-${i}`, type: 'telemetry', at, data, source: 'device' }, profile: profiles[i] };
}

let effects = 0;
const run = (n: number): void => {
  for (let j = 0; j < n; j++) {
    const { ev, profile } = next();
    effects += engine.onEvent(ev, profile).length;
  }
};
const make = (n: number): void => {
  for (let j = 0; j < n; j++) if (next().ev.at < 0) effects++;
};

function allocated(work: (n: number) => void, n: number): Allocation {
  return allocatedSync(() => work(n), n);
}

run(events);
const alone = allocated(make, events);
const fed = allocated(run, events);
process.stdout.write(
  `${devices} devices at ${values.rate}/s: the engine allocates ${(fed.bytes - alone.bytes).toFixed(0)} B per event ` +
    `(${fed.bytes.toFixed(0)} with the events, ${alone.bytes.toFixed(0)} the events alone), ` +
    `${(fed.cpuUs - alone.cpuUs).toFixed(2)} µs CPU per event; ${(effects / (2 * events)).toFixed(2)} effects per event\n`,
);
