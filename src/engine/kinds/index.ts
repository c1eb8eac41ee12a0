export type { WhenPlan } from './registry.js';
export {
  kindOf,
  kindSelectors,
  kindsIntroducedBy,
  registerKind,
  scenarioKinds,
  whenKeysOf,
} from './registry.js';
export type { GroupTimer, KindSyntax, ScenarioKind } from './kind.js';
export type { BoxRole, DiagramBox, GroupExplanation, KindDiagram, MatchProgress, Show } from './view.js';
export { eventBox, eventsText, formatDuration, listText, timeText } from './view.js';
export type { AggregateFn, AggregatePlan, AggregateState, AggregateWindowPlan } from './aggregate.js';
export type { AllPlan, AllState } from './all.js';
export type { CountPlan, CountState } from './count.js';
export type { SequencePlan, SequenceState, StepPlan } from './sequence.js';
export type { SilencePlan, SilenceState } from './silence.js';
export type { TriggerPlan } from './trigger.js';
