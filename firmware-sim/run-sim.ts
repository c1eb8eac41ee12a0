import { setTimeout as sleep } from 'node:timers/promises';
import { nowMs } from './clock.js';
import { payloadEncoder, type PayloadEncoder } from './encode.js';
import { Fleet } from './fleet.js';
import { resolveSimOptions, type ResolvedSimOptions, type SimOptions } from './options.js';
import { planFleet, type DevicePlan, type FleetPlan } from './plan.js';
import { EventSchedule } from './schedule.js';
import type { SimSummary } from './summary.js';

export interface SimHooks {
  /** A command arrived on `devices/{deviceId}/commands/{name}`; `receivedAtMs` is on the clock of `ts`. */
  onCommand?: (deviceId: string, name: string, payload: Buffer, receivedAtMs: number) => void;
  /** Called every `progressIntervalMs` (default 5 s) while the fleet connects and publishes. */
  onProgress?: (summary: SimSummary) => void;
  progressIntervalMs?: number;
  /** Aborting stops publishing at once; the devices still disconnect cleanly and the summary is returned. */
  signal?: AbortSignal;
}

/** Events sent in one go before the loop yields to I/O, when it has fallen behind. */
const MAX_BATCH = 256;
/** How long to wait, at most, for the broker to acknowledge the last QoS 1 publishes. */
const ACK_DRAIN_MS = 5_000;

/**
 * Runs the simulated fleet: connects every device, publishes the planned events at the planned rate for
 * `durationMs`, lingers `lingerMs` for the last commands, disconnects, and resolves to what happened.
 */
export async function runSim(opts: SimOptions, hooks: SimHooks = {}): Promise<SimSummary> {
  const o = resolveSimOptions(opts);
  const plan = planFleet(o);
  const fleet = new Fleet(plan, o, hooks.onCommand ? { onCommand: hooks.onCommand } : {});
  const { signal } = hooks;
  const run: RunClock = {
    startedAtMs: nowMs(),
    loadStartedAtMs: undefined,
    loadEndedAtMs: undefined,
    cpu: undefined,
  };
  const summarize = (): SimSummary => summaryOf(plan, fleet, run, signal?.aborted ?? false);
  const ticker = hooks.onProgress
    ? startProgress(hooks.onProgress, hooks.progressIntervalMs, summarize)
    : undefined;
  try {
    await fleet.connect(signal);
    const willPublish = fleet.counts.connected > 0 || plan.devices.every((d) => !d.registered);
    run.loadStartedAtMs = nowMs();
    run.cpu = process.cpuUsage();
    if (willPublish && !signal?.aborted) {
      await publishLoad(new EventSchedule(plan), silences(plan), fleet, payloadEncoder(o.format), o, signal);
    }
    run.loadEndedAtMs = nowMs();
    run.cpu = process.cpuUsage(run.cpu);
    if (willPublish) await settle(fleet, o, signal);
  } finally {
    if (ticker) clearInterval(ticker);
    await fleet.close();
  }
  return summarize();
}

interface RunClock {
  startedAtMs: number;
  loadStartedAtMs: number | undefined;
  loadEndedAtMs: number | undefined;
  /** The CPU reading at the start of publishing, then the CPU used while publishing. */
  cpu: NodeJS.CpuUsage | undefined;
}

function startProgress(
  onProgress: (s: SimSummary) => void,
  everyMs: number | undefined,
  summarize: () => SimSummary,
): NodeJS.Timeout {
  return setInterval(() => onProgress(summarize()), everyMs ?? 5_000);
}

/** The devices that go silent during the run, in the order they do. */
function silences(plan: FleetPlan): DevicePlan[] {
  return plan.devices
    .filter((d) => d.registered && d.silentAtMs < plan.options.durationMs)
    .sort((a, b) => a.silentAtMs - b.silentAtMs || a.index - b.index);
}

/**
 * One loop for the whole fleet: each turn sends every event that has fallen due, then sleeps until the next
 * one. Stamping `ts` when the event is written (not when it was planned) keeps latencies honest when the
 * loop runs late.
 */
function publishLoad(
  schedule: EventSchedule,
  silent: readonly DevicePlan[],
  fleet: Fleet,
  encode: PayloadEncoder,
  o: ResolvedSimOptions,
  signal: AbortSignal | undefined,
): Promise<void> {
  return new Promise<void>((resolve) => {
    const startMs = nowMs();
    let nextSilence = 0;
    let timer: NodeJS.Timeout | undefined;
    let immediate: NodeJS.Immediate | undefined;
    const finish = (): void => {
      clearTimeout(timer);
      clearImmediate(immediate);
      signal?.removeEventListener('abort', finish);
      resolve();
    };
    const step = (): void => {
      const elapsedMs = nowMs() - startMs;
      for (let d = silent[nextSilence]; d && d.silentAtMs <= elapsedMs; d = silent[++nextSilence]) {
        fleet.silence(d);
      }
      let sent = 0;
      while (sent < MAX_BATCH && schedule.peekAtMs() <= elapsedMs) {
        const event = schedule.next();
        if (!event) break;
        fleet.publish(event.device, event.type, encode(event.data, nowMs()));
        sent++;
      }
      if (sent === MAX_BATCH) {
        immediate = setImmediate(step);
        return;
      }
      const dueMs = Math.min(schedule.peekAtMs(), silent[nextSilence]?.silentAtMs ?? Infinity, o.durationMs);
      if (dueMs === Infinity || elapsedMs >= o.durationMs) {
        finish();
        return;
      }
      timer = setTimeout(step, Math.max(1, Math.floor(dueMs - (nowMs() - startMs))));
    };
    signal?.addEventListener('abort', finish, { once: true });
    step();
  });
}

/** After the last publish: wait for late commands, then (QoS 1) for the last acknowledgements. */
async function settle(fleet: Fleet, o: ResolvedSimOptions, signal: AbortSignal | undefined): Promise<void> {
  try {
    if (o.lingerMs > 0) await sleep(o.lingerMs, undefined, { signal });
    const giveUpAtMs = nowMs() + ACK_DRAIN_MS;
    while (fleet.counts.inFlight > 0 && nowMs() < giveUpAtMs) await sleep(10, undefined, { signal });
  } catch (error) {
    if (!signal?.aborted) throw error;
  }
}

function summaryOf(plan: FleetPlan, fleet: Fleet, run: RunClock, aborted: boolean): SimSummary {
  const c = fleet.counts;
  const now = nowMs();
  const elapsedMs = run.loadStartedAtMs === undefined ? 0 : (run.loadEndedAtMs ?? now) - run.loadStartedAtMs;
  const cpu = run.loadEndedAtMs === undefined ? run.cpu && process.cpuUsage(run.cpu) : run.cpu;
  const summary: SimSummary = {
    devices: plan.devices.length,
    neverRegistered: plan.neverRegistered.length,
    connected: c.connected,
    connectFailed: c.connectFailed,
    lost: c.lost,
    silenced: c.silenced,
    published: { ...c.published },
    failed: c.failed,
    acked: c.acked,
    commands: c.commands,
    connectMs: (run.loadStartedAtMs ?? now) - run.startedAtMs,
    elapsedMs,
    achievedRate: elapsedMs > 0 ? (c.published.telemetry * 1_000) / elapsedMs : 0,
    cpuPct: cpu && elapsedMs > 0 ? (cpu.user + cpu.system) / 10 / elapsedMs : 0,
    aborted,
  };
  if (c.firstError !== undefined) summary.firstError = c.firstError;
  return summary;
}
