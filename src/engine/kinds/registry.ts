import type { KindPlan } from '../../rules/types.js';
import type { GroupState } from '../state.js';
import { aggregate } from './aggregate.js';
import type { AggregateWindowPlan } from './aggregate.js';
import { all } from './all.js';
import type { AllPlan } from './all.js';
import { count } from './count.js';
import type { CountPlan } from './count.js';
import type { ScenarioKind } from './kind.js';
import { sequence } from './sequence.js';
import type { SequencePlan } from './sequence.js';
import { silence } from './silence.js';
import type { SilencePlan } from './silence.js';
import { trigger } from './trigger.js';
import type { TriggerPlan } from './trigger.js';

/** The plans of the built-in kinds; a kind added with `registerKind` brings its own. */
export type WhenPlan = TriggerPlan | CountPlan | AggregateWindowPlan | SilencePlan | SequencePlan | AllPlan;

/** The `when` keys every kind may take; the parser compiles them for all. */
const SHARED_KEYS = ['where', 'by'] as const;

const kinds = new Map<string, ScenarioKind>();
let whenKeys: readonly string[] | undefined;

/**
 * Adds a scenario kind: rules can use it from then on, and the engine, recovery and the dashboard run it
 * like the built-in ones. Its name must be new; a key introducing it may introduce other kinds too (as
 * `event` does), but must not be another kind's own key, nor the other way round.
 */
export function registerKind<P extends KindPlan, S extends GroupState>(kind: ScenarioKind<P, S>): void {
  if (kinds.has(kind.name)) throw new Error(`scenario kind ${kind.name} is registered twice`);
  const selectors = new Set(kindSelectors());
  const owned = new Set<string>([...SHARED_KEYS, ...[...kinds.values()].flatMap((k) => k.syntax.keys)]);
  const clash =
    kind.syntax.selectors.find((key) => owned.has(key)) ?? kind.syntax.keys.find((key) => selectors.has(key));
  if (clash !== undefined)
    throw new Error(`scenario kind ${kind.name}: "${clash}" is already another key of when`);
  // Each kind only ever sees the plans it parsed itself (the registry goes by `plan.kind`), and the state
  // it keeps for them: its own P and S.
  const erased = kind as unknown as ScenarioKind;
  // One shape for every kind: the engine's calls through it stay monomorphic.
  kinds.set(kind.name, {
    name: erased.name,
    syntax: erased.syntax,
    parse: erased.parse,
    boundNames: erased.boundNames,
    firingExpressions: erased.firingExpressions,
    listens: erased.listens,
    horizonMs: erased.horizonMs,
    stopsAt: erased.stopsAt,
    hearsDevice: erased.hearsDevice,
    onEvent: erased.onEvent,
    onTimer: erased.onTimer,
    groups: erased.groups,
    timerOf: erased.timerOf,
    prune: erased.prune,
    timerPeriodMs: erased.timerPeriodMs,
    lastSeenEvent: erased.lastSeenEvent,
    progress: erased.progress,
    lastActor: erased.lastActor,
    explain: erased.explain,
    diagram: erased.diagram,
  });
  whenKeys = undefined;
}

/** The kind that parsed `plan` and runs it. */
export function kindOf(plan: KindPlan): ScenarioKind {
  const kind = kinds.get(plan.kind);
  if (kind === undefined) throw new Error(`no scenario kind ${plan.kind} is registered`);
  return kind;
}

/** Every registered kind, in the order they were registered. */
export function scenarioKinds(): readonly ScenarioKind[] {
  return [...kinds.values()];
}

/** The keys that introduce a kind (`event`, `any`, `absent`, …), in the order kinds were registered. */
export function kindSelectors(): string[] {
  return [...new Set(scenarioKinds().flatMap((k) => k.syntax.selectors))];
}

/** Every key a `when` may have: the selectors, the shared keys, then the kinds' own. */
export function whenKeysOf(): readonly string[] {
  whenKeys ??= [
    ...new Set([...kindSelectors(), ...SHARED_KEYS, ...scenarioKinds().flatMap((k) => k.syntax.keys)]),
  ];
  return whenKeys;
}

/** The kinds a selector introduces: several share `event` and `any`, and the keys given tell which is meant. */
export function kindsIntroducedBy(selector: string): ScenarioKind[] {
  return scenarioKinds().filter((k) => k.syntax.selectors.includes(selector));
}

// The built-in kinds, in the order rule messages list their keys. Of the kinds sharing `event`/`any`, the
// one with keys of its own given is meant (the trigger when none are).
registerKind(trigger);
registerKind(count);
registerKind(aggregate);
registerKind(all);
registerKind(silence);
registerKind(sequence);
