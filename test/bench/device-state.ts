// node --expose-gc --import tsx test/bench/device-state.ts [--devices N]
// What a device that has spoken costs in memory while its state is live, by part: the engine's groups (the shipped
// rules: device-offline's silence and hot-average's window), the pending silence timer (the timer queue and the
// driver's timer-to-actor map), and the last-seen time. Each device sends 3 telemetry readings, its id parsed out of
// an MQTT topic as ingest does. Parts are measured by dropping them one at a time (heap used plus typed arrays'
// backing stores, after full collections). See docs/benchmarks.md ("Churn at the target's size").
import { parseArgs } from 'node:util';
import { Arbiter } from '../../src/actions/index.js';
import { Engine, TimerQueue } from '../../src/engine/index.js';
import type { Effect } from '../../src/engine/index.js';
import { loadRulesDir, shippedRulesDir } from '../../src/rules/index.js';
import { LastSeen, TimerDriver } from '../../src/runtime/index.js';
import { formatProblem, parseDeviceTopic } from '../../src/shared/index.js';
import type { Event } from '../../src/shared/index.js';

const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error('run with node --expose-gc');

function used(): number {
  for (let i = 0; i < 3; i++) (gc as () => void)();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

const { values } = parseArgs({ options: { devices: { type: 'string', default: '100000' } } });
const devices = Number(values.devices);
const loaded = await loadRulesDir(shippedRulesDir());
if (!loaded.ok) throw new Error(loaded.problems.map(formatProblem).join('\n'));
const rules = loaded.rules;

/** Heap used for the devices' state with the parts named kept (the others are not built). */
async function measure(
  parts: ReadonlySet<string>,
  scenario?: string,
): Promise<{ bytes: number; groups: number; timers: number }> {
  const base = used();
  const only =
    scenario === undefined
      ? rules
      : { ...rules, scenarios: rules.scenarios.filter((s) => s.id === scenario) };
  const engine = new Engine(only, { gateway: 'gw-probe' });
  let now = 1_780_000_000_000;
  const driver = parts.has('timers')
    ? new TimerDriver(new TimerQueue(), { now: () => now }, () => undefined)
    : undefined;
  const lastSeen = parts.has('last-seen') ? new LastSeen([], 10_000_000, () => undefined) : undefined;
  const apply = (effects: readonly Effect[]): void => {
    for (const e of effects) {
      if (e.kind === 'schedule') driver?.schedule(e.timer, e.actor, e.dueAt);
      else if (e.kind === 'cancel') driver?.cancel(e.timer);
    }
  };
  const block = 1_000;
  for (let first = 0; first < devices; first += block) {
    for (let e = 0; e < 3; e++) {
      for (let i = first; i < Math.min(devices, first + block); i++) {
        // The topic as mqtt-packet decodes it: a string of its own per publish.
        const topic = Buffer.from(`devices/churn-${i}/events/telemetry`).toString('utf8');
        const parsed = parseDeviceTopic(topic);
        if (!parsed.ok) throw new Error(topic);
        const temp = 15 + ((i * 7 + e * 13) % 300) / 10;
        const ev: Event = {
          actor: parsed.deviceId,
          type: parsed.type,
          at: now,
          data: JSON.parse(`{"temp":${temp},"bat":3.9}`) as Record<string, unknown>,
          source: 'device',
        };
        apply(engine.onEvent(ev, undefined));
        lastSeen?.see(ev);
        now += 1;
      }
    }
  }
  await new Promise((resolve) => setImmediate(resolve));
  const bytes = used() - base;
  const out = { bytes, groups: engine.groupCount(), timers: driver?.pending ?? 0 };
  driver?.stop();
  // Kept alive until measured.
  if (lastSeen !== undefined && lastSeen.size < 0) throw new Error('unreachable');
  return out;
}

/**
 * The arbiter's memory of each device's `device-offline` action once its silence fired: under the shipped policy, its
 * cooldown (10 minutes) and, the action being `support`, the exclusive rule's memory of it (2 hours).
 */
function measureArbiter(): number {
  const base = used();
  const arbiter = new Arbiter(rules.policy);
  let now = 1_780_000_000_000;
  for (let i = 0; i < devices; i++) {
    const actor = Buffer.from(`churn-${i}`).toString('utf8');
    const action = {
      id: `a${i}`,
      gateway: 'gw-probe',
      scenario: 'device-offline',
      action: 'device-offline',
      actor,
      priority: 90,
      category: 'support',
      decidedAt: now,
      eventAt: now,
      payload: {},
    };
    arbiter.decide([{ action, to: ['upstream'] }], now++);
  }
  const bytes = used() - base;
  if (arbiter.snapshot().active.length !== devices)
    throw new Error('the arbiter did not remember every device');
  return bytes;
}

const arbiterBytes = measureArbiter();
const silence = await measure(new Set(), 'device-offline');
const window = await measure(new Set(), 'hot-average');
const engineOnly = await measure(new Set());
const withTimers = await measure(new Set(['timers']));
const all = await measure(new Set(['timers', 'last-seen']));
const per = (bytes: number): string => (bytes / devices).toFixed(0);
process.stdout.write(
  [
    `## Memory per live device: ${devices.toLocaleString('en-US')} devices × 3 readings, shipped rules`,
    '',
    `${all.groups.toLocaleString('en-US')} engine groups, ${all.timers.toLocaleString('en-US')} pending timers`,
    '',
    '| part | bytes per device |',
    '| --- | -: |',
    `| engine groups (both scenarios: states, map entries, keys) | ${per(engineOnly.bytes)} |`,
    `| of which device-offline's silence (alone) | ${per(silence.bytes)} |`,
    `| of which hot-average's window of 3 readings (alone) | ${per(window.bytes)} |`,
    `| silence timer (timer queue, timer-to-actor map, key) | ${per(withTimers.bytes - engineOnly.bytes)} |`,
    `| last-seen time | ${per(all.bytes - withTimers.bytes)} |`,
    `| **all** | **${per(all.bytes)}** |`,
    `| then, once its silence fired: the arbiter's memory of its device-offline action | ${per(arbiterBytes)} |`,
    '',
  ].join('\n'),
);
