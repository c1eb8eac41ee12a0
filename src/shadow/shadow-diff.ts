import type { Candidate } from '../shared/index.js';

/** What one scenario did under the live rules and would have done under the shadow rules, counted by action. */
export interface ScenarioDiff {
  /** Actions the live rules sent. */
  live: number;
  /** Actions the shadow rules would have sent. */
  shadow: number;
  /** Sent by both, with the same action, destinations and payload. */
  same: number;
  /** Would be sent by the shadow rules, not sent by the live ones. */
  newly: number;
  /** Sent by the live rules, not by the shadow ones. */
  noLonger: number;
  /** Sent by both, but with another action name, destinations or payload. */
  changed: number;
}

export type DiffKind = 'newly' | 'no-longer' | 'changed';

/** One difference, for people: which action of which scenario, for whom, and both sides' payloads. */
export interface DiffExample {
  kind: DiffKind;
  scenario: string;
  actor: string;
  id: string;
  /** When the input that decided it arrived (ISO 8601). */
  eventAt: string;
  live?: unknown;
  shadow?: unknown;
}

interface Side {
  scenario: string;
  actor: string;
  eventAt: number;
  /** The action as compared: name, destinations and payload, canonical JSON. */
  shape: string;
  payload: unknown;
}

interface Pending {
  live?: Side;
  shadow?: Side;
}

/** How many differences the report shows (the latest). */
const EXAMPLES = 20;

/**
 * Pairs what the live rules sent with what the shadow rules would have sent, by action id: an action's id is a
 * hash of the scenario, the group and the input that completed it, so the same decision has the same id on both
 * sides. A pair is counted once both sides have had time to decide it (`settle`); until then it waits, at most
 * `maxPending` of them (the oldest are settled early beyond that).
 */
export class ShadowDiff {
  private readonly pending = new Map<string, Pending>();
  private readonly scenarios = new Map<string, ScenarioDiff>();
  private readonly examples: DiffExample[] = [];
  /** Pairs settled before both sides could decide, to keep within `maxPending`. */
  settledEarly = 0;

  constructor(private readonly maxPending = 100_000) {}

  live(candidate: Candidate): void {
    this.add('live', candidate);
  }

  shadow(candidate: Candidate): void {
    this.add('shadow', candidate);
  }

  /** Counts every pair whose input arrived before `beforeAt`. */
  settle(beforeAt: number): void {
    for (const [id, p] of this.pending) {
      const side = (p.live ?? p.shadow) as Side;
      if (side.eventAt >= beforeAt) continue;
      this.pending.delete(id);
      this.count(id, p);
    }
  }

  /** Per scenario, by id; with the latest differences, newest first. */
  report(): { scenarios: Record<string, ScenarioDiff>; totals: ScenarioDiff; examples: DiffExample[] } {
    const scenarios: Record<string, ScenarioDiff> = {};
    const totals = emptyDiff();
    for (const id of [...this.scenarios.keys()].sort()) {
      const d = this.scenarios.get(id) as ScenarioDiff;
      scenarios[id] = { ...d };
      for (const k of Object.keys(totals) as Array<keyof ScenarioDiff>) totals[k] += d[k];
    }
    return { scenarios, totals, examples: [...this.examples].reverse() };
  }

  get waiting(): number {
    return this.pending.size;
  }

  private add(which: 'live' | 'shadow', candidate: Candidate): void {
    const { action, to } = candidate;
    let p = this.pending.get(action.id);
    if (p === undefined) {
      p = {};
      this.pending.set(action.id, p);
    }
    if (p[which] !== undefined) return;
    p[which] = {
      scenario: action.scenario,
      actor: action.actor,
      eventAt: action.eventAt,
      shape: canonicalJson({ action: action.action, to: [...to].sort(), payload: action.payload }),
      payload: action.payload,
    };
    if (this.pending.size > this.maxPending) {
      const [oldest, q] = this.pending.entries().next().value as [string, Pending];
      this.pending.delete(oldest);
      this.settledEarly++;
      this.count(oldest, q);
    }
  }

  private count(id: string, p: Pending): void {
    const side = (p.live ?? p.shadow) as Side;
    const d = this.diffOf(side.scenario);
    if (p.live) d.live++;
    if (p.shadow) d.shadow++;
    if (p.live && p.shadow) {
      if (p.live.shape === p.shadow.shape) d.same++;
      else {
        d.changed++;
        this.example('changed', id, p);
      }
    } else if (p.shadow) {
      d.newly++;
      this.example('newly', id, p);
    } else {
      d.noLonger++;
      this.example('no-longer', id, p);
    }
  }

  private diffOf(scenario: string): ScenarioDiff {
    let d = this.scenarios.get(scenario);
    if (d === undefined) {
      d = emptyDiff();
      this.scenarios.set(scenario, d);
    }
    return d;
  }

  private example(kind: DiffKind, id: string, p: Pending): void {
    const side = (p.live ?? p.shadow) as Side;
    this.examples.push({
      kind,
      scenario: side.scenario,
      actor: side.actor,
      id,
      eventAt: new Date(side.eventAt).toISOString(),
      ...(p.live ? { live: p.live.payload } : {}),
      ...(p.shadow ? { shadow: p.shadow.payload } : {}),
    });
    if (this.examples.length > EXAMPLES) this.examples.shift();
  }
}

export function emptyDiff(): ScenarioDiff {
  return { live: 0, shadow: 0, same: 0, newly: 0, noLonger: 0, changed: 0 };
}

/** JSON with object keys sorted: two payloads that differ only in key order are the same payload. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return v;
    const o = v as Record<string, unknown>;
    return Object.fromEntries(
      Object.keys(o)
        .sort()
        .map((k) => [k, o[k]]),
    );
  });
}
