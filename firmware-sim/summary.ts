import type { SimEventType } from './schedule.js';

/** What a run did; also handed to `onProgress` while it runs. */
export interface SimSummary {
  /** Fleet size, devices that never register included. */
  devices: number;
  neverRegistered: number;
  /** Devices that connected at least once. */
  connected: number;
  /** Devices meant to connect that have not managed to. */
  connectFailed: number;
  /** Connections that ended without the simulator asking (broker closed them, network). */
  lost: number;
  /** Devices that went silent as planned. */
  silenced: number;
  published: Record<SimEventType, number>;
  /** Publishes not sent because the device was not connected, or refused by the broker. */
  failed: number;
  /** QoS 1 publishes the broker acknowledged. */
  acked: number;
  /** Commands received on `devices/{id}/commands/#`. */
  commands: number;
  /** Time the fleet took to connect. */
  connectMs: number;
  /** Time spent publishing. */
  elapsedMs: number;
  /** Telemetry events per second over `elapsedMs`. */
  achievedRate: number;
  /** CPU used by this process while publishing, in % of one core. */
  cpuPct: number;
  /** The run was stopped early through the abort signal. */
  aborted: boolean;
  /** The first error a device met, for a hint when something went wrong. */
  firstError?: string;
}

/** A few lines for a person: what ran, what got through, what did not. */
export function formatSummary(s: SimSummary): string {
  const connecting = s.devices - s.neverRegistered;
  const lines = [
    `devices    ${s.devices}` +
      (s.neverRegistered > 0 ? ` (${s.neverRegistered} never register)` : '') +
      ` · connected ${s.connected}/${connecting} in ${seconds(s.connectMs)}` +
      (s.connectFailed > 0 ? ` · failed to connect ${s.connectFailed}` : '') +
      (s.lost > 0 ? ` · connections lost ${s.lost}` : '') +
      (s.silenced > 0 ? ` · went silent ${s.silenced}` : ''),
    `published  ${s.published.telemetry} telemetry` +
      (s.published.heartbeat > 0 ? ` + ${s.published.heartbeat} heartbeats` : '') +
      ` in ${seconds(s.elapsedMs)} = ${Math.round(s.achievedRate)} events/s` +
      ` · failed ${s.failed}` +
      (s.acked > 0 || s.failed > 0 ? ` · acked ${s.acked}` : ''),
    `commands   ${s.commands} received`,
    `cpu        ${Math.round(s.cpuPct)}% of one core while publishing` +
      (s.aborted ? ' · stopped early' : ''),
  ];
  if (s.firstError !== undefined) lines.push(`first error ${s.firstError}`);
  return lines.join('\n');
}

function seconds(ms: number): string {
  return `${(ms / 1_000).toFixed(1)} s`;
}
