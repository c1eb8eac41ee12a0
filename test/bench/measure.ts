import { setTimeout as sleep } from 'node:timers/promises';
import type { LoadGenClient } from './load-gen-client.js';
import type { LoadResult } from './load-protocol.js';
import { ProcSampler, type ProcUsage } from './proc-stats.js';
import type { RunRecord } from './results.js';
import type { SystemUnderTest } from './systems.js';

/** The system under test exited during a run. */
export class SystemDiedError extends Error {
  override readonly name = 'SystemDiedError';
}

export interface Window {
  warmupMs: number;
  measureMs: number;
  drainMs: number;
}

export interface Measured {
  record: RunRecord;
  load: LoadResult;
}

/**
 * One run at a fixed rate: the generator publishes for warm-up + window, the system's CPU and RSS are sampled
 * over the window, and what did not come back by the end of the drain counts as dropped.
 */
export async function measure(
  gen: LoadGenClient,
  sut: SystemUnderTest,
  rate: number,
  qos: 0 | 1,
  w: Window,
): Promise<Measured> {
  const inBefore = await sut.eventsIn();
  const loaded = gen.request({ kind: 'load', rate, qos, ...w }, 'loaded');
  // Sampled from the parent, on the generator's schedule: off by the IPC hop, a millisecond or so.
  const usage: Promise<ProcUsage> = (async () => {
    await sleep(w.warmupMs);
    const sampler = new ProcSampler(sut.pid);
    await sleep(w.measureMs);
    return sampler.stop();
  })();
  const [{ result }, used] = await Promise.all([loaded, usage]);
  if (!sut.alive()) {
    throw new SystemDiedError(
      `${sut.name} exited during the run at ${rate}/s, QoS ${qos}:\n${sut.output().slice(-4_000)}`,
    );
  }
  const inAfter = await sut.eventsIn();
  const unprocessed =
    inBefore === undefined || inAfter === undefined
      ? 0
      : Math.max(0, result.sentTotal - (inAfter - inBefore));
  const missing = Math.max(0, result.expected - result.received);
  const upstreamMissing = sut.mode === 'vigil' ? Math.max(0, result.cloudExpected - result.cloudReceived) : 0;
  const record: RunRecord = {
    system: sut.name,
    qos,
    rate,
    achievedRate: Math.round(result.achievedRate),
    latencyMs: result.latency ?? null,
    cpuPct: round1(used.cpuPct),
    threadCpuPct: used.threadPct,
    rssMB: round1(used.peakRssMB),
    dropped: unprocessed + missing + upstreamMissing,
    loadGenCpuPct: round1(result.cpuPct),
    replies: { expected: result.expected, received: result.received },
  };
  if (sut.mode === 'vigil') record.upstreamLatencyMs = result.cloudLatency ?? null;
  if (result.achievedRate > 0) record.cpuUsPerEvent = round1((used.cpuPct * 1e4) / result.achievedRate);
  if (used.stallPct !== undefined) record.cpuStallPct = round1(used.stallPct);
  if (qos === 1) record.acks = { sent: result.qos1Sent, acked: result.acked };
  return { record, load: result };
}

/** Whether a run is sustainable: the rate was reached, nothing was lost, and p99 stayed under `maxP99Ms`. */
export function sustained(m: Measured, maxP99Ms: number): { ok: boolean; reason?: string } {
  if (m.load.held > 0) return { ok: false, reason: `${m.load.held} events held back (sockets not read)` };
  return holds(m.record, maxP99Ms);
}

/** `sustained`, from what a run's record keeps. */
export function holds(record: RunRecord, maxP99Ms: number): { ok: boolean; reason?: string } {
  if (record.error !== undefined) return { ok: false, reason: record.error };
  if (record.achievedRate < record.rate * 0.97)
    return { ok: false, reason: `reached ${record.achievedRate}/s of ${record.rate}/s` };
  if (record.dropped > 0) return { ok: false, reason: `${record.dropped} dropped` };
  if (record.acks && record.acks.acked < record.acks.sent)
    return { ok: false, reason: `${record.acks.sent - record.acks.acked} not acknowledged` };
  const p99 = record.latencyMs?.p99;
  if (p99 === undefined) return { ok: false, reason: 'no latency measured' };
  if (p99 > maxP99Ms) return { ok: false, reason: `p99 ${p99} ms` };
  return { ok: true };
}

export function round1(n: number): number {
  return Math.round(n * 10) / 10;
}
