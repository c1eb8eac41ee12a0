import type { Action } from '../shared/index.js';
import { DeviceDecisions } from './device-decisions.js';

/** What became of a decided action: sent, held back by the policy, or dropped unsent. */
export type Verdict = 'sent' | 'suppressed' | 'dropped';

/** One decision as the dashboard shows it; `seq` orders entries and lets a stream resume. */
export interface ActionEntry {
  seq: number;
  verdict: Verdict;
  /** Why it was suppressed or dropped (`cooldown`, `contact`, `exclusive:support`, `outbox-full`, …). */
  reason?: string;
  action: Action;
}

/** Running totals of one scenario's decisions. */
export interface ScenarioTally {
  sent: number;
  suppressed: number;
  dropped: number;
  /** Suppressed and dropped, by reason. */
  reasons: Record<string, number>;
}

/** Decisions since start by what became of them; `expired` are those dropped for their `ttl`, not in `dropped`. */
export interface VerdictTotals {
  sent: number;
  suppressed: number;
  expired: number;
  dropped: number;
}

/** The reason of an action dropped because it waited past its category's `ttl`. */
export const EXPIRED_REASON = 'ttl';

interface Tally {
  sent: number;
  suppressed: number;
  dropped: number;
  reasons: Map<string, number>;
}

export const DEFAULT_RECENT_ACTIONS = 500;

/**
 * A bounded ring of the latest decisions, with totals per scenario and per reason: O(1) per decision,
 * so feeding it costs the hot path nothing noticeable, and memory stays fixed however busy the gateway.
 */
export class RecentActions {
  private readonly ring: Array<ActionEntry | undefined>;
  private next = 0;
  private readonly tallies = new Map<string, Tally>();
  private readonly reasons = new Map<string, number>();
  private readonly verdicts: VerdictTotals = { sent: 0, suppressed: 0, expired: 0, dropped: 0 };
  /** The latest decisions of each device, kept apart from the ring (`vigil explain`). */
  readonly byDevice = new DeviceDecisions();

  constructor(readonly capacity: number = DEFAULT_RECENT_ACTIONS) {
    if (!Number.isInteger(capacity) || capacity < 1)
      throw new RangeError('capacity must be a positive integer');
    this.ring = new Array<ActionEntry | undefined>(capacity);
  }

  /** The `seq` the next entry will get: everything below it has been recorded. */
  get nextSeq(): number {
    return this.next;
  }

  /** A verdict of the arbiter: `suppressed` is its reason, absent when the action was sent. */
  decided(action: Action, suppressed: string | undefined): void {
    if (suppressed === undefined) this.push({ seq: this.next, verdict: 'sent', action });
    else this.push({ seq: this.next, verdict: 'suppressed', reason: suppressed, action });
  }

  /** An action that was sent by the arbiter but left the gateway's keeping unsent (e.g. a full outbox). */
  dropped(action: Action, reason: string): void {
    this.push({ seq: this.next, verdict: 'dropped', reason, action });
  }

  /** The latest `limit` entries, newest first. */
  latest(limit: number): ActionEntry[] {
    const out: ActionEntry[] = [];
    const n = Math.min(limit, this.next, this.capacity);
    for (let i = 1; i <= n; i++) {
      const entry = this.ring[(this.next - i) % this.capacity];
      if (entry) out.push(entry);
    }
    return out;
  }

  /** Entries with `seq >= from`, oldest first, as far as the ring still holds them. */
  since(from: number): ActionEntry[] {
    const start = Math.max(from, this.next - this.capacity, 0);
    const out: ActionEntry[] = [];
    for (let seq = start; seq < this.next; seq++) {
      const entry = this.ring[seq % this.capacity];
      if (entry) out.push(entry);
    }
    return out;
  }

  tally(scenario: string): ScenarioTally {
    const t = this.tallies.get(scenario);
    if (!t) return { sent: 0, suppressed: 0, dropped: 0, reasons: {} };
    return {
      sent: t.sent,
      suppressed: t.suppressed,
      dropped: t.dropped,
      reasons: Object.fromEntries(t.reasons),
    };
  }

  /** Every decision since start, by what became of it. */
  totals(): VerdictTotals {
    return { ...this.verdicts };
  }

  /** Suppressed and dropped decisions of every scenario, by reason. */
  reasonTotals(): Record<string, number> {
    return Object.fromEntries(this.reasons);
  }

  private push(entry: ActionEntry): void {
    this.ring[this.next % this.capacity] = entry;
    this.next++;
    this.byDevice.add(entry);
    const scenario = entry.action.scenario;
    let tally = this.tallies.get(scenario);
    if (!tally) {
      tally = { sent: 0, suppressed: 0, dropped: 0, reasons: new Map() };
      this.tallies.set(scenario, tally);
    }
    tally[entry.verdict]++;
    if (entry.verdict === 'dropped' && entry.reason === EXPIRED_REASON) this.verdicts.expired++;
    else this.verdicts[entry.verdict]++;
    if (entry.reason !== undefined) {
      // Maps, not objects: reasons carry rule-chosen category names, which could be `__proto__`.
      tally.reasons.set(entry.reason, (tally.reasons.get(entry.reason) ?? 0) + 1);
      this.reasons.set(entry.reason, (this.reasons.get(entry.reason) ?? 0) + 1);
    }
  }
}
