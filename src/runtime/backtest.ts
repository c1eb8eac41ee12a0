import { isDeepStrictEqual } from 'node:util';
import type { Logger } from 'pino';
import type { CheckpointState } from './checkpoint.js';
import type { EngineOptions } from '../engine/index.js';
import type { RuleSet } from '../rules/index.js';
import type { Event, Profile } from '../shared/index.js';
import { continueFrom } from './journal-tail.js';
import { VirtualRun, type ReplayError, type ReplayOutput } from './replay.js';
import { RulesInForce } from './rules-in-force.js';

/** What became of one action in one run: sent, suppressed (with the reason), or not decided at all. */
export type RunVerdict =
  { verdict: 'sent' } | { verdict: 'suppressed'; reason: string } | { verdict: 'none' };

/** How an action's fate differs between the rules compared (`old`) and the rules tried (`new`). */
export type ChangeKind = 'fires-newly' | 'no-longer-fires' | 'changed-payload' | 'changed-suppression';

export interface BacktestChange {
  kind: ChangeKind;
  scenario: string;
  actor: string;
  /** The action's id: the same in both runs when the same input completed the same match. */
  id: string;
  /** When the triggering event arrived (or the deadline of a non-event). */
  eventAt: number;
  old: RunVerdict & { payload?: Record<string, unknown> };
  new: RunVerdict & { payload?: Record<string, unknown> };
}

/** What one run decided for one scenario. */
export interface RunTally {
  sent: number;
  suppressed: number;
  errors: number;
}

/** One scenario's line of the summary: both runs' tallies and how many actions changed, by kind. */
export interface ScenarioDiff {
  scenario: string;
  old: RunTally;
  new: RunTally;
  changes: Record<ChangeKind, number>;
}

export interface BacktestDiff {
  scenarios: ScenarioDiff[];
  /** Every changed action, in the order of `eventAt` (then scenario, actor). */
  changes: BacktestChange[];
}

/** One run of a rule set over recorded inputs, on virtual time, keeping every verdict and evaluation error. */
export class RecordingRun {
  readonly actions: ReplayOutput[] = [];
  readonly errors: ReplayError[] = [];
  readonly run: VirtualRun;

  /**
   * A run of `rules` from `state` (a checkpoint's engine and arbiter state; empty state when undefined): scenarios
   * whose id and fingerprint match the state continue from it, with their timers armed.
   */
  constructor(
    readonly rules: RuleSet,
    engineOpts: EngineOptions,
    profileOf: (actor: string) => Profile | undefined,
    state: CheckpointState | undefined,
    logger: Logger,
  ) {
    const { engine, arbiter } = continueFrom(rules, engineOpts, state, logger);
    this.run = new VirtualRun(
      new RulesInForce(rules, engine, arbiter),
      profileOf,
      {
        verdict: (v) => {
          const line: ReplayOutput = { ...v.candidate.action, to: v.candidate.to };
          if (v.suppressed !== undefined) line.suppressed = v.suppressed;
          this.actions.push(line);
        },
        error: (e, now) => this.errors.push({ ...e, at: now }),
      },
      true,
    );
    for (const t of engine.pendingTimers()) this.run.scheduler.schedule(t.timer, t.actor, t.dueAt);
  }

  feed(ev: Event): void {
    this.run.feed(ev);
  }

  advanceTo(at: number): void {
    this.run.advanceTo(at);
  }
}

/** The longest stretch any scenario of `rules` looks at: how far past the last event a run fires timers by default. */
export function horizonOf(...ruleSets: readonly RuleSet[]): number {
  let max = 0;
  for (const rules of ruleSets) for (const sc of rules.scenarios) max = Math.max(max, sc.horizonMs);
  return max;
}

const NO_CHANGES: Readonly<Record<ChangeKind, number>> = {
  'fires-newly': 0,
  'no-longer-fires': 0,
  'changed-payload': 0,
  'changed-suppression': 0,
};

