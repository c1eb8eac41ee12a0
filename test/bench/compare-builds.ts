// Compares the gateway's CPU per event between builds, the way the hot-path changes in docs/benchmarks.md
// were measured: each build runs the same fixed load in turn, a few rounds, and the median is kept. CPU time
// per event moves far less than latency when other work shares the machine.
// node --import tsx test/bench/compare-builds.ts [--rate N] [--rounds N] [--shipped] [--qos 0|1] GATEWAY...
// where each GATEWAY is an executable taking vigil's arguments (the single binary, or a script running
// `node some/dist/cli.js "$@"`).
import { parseArgs } from 'node:util';
import { startCloudBroker } from './cloud-broker.js';
import { LoadGenClient } from './load-gen-client.js';
import { measure } from './measure.js';
import { startVigil } from './systems.js';
import { benchSecret, prepareVigil } from './vigil-setup.js';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    rate: { type: 'string', default: '8000' },
    rounds: { type: 'string', default: '3' },
    qos: { type: 'string', default: '0' },
    shipped: { type: 'boolean', default: false },
  },
});
if (positionals.length === 0) {
  process.stderr.write(
    'usage: compare-builds.ts [--rate N] [--rounds N] [--qos 0|1] [--shipped] GATEWAY...\n',
  );
  process.exit(2);
}
const rate = Number(values.rate);
const qos = values.qos === '1' ? 1 : 0;
const fleet = { seed: 1, sites: 5_000, customers: 25_000 };
const secret = benchSecret();
const setup = await prepareVigil(
  { ...fleet, profiles: 100_000, credentialed: 1_000, secret },
  100,
  positionals[0],
);
const cloud = await startCloudBroker();
const perEvent = new Map<string, number[]>();
const minorGcs = new Map<string, number[]>();

/** The gateway's young-generation collections and device events so far, from its /metrics. */
async function gcAndEvents(sut: {
  metrics: () => Promise<string>;
}): Promise<{ minorGcs: number; events: number }> {
  const text = await sut.metrics();
  const sum = (pattern: RegExp): number =>
    [...text.matchAll(pattern)].reduce((total, m) => total + Number(m[1] ?? 0), 0);
  return {
    minorGcs: sum(/^vigil_nodejs_gc_duration_seconds_count\{kind="minor"\} (\S+)$/gm),
    events: sum(/^vigil_events_in_total\{[^}]*source="device"[^}]*\} (\S+)$/gm),
  };
}
try {
  for (let round = 0; round < Number(values.rounds); round++) {
    for (const gateway of positionals) {
      const sut = await startVigil(setup, {
        cloudUrl: cloud.url,
        binary: gateway,
        rulesDir: values.shipped ? setup.shippedRulesDir : setup.rulesDir,
      });
      const gen = LoadGenClient.start();
      try {
        await gen.request(
          {
            kind: 'connect',
            url: sut.url,
            devices: 1_000,
            ...fleet,
            mode: 'vigil',
            secret,
            cloudUrl: cloud.url,
          },
          'connected',
        );
        const before = await gcAndEvents(sut);
        const { record } = await measure(gen, sut, rate, qos, {
          warmupMs: 2_000,
          measureMs: 10_000,
          drainMs: 3_000,
        });
        const after = await gcAndEvents(sut);
        const us = (record.cpuPct / 100 / record.achievedRate) * 1e6;
        perEvent.set(gateway, [...(perEvent.get(gateway) ?? []), us]);
        // Young-generation collections per 1,000 events: they run each time the nursery fills, so they follow the
        // bytes allocated per event (the nursery's size is the same in both builds).
        const minorPerK =
          ((after.minorGcs - before.minorGcs) / Math.max(1, after.events - before.events)) * 1000;
        minorGcs.set(gateway, [...(minorGcs.get(gateway) ?? []), minorPerK]);
        process.stdout.write(
          `${gateway}: ${us.toFixed(1)} µs CPU/event, ${minorPerK.toFixed(2)} minor GCs per 1,000 events ` +
            `(CPU ${record.cpuPct}% at ${record.achievedRate}/s), ` +
            `p50 ${record.latencyMs?.p50 ?? '–'} ms, p99 ${record.latencyMs?.p99 ?? '–'} ms, ` +
            `CPU stall ${record.cpuStallPct ?? '–'}%, dropped ${record.dropped}\n`,
        );
      } finally {
        await gen.stop();
        await sut.stop();
      }
    }
  }
} finally {
  await cloud.stop();
  await setup.remove();
}
for (const [gateway, list] of perEvent) {
  const sorted = [...list].sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)] ?? NaN;
  const gcs = [...(minorGcs.get(gateway) ?? [])].sort((a, b) => a - b);
  const gcMedian = gcs[Math.floor(gcs.length / 2)] ?? NaN;
  process.stdout.write(
    `${gateway}: median ${median.toFixed(1)} µs CPU/event (${sorted.map((v) => v.toFixed(1)).join(', ')}), ` +
      `median ${gcMedian.toFixed(2)} minor GCs per 1,000 events (${gcs.map((v) => v.toFixed(2)).join(', ')})\n`,
  );
}
