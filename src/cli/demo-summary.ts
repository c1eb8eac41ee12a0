import type { Gateway } from '../app/index.js';
import type { Action } from '../shared/index.js';
import type { LiveFigures } from './demo-console.js';

type Say = (line: string) => void;

/** Latency samples kept for the closing summary: the latest this many, so an endless run stays bounded. */
const MAX_SAMPLES = 100_000;

/** What the demo's cloud and devices received, for the closing summary. */
export class Received {
  count = 0;
  readonly perScenario = new Map<string, number>();
  readonly cloudLatencyMs = new Samples();
  readonly commandLatencyMs = new Samples();

  /** An action the cloud received at `atMs`. */
  action(action: Action, atMs: number): void {
    this.count++;
    this.perScenario.set(action.scenario, (this.perScenario.get(action.scenario) ?? 0) + 1);
    this.cloudLatencyMs.add(atMs - action.eventAt);
  }

  /** A command a device received at `atMs`. */
  command(action: Action, atMs: number): void {
    this.commandLatencyMs.add(atMs - action.eventAt);
  }
}

/** The latest MAX_SAMPLES values, in no particular order (percentiles need none). */
class Samples {
  readonly values: number[] = [];
  private seen = 0;

  add(value: number): void {
    if (this.values.length < MAX_SAMPLES) this.values.push(value);
    else this.values[this.seen % MAX_SAMPLES] = value;
    this.seen++;
  }
}

/** A metric's values, summed over the series whose labels match `labels`. */
async function metricSum(
  gateway: Gateway,
  name: string,
  labels: Record<string, string> = {},
): Promise<number> {
  const metric = gateway.metrics.registry.getSingleMetric(name);
  if (!metric) return 0;
  const { values } = await metric.get();
  return values
    .filter((v) => Object.entries(labels).every(([k, want]) => v.labels[k] === want))
    .reduce((acc, v) => acc + Number(v.value), 0);
}

/** The figures of the demo's live line, read from the gateway's metrics. */
export async function liveFigures(gateway: Gateway): Promise<LiveFigures> {
  return {
    eventsIn: await metricSum(gateway, 'vigil_events_in_total'),
    sent: await metricSum(gateway, 'vigil_actions_decided_total'),
    suppressed: await metricSum(gateway, 'vigil_actions_suppressed_total'),
    outbox: gateway.store.outbox.size,
    devicesConnected: await metricSum(gateway, 'vigil_devices_connected'),
  };
}

/** The demo's closing summary: events, actions decided and suppressed, per scenario, and latencies. */
export async function printSummary(
  say: Say,
  gateway: Gateway,
  received: Received,
  commandsReceived: number,
): Promise<void> {
  const metrics = await gateway.metrics.registry.getMetricsAsJSON();
  const valuesOf = (name: string) => metrics.find((m) => m.name === name)?.values ?? [];
  const sum = (name: string, labels: Record<string, string> = {}) =>
    valuesOf(name)
      .filter((v) => Object.entries(labels).every(([k, want]) => v.labels[k] === want))
      .reduce((acc, v) => acc + Number(v.value), 0);

  say('\nSummary');
  const bySource = ['device', 'broker', 'cloud', 'engine']
    .map((source) => `${source} ${sum('vigil_events_in_total', { source })}`)
    .join(', ');
  say(`  events in                 ${sum('vigil_events_in_total')} (${bySource})`);
  say(`  actions decided           ${sum('vigil_actions_decided_total')}`);
  const reasons = new Map<string, number>();
  for (const v of valuesOf('vigil_actions_suppressed_total')) {
    const reason = String(v.labels.reason);
    reasons.set(reason, (reasons.get(reason) ?? 0) + Number(v.value));
  }
  const byReason = [...reasons].map(([reason, n]) => `${reason} ${n}`).join(', ');
  say(
    `  actions suppressed        ${sum('vigil_actions_suppressed_total')}${byReason ? ` (${byReason})` : ''}`,
  );
  say(`  device commands received  ${commandsReceived}`);
  say(`  actions received upstream ${received.count}`);
  say('  per scenario                  matches  suppressed  received upstream');
  for (const stat of gateway.scenarioStats()) {
    const cells = [
      String(stat.matches).padStart(7),
      String(sum('vigil_actions_suppressed_total', { scenario: stat.scenario })).padStart(11),
      String(received.perScenario.get(stat.scenario) ?? 0).padStart(18),
    ];
    say(`    ${stat.scenario.padEnd(26)} ${cells.join(' ')}`);
  }
  say(`  arrival -> device command ${formatLatency(received.commandLatencyMs.values)}`);
  say(`  arrival -> cloud          ${formatLatency(received.cloudLatencyMs.values)}`);
}

function formatLatency(samples: readonly number[]): string {
  if (samples.length === 0) return 'no samples';
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
  const ms = (v: number) => `${v.toFixed(1)} ms`;
  return `p50 ${ms(at(0.5))}, p99 ${ms(at(0.99))}, max ${ms(sorted[sorted.length - 1] ?? 0)} (${samples.length} samples)`;
}
