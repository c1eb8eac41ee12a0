import type { LatencySummary } from './latency.js';

/** What the system under test answers the devices' events with, so the generator knows what to time. */
export type ReplyMode =
  /** A plain broker: one subscriber receives every event; latency is send → delivery. */
  | 'relay'
  /** Vigil: hot readings (`temp > profile.maxTemp`) come back as commands to the device, and as actions upstream. */
  | 'vigil';

export interface ConnectRequest {
  kind: 'connect';
  /** mqtt://127.0.0.1:PORT of the system under test. */
  url: string;
  devices: number;
  seed: number;
  sites: number;
  customers: number;
  mode: ReplyMode;
  /** Every device's MQTT password (its user name is its id); the gateway holds its hash. */
  secret: string;
  /** Vigil: the cloud broker, where upstream actions are timed too. */
  cloudUrl?: string;
}

export interface LoadRequest {
  kind: 'load';
  /** Telemetry events per second across the fleet. */
  rate: number;
  qos: 0 | 1;
  warmupMs: number;
  measureMs: number;
  /** After the last publish, how long to wait at most for the last replies. */
  drainMs: number;
}

/** Many device connections that only connect, subscribe and stay: the memory test. */
export interface IdleRequest {
  kind: 'idle';
  url: string;
  connections: number;
  idPrefix: string;
  secret: string;
  /** A reconnect storm: every connection opened at once, and those the broker refused counted, not fatal. */
  storm?: boolean;
  /**
   * Connections from one source address: the first this many from the first loopback address (127.0.0.2),
   * the next from the one after, and so on (see `loopbackAddress`). Unset: all from the default (127.0.0.1).
   */
  perAddress?: number;
}

/**
 * The `n`th source address of 127.0.0.0/8 past 127.0.0.1 (n ≥ 1): 127.0.0.2, …, 127.0.0.250, 127.0.1.1, …;
 * the last byte stays within 1–250.
 */
export function loopbackAddress(n: number): string {
  const low = (n % 250) + 1;
  const mid = Math.floor(n / 250) % 256;
  const high = Math.floor(n / 250 / 256);
  return `127.${high}.${mid}.${low}`;
}

export type GenRequest = ConnectRequest | LoadRequest | IdleRequest | { kind: 'close' };

export interface LoadResult {
  /** Telemetry events written to the sockets during the measured window. */
  sent: number;
  /** Telemetry events written during the whole run, warm-up included. */
  sentTotal: number;
  achievedRate: number;
  /** Events the generator could not write because the device's socket was backed up (the broker stopped reading). */
  held: number;
  /** Send → reply (relay: delivery to the subscriber; vigil: command to the device). */
  latency: LatencySummary | undefined;
  /** Replies expected during the window, and those received. */
  expected: number;
  received: number;
  /** Vigil: send → the action at the cloud broker. */
  cloudLatency: LatencySummary | undefined;
  cloudExpected: number;
  cloudReceived: number;
  /** QoS 1: publishes of the whole run (warm-up included) and their PUBACKs. */
  qos1Sent: number;
  acked: number;
  /** CPU of the generator process during the window, % of one core. */
  cpuPct: number;
  windowMs: number;
  /** Replies that paired with nothing sent: should be 0. */
  unmatched: number;
}

export type GenResponse =
  | { kind: 'connected'; ms: number; connected: number }
  | { kind: 'loaded'; result: LoadResult }
  | { kind: 'idle'; connected: number; ms: number; failed?: number; why?: string[] }
  | { kind: 'closed' }
  | { kind: 'error'; message: string };
