import { Engine, TimerQueue } from '../engine/index.js';
import type { Effect } from '../engine/index.js';
import type { RuleSet } from '../rules/index.js';
import type { Action, Candidate, Destination, Event, EventSource, Profile } from '../shared/index.js';

/** One decided action as `vigil replay` prints it: the action, where it goes, and why it was held back if it was. */
export type ReplayOutput = Action & { to: readonly Destination[]; suppressed?: string };

/** An evaluation error seen during a replay. */
export type ReplayError = Extract<Effect, { kind: 'error' }> & { at: number };

export interface ReplayOptions {
  gateway?: string;
  profiles?: ReadonlyMap<string, Profile>;
  /** Timers due up to this time fire after the last event; default: the last event's time plus the longest period in the rules. */
  untilMs?: number;
  /** Arbitration of the candidates decided at one instant; without it every candidate is sent. */
  arbitrate?: (candidates: Candidate[], now: number) => Array<{ candidate: Candidate; suppressed?: string }>;
  /** Sees each evaluation error, for reports and tests. */
  onError?: (error: ReplayError) => void;
}

/**
 * Runs events through the rules on virtual time, as the gateway would have: events in order of `at`
 * (stable for equal times), and before each event every timer due strictly before it, in deadline order.
 * An event that arrives exactly at a timer's deadline is processed first: a deadline is inclusive, so the
 * awaited event came in time. Then the timers due up to `untilMs` fire.
 */
export function replay(rules: RuleSet, events: readonly Event[], opts: ReplayOptions = {}): ReplayOutput[] {
  const engine = new Engine(rules, { gateway: opts.gateway ?? 'replay' });
  const timers = new TimerQueue();
  const timerActors = new Map<string, string>();
  const profileOf = (actor: string | undefined): Profile | undefined =>
    actor === undefined ? undefined : opts.profiles?.get(actor);
  const out: ReplayOutput[] = [];

  const apply = (effects: Effect[], now: number): void => {
    const candidates: Candidate[] = [];
    for (const e of effects) {
      switch (e.kind) {
        case 'schedule':
          timers.schedule(e.timer, e.dueAt);
          timerActors.set(e.timer, e.actor);
          break;
        case 'cancel':
          timers.cancel(e.timer);
          timerActors.delete(e.timer);
          break;
        case 'decide':
          candidates.push(e.candidate);
          break;
        case 'error':
          opts.onError?.({ ...e, at: now });
          break;
        case 'emit':
          break;
      }
    }
    if (candidates.length === 0) return;
    const verdicts: Array<{ candidate: Candidate; suppressed?: string }> = opts.arbitrate
      ? opts.arbitrate(candidates, now)
      : candidates.map((candidate) => ({ candidate }));
    for (const v of verdicts) {
      const line: ReplayOutput = { ...v.candidate.action, to: v.candidate.to };
      if (v.suppressed !== undefined) line.suppressed = v.suppressed;
      out.push(line);
    }
  };

  const fireTimersBefore = (limit: number, inclusive: boolean): void => {
    for (;;) {
      const next = timers.peek();
      if (!next || next.dueAt > limit || (!inclusive && next.dueAt === limit)) return;
      timers.pop();
      const actor = timerActors.get(next.key);
      timerActors.delete(next.key);
      apply(engine.onTimer(next.key, next.dueAt, profileOf(actor)), next.dueAt);
    }
  };

  const sorted = events
    .map((ev, i) => ({ ev, i }))
    .sort((a, b) => a.ev.at - b.ev.at || a.i - b.i)
    .map((x) => x.ev);
  for (const ev of sorted) {
    fireTimersBefore(ev.at, false);
    apply(engine.onEvent(ev, profileOf(ev.actor)), ev.at);
  }
  const lastAt = sorted.length > 0 ? (sorted[sorted.length - 1] as Event).at : 0;
  const horizon = rules.scenarios.reduce((max, s) => Math.max(max, s.horizonMs), 0);
  fireTimersBefore(opts.untilMs ?? lastAt + horizon, true);
  return out;
}

const SOURCES: readonly EventSource[] = ['device', 'broker', 'cloud', 'engine'];

export type ParsedEvents = { ok: true; events: Event[] } | { ok: false; errors: string[] };

/**
 * Reads events, one JSON object per line (`{actor, type, at, data?, source?, deviceAt?}`); `source`
 * defaults to `device` and `data` to `{}`. Blank lines are skipped; every bad line is reported as
 * `line N: message`, and any of them makes the whole file unusable.
 */
export function parseEventsNdjson(text: string): ParsedEvents {
  const events: Event[] = [];
  const errors: string[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (line === '') return;
    const fail = (message: string): void => {
      errors.push(`line ${i + 1}: ${message}`);
    };
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (err) {
      fail(`not valid JSON (${err instanceof Error ? err.message : String(err)})`);
      return;
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      fail('expected a JSON object with actor, type and at');
      return;
    }
    const o = value as Record<string, unknown>;
    if (typeof o.actor !== 'string' || o.actor === '') return fail('"actor" must be a non-empty string');
    if (typeof o.type !== 'string' || o.type === '') return fail('"type" must be a non-empty string');
    if (typeof o.at !== 'number' || !Number.isFinite(o.at))
      return fail('"at" must be a time in milliseconds');
    const data = o.data ?? {};
    if (data === null || typeof data !== 'object' || Array.isArray(data))
      return fail('"data" must be a JSON object');
    const source = o.source ?? 'device';
    if (typeof source !== 'string' || !(SOURCES as readonly string[]).includes(source))
      return fail(`"source" must be one of ${SOURCES.join(', ')}`);
    const ev: Event = {
      actor: o.actor,
      type: o.type,
      at: o.at,
      data: data as Record<string, unknown>,
      source: source as EventSource,
    };
    if (o.deviceAt !== undefined) {
      if (typeof o.deviceAt !== 'number' || !Number.isFinite(o.deviceAt))
        return fail('"deviceAt" must be a number');
      ev.deviceAt = o.deviceAt;
    }
    events.push(ev);
  });
  return errors.length > 0 ? { ok: false, errors } : { ok: true, events };
}
