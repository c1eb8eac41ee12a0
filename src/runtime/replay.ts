import { Arbiter } from '../actions/index.js';
import { Engine, type EmittedInput, type Effect, type EngineOptions } from '../engine/index.js';
import type { RuleSet } from '../rules/index.js';
import type { Action, Destination, Event, EventSource, Profile } from '../shared/index.js';
import { DecisionLoop, type ErrorEffect, type LoopOutputs } from './decision-loop.js';
import { RulesInForce } from './rules-in-force.js';
import { VirtualScheduler } from './virtual-scheduler.js';

/** One decided action as `vigil replay` prints it: the action, where it goes, and why it was held back if it was. */
export type ReplayOutput = Action & { to: readonly Destination[]; suppressed?: string };

/** An evaluation error seen during a replay. */
export type ReplayError = ErrorEffect & { at: number };

export interface ReplayOptions {
  gateway?: string;
  profiles?: ReadonlyMap<string, Profile>;
  /** Timers due up to this time fire after the last event; default: the last event's time plus the longest period in the rules. */
  untilMs?: number;
  /** Weigh the candidates by the rules' policy, as the gateway does; without it every candidate is sent. */
  arbitrate?: boolean;
  /** Sees each evaluation error, for reports and tests. */
  onError?: (error: ReplayError) => void;
}

/**
 * The decision loop on virtual time, as the gateway runs it on real time: before each event every timer due
 * strictly before it fires, in deadline order. An event that arrives exactly at a timer's deadline is processed
 * first: a deadline is inclusive, so the awaited event came in time. A business event emitted for another actor is
 * an input of its own, as in the gateway: queued at the time it was emitted and applied after the input that
 * emitted it (and before the next), with its actor's profile from `profileOf`.
 */
export class VirtualRun {
  readonly scheduler = new VirtualScheduler();
  readonly loop: DecisionLoop;
  private readonly emitted: EmittedInput[] = [];

  constructor(
    readonly rules: RulesInForce,
    private readonly profileOf: (actor: string) => Profile | undefined,
    outputs: LoopOutputs,
    arbitrate: boolean,
  ) {
    const queueing: LoopOutputs = {
      ...outputs,
      emitted: (input, replay) => {
        outputs.emitted?.(input, replay);
        // A replay of the journal applies the emitted events where the journal recorded them.
        if (!replay) this.emitted.push(input);
      },
    };
    this.loop = new DecisionLoop({ rules, scheduler: this.scheduler, outputs: queueing, arbitrate });
  }

  /** A run of `rules` from empty state. */
  static of(
    rules: RuleSet,
    engineOpts: EngineOptions,
    profileOf: (actor: string) => Profile | undefined,
    outputs: LoopOutputs,
    arbitrate = true,
  ): VirtualRun {
    const inForce = new RulesInForce(rules, new Engine(rules, engineOpts), new Arbiter(rules.policy));
    return new VirtualRun(inForce, profileOf, outputs, arbitrate);
  }

  feed(ev: Event): void {
    this.scheduler.advance(ev.at, false, this.fireDue);
    this.loop.onEvent(ev, this.profileOf(ev.actor));
    this.applyEmitted();
  }

  advanceTo(now: number): void {
    this.scheduler.advance(now, true, this.fireDue);
  }

  /** A housekeeping pass at `at`: timers due strictly before it fire first, as before an event. */
  prune(at: number): number {
    this.scheduler.advance(at, false, this.fireDue);
    return this.loop.prune(at);
  }

  /** Fires one timer at `now`, a time of the caller's choosing (a late or early runtime). */
  fire(timer: string, now: number, actor?: string): readonly Effect[] {
    const effects = this.loop.onTimer(
      timer,
      now,
      actor,
      actor === undefined ? undefined : this.profileOf(actor),
    );
    this.applyEmitted();
    return effects;
  }

  private readonly fireDue = (timer: string, actor: string | undefined, dueAt: number): void => {
    this.loop.onTimer(timer, dueAt, actor, actor === undefined ? undefined : this.profileOf(actor));
    this.applyEmitted();
  };

  /** The events emitted for other actors, in the order emitted, with those they emit in turn. */
  private applyEmitted(): void {
    for (let i = 0; i < this.emitted.length; i++) {
      const input = this.emitted[i] as EmittedInput;
      this.loop.onEmitted(input, this.profileOf(input.event.actor));
    }
    this.emitted.length = 0;
  }
}

/**
 * Runs events through the rules on virtual time (events in order of `at`, stable for equal times), then fires
 * the timers due up to `untilMs`; returns every verdict.
 */
export function replay(rules: RuleSet, events: readonly Event[], opts: ReplayOptions = {}): ReplayOutput[] {
  const out: ReplayOutput[] = [];
  const run = VirtualRun.of(
    rules,
    { gateway: opts.gateway ?? 'replay' },
    (actor) => opts.profiles?.get(actor),
    {
      verdict: (v) => {
        const line: ReplayOutput = { ...v.candidate.action, to: v.candidate.to };
        if (v.suppressed !== undefined) line.suppressed = v.suppressed;
        out.push(line);
      },
      error: (e, now) => opts.onError?.({ ...e, at: now }),
    },
    opts.arbitrate ?? false,
  );
  const sorted = events
    .map((ev, i) => ({ ev, i }))
    .sort((a, b) => a.ev.at - b.ev.at || a.i - b.i)
    .map((x) => x.ev);
  for (const ev of sorted) run.feed(ev);
  const lastAt = sorted.length > 0 ? (sorted[sorted.length - 1] as Event).at : 0;
  const horizon = rules.scenarios.reduce((max, s) => Math.max(max, s.horizonMs), 0);
  run.advanceTo(opts.untilMs ?? lastAt + horizon);
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