function verdictOf(line: ReplayOutput | undefined): RunVerdict {
  if (line === undefined) return { verdict: 'none' };
  return line.suppressed === undefined
    ? { verdict: 'sent' }
    : { verdict: 'suppressed', reason: line.suppressed };
}

/** How the fate of one action differs between the runs, or undefined when it does not. */
function changeOf(old: ReplayOutput | undefined, next: ReplayOutput | undefined): ChangeKind | undefined {
  const a = verdictOf(old);
  const b = verdictOf(next);
  if (a.verdict !== 'sent' && b.verdict === 'sent')
    return a.verdict === 'none' ? 'fires-newly' : 'changed-suppression';
  if (a.verdict === 'sent' && b.verdict !== 'sent')
    return b.verdict === 'none' ? 'no-longer-fires' : 'changed-suppression';
  if (a.verdict === 'suppressed' && b.verdict === 'suppressed' && a.reason !== b.reason)
    return 'changed-suppression';
  if (a.verdict !== b.verdict) return 'changed-suppression';
  if (old !== undefined && next !== undefined && !isDeepStrictEqual(old.payload, next.payload))
    return 'changed-payload';
  return undefined;
}

function side(line: ReplayOutput | undefined): BacktestChange['old'] {
  const verdict = verdictOf(line);
  return line === undefined ? verdict : { ...verdict, payload: line.payload };
}

/** The actions of a run by id; an id decided twice (the same input again) keeps each under its own key. */
function byId(actions: readonly ReplayOutput[]): Map<string, ReplayOutput> {
  const out = new Map<string, ReplayOutput>();
  for (const a of actions) {
    let key = a.id;
    for (let n = 2; out.has(key); n++) key = `${a.id}#${n}`;
    out.set(key, a);
  }
  return out;
}

/**
 * Compares the verdicts of two runs over the same inputs, action by action: an action's id is a hash of its
 * scenario, group and the input that completed the match, so the same decision has the same id in both runs.
 */
export function compareRuns(
  old: { actions: readonly ReplayOutput[]; errors: readonly ReplayError[] },
  next: { actions: readonly ReplayOutput[]; errors: readonly ReplayError[] },
): BacktestDiff {
  const rows = new Map<string, ScenarioDiff>();
  const row = (scenario: string): ScenarioDiff => {
    let r = rows.get(scenario);
    if (r === undefined) {
      r = {
        scenario,
        old: { sent: 0, suppressed: 0, errors: 0 },
        new: { sent: 0, suppressed: 0, errors: 0 },
        changes: { ...NO_CHANGES },
      };
      rows.set(scenario, r);
    }
    return r;
  };
  for (const [runs, tally] of [
    [old, 'old'],
    [next, 'new'],
  ] as const) {
    for (const a of runs.actions)
      row(a.scenario)[tally][a.suppressed === undefined ? 'sent' : 'suppressed']++;
    for (const e of runs.errors) row(e.scenario)[tally].errors++;
  }
  const oldById = byId(old.actions);
  const newById = byId(next.actions);
  const changes: BacktestChange[] = [];
  for (const key of new Set([...oldById.keys(), ...newById.keys()])) {
    const a = oldById.get(key);
    const b = newById.get(key);
    const kind = changeOf(a, b);
    const action = (b ?? a) as ReplayOutput;
    if (kind === undefined) continue;
    row(action.scenario).changes[kind]++;
    changes.push({
      kind,
      scenario: action.scenario,
      actor: action.actor,
      id: action.id,
      eventAt: action.eventAt,
      old: side(a),
      new: side(b),
    });
  }
  changes.sort(
    (x, y) => x.eventAt - y.eventAt || compareText(x.scenario, y.scenario) || compareText(x.actor, y.actor),
  );
  const scenarios = [...rows.values()].sort((x, y) => compareText(x.scenario, y.scenario));
  return { scenarios, changes };
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
