/** Where an event came from (docs/architecture.md, "Event"). */
export type EventSource = 'device' | 'broker' | 'cloud' | 'engine';

/** What ingest hands the engine. `at` is the gateway's arrival time in ms. */
export interface Event {
  actor: string;
  type: string;
  at: number;
  data: Record<string, unknown>;
  source: EventSource;
  deviceAt?: number;
}

/** A device's profile: any fields the business keeps about it, keyed by device id. */
export type Profile = Record<string, unknown>;

/** Where a decided action goes: back to the device over the local broker, or to the cloud. */
export type Destination = 'upstream' | 'device';

/** What leaves the gateway (docs/architecture.md, "Action"); `action` names what to do. */
export interface Action {
  id: string;
  gateway: string;
  scenario: string;
  action: string;
  actor: string;
  group?: string;
  priority: number;
  category: string;
  /** Wall time (ms) when it was decided, and of the event or deadline it was decided on. */
  decidedAt: number;
  eventAt: number;
  late?: boolean;
  /** Present (false) when it was decided before the gateway's wall clock was synchronised: its times are doubtful. */
  clockSynced?: false;
  /**
   * Wall time less gateway time when it was decided, when not 0 (the wall clock stepped since the gateway started):
   * `decidedAt - clockOffsetMs` is on the gateway's monotonic timeline, which its ttl is counted on.
   */
  clockOffsetMs?: number;
  payload: Record<string, unknown>;
}

/**
 * What the cloud outbox keeps in memory of a queued action: enough to order, evict and expire it without its body.
 * `action` is the action itself while the outbox holds it in memory (it comes and goes as the outbox reads actions
 * back and lets them go: read it at once); otherwise the outbox reads it back when it is removed.
 */
export interface QueuedAction {
  readonly id: string;
  readonly category: string;
  readonly decidedAt: number;
  readonly clockOffsetMs?: number;
  readonly action: Action | undefined;
}

/** An action the engine decided, before arbitration and dispatch. */
export interface Candidate {
  action: Action;
  to: readonly Destination[];
}

/**
 * Telemetry a scenario forwards (`then.forward`): at most once, in its own lane of the uplink, never journaled nor
 * remembered as delivered. Sampling (`oneIn`, `everyMs`) is the lane's, per scenario and actor.
 */
export interface Telemetry {
  scenario: string;
  /** `vigil/{gw}/telemetry/{type}`. */
  type: string;
  actor: string;
  /** Gateway time of the firing. */
  at: number;
  /** The event's data (raw), or the aggregates and the group (aggregates). */
  data: Record<string, unknown>;
  of: 'raw' | 'aggregates';
  oneIn?: number;
  everyMs?: number;
}
