import type { DevicePlan, FleetPlan } from './plan.js';
import { Prng, deriveSeed, pickDistinct } from './prng.js';
import { Stream } from './streams.js';

export type SimEventType = 'telemetry' | 'heartbeat';

// A type alias (not an interface) so it passes as a plain record of numbers to the encoder.
export type Telemetry = {
  temp: number;
  hum: number;
  bat: number;
};

/** One event the fleet will publish; the send time (`ts`) is added when it is actually sent. */
export type PlannedEvent =
  | {
      readonly atMs: number;
      readonly device: DevicePlan;
      readonly type: 'telemetry';
      readonly data: Telemetry;
    }
  | {
      readonly atMs: number;
      readonly device: DevicePlan;
      readonly type: 'heartbeat';
      readonly data: Readonly<Record<string, never>>;
    };

/** Plain readings stay below this; heat bursts go above it (the sustained-heat scenario's threshold). */
export const HEAT_THRESHOLD = 80;
/** Plain humidity stays below this; humid readings go above it. */
export const HUMID_THRESHOLD = 85;
/** A battery below this is low. */
export const LOW_BATTERY_V = 3.3;

const NO_DATA: Readonly<Record<string, never>> = Object.freeze({});

/**
 * The fleet's events in the order they are due, as a pure function of the plan: event `k` is planned at
 * `k / rate` seconds and belongs to the next device of a seeded rotation, so each device reports at an even
 * period of `devices / rate` seconds. Readings come from each device's own random stream, so they do not
 * depend on timing. Devices that never register and devices past their silence publish nothing.
 */
export class EventSchedule {
  private readonly rotation: readonly DevicePlan[];
  private readonly rngs: readonly Prng[];
  private readonly heatLeft: Int32Array;
  private readonly humidLeft: Int32Array;
  private readonly telemetryEveryMs: number;
  private readonly heartbeatEveryMs: number;
  private readonly endMs: number;
  private telemetrySlot = 0;
  private heartbeatSlot = 0;

  constructor(private readonly plan: FleetPlan) {
    const o = plan.options;
    const registered = plan.devices.filter((d) => d.registered);
    const rng = new Prng(deriveSeed(o.seed, Stream.rotation, 0));
    this.rotation = pickDistinct(registered, registered.length, rng);
    this.rngs = plan.devices.map((d) => new Prng(deriveSeed(o.seed, Stream.readings, d.index)));
    this.heatLeft = Int32Array.from(plan.devices, (d) =>
      d.heatBurstAtMs < Infinity ? o.heatBurstReadings : 0,
    );
    this.humidLeft = Int32Array.from(plan.devices, (d) =>
      d.humidBurstAtMs < Infinity ? o.humidBurstReadings : 0,
    );
    const n = this.rotation.length;
    this.telemetryEveryMs = 1_000 / o.rate;
    this.heartbeatEveryMs = o.heartbeatMs > 0 && n > 0 ? o.heartbeatMs / n : Infinity;
    // Once every device has gone silent nothing is due any more, even on an endless run.
    const lastVoiceMs = this.rotation.reduce((latest, d) => Math.max(latest, d.silentAtMs), 0);
    this.endMs = Math.min(o.durationMs, lastVoiceMs);
  }

  /** When the next event is due (ms from the start of publishing); `Infinity` when there is none. */
  peekAtMs(): number {
    this.skipSilent();
    const atMs = Math.min(this.telemetryAtMs(), this.heartbeatAtMs());
    return atMs < this.endMs ? atMs : Infinity;
  }

  /** Takes the next event, or undefined when the run has none left. */
  next(): PlannedEvent | undefined {
    const atMs = this.peekAtMs();
    if (atMs === Infinity) return undefined;
    if (atMs === this.telemetryAtMs()) {
      const device = this.deviceOf(this.telemetrySlot++);
      return { atMs, device, type: 'telemetry', data: this.reading(device, atMs) };
    }
    return { atMs, device: this.deviceOf(this.heartbeatSlot++), type: 'heartbeat', data: NO_DATA };
  }

  private telemetryAtMs(): number {
    return this.rotation.length === 0 ? Infinity : this.telemetrySlot * this.telemetryEveryMs;
  }

  private heartbeatAtMs(): number {
    return this.heartbeatEveryMs === Infinity ? Infinity : this.heartbeatSlot * this.heartbeatEveryMs;
  }

  private deviceOf(slot: number): DevicePlan {
    return this.rotation[slot % this.rotation.length] as DevicePlan;
  }

  private skipSilent(): void {
    while (
      this.telemetryAtMs() < this.endMs &&
      this.deviceOf(this.telemetrySlot).silentAtMs <= this.telemetryAtMs()
    ) {
      this.telemetrySlot++;
    }
    while (
      this.heartbeatAtMs() < this.endMs &&
      this.deviceOf(this.heartbeatSlot).silentAtMs <= this.heartbeatAtMs()
    ) {
      this.heartbeatSlot++;
    }
  }

  private reading(device: DevicePlan, atMs: number): Telemetry {
    const o = this.plan.options;
    const i = device.index;
    const rng = this.rngs[i] as Prng;
    // Always six draws, whatever the branches, so one reading never shifts the next ones.
    const uHot = rng.next();
    const uTemp = rng.next();
    const uHumid = rng.next();
    const uHum = rng.next();
    const uLow = rng.next();
    const uBat = rng.next();
    const maxTemp = device.profile.maxTemp;
    let temp: number;
    if ((this.heatLeft[i] ?? 0) > 0 && atMs >= device.heatBurstAtMs) {
      this.heatLeft[i] = (this.heatLeft[i] ?? 0) - 1;
      temp = round(HEAT_THRESHOLD + 1 + uTemp * 14, 1);
    } else if (uHot < o.hotShare) {
      // Above the device's limit but below the heat threshold: one overheat, never a sustained-heat match.
      temp = round(maxTemp + 1 + uTemp * (HEAT_THRESHOLD - 2 - maxTemp), 1);
    } else {
      temp = round(18 + uTemp * 24, 1);
    }
    let hum: number;
    if ((this.humidLeft[i] ?? 0) > 0 && atMs >= device.humidBurstAtMs) {
      this.humidLeft[i] = (this.humidLeft[i] ?? 0) - 1;
      hum = round(HUMID_THRESHOLD + 1 + uHum * 13, 1);
    } else if (uHumid < o.humidShare) {
      hum = round(HUMID_THRESHOLD + 1 + uHum * 13, 1);
    } else {
      hum = round(30 + uHum * 50, 1);
    }
    const bat = uLow < o.lowBatteryShare ? round(2.9 + uBat * 0.35, 2) : round(3.4 + uBat * 0.8, 2);
    return { temp, hum, bat };
  }
}

function round(value: number, decimals: number): number {
  const f = 10 ** decimals;
  return Math.round(value * f) / f;
}
