export { Engine, DEFAULT_LATE_AFTER_MS, DEFAULT_MAX_EMIT_DEPTH } from './engine.js';
export type { EngineOptions, PendingTimer } from './engine.js';
export type { EmittedInput, Effect, ErrorStage, ScenarioCandidate } from './effects.js';
export type {
  EngineState,
  EngineView,
  GroupState,
  GroupsView,
  LiveEngineState,
  ScenarioStats,
  SeenEvent,
} from './state.js';
export { TimerQueue } from './timer-queue.js';
export type { TimerQueueState } from './timer-queue.js';
export { parseTimerKey } from './step.js';
export {
  eventBox,
  eventsText,
  formatDuration,
  kindOf,
  listText,
  registerKind,
  timeText,
  scenarioKinds,
} from './kinds/index.js';
export type {
  AggregateFn,
  AggregatePlan,
  BoxRole,
  DiagramBox,
  GroupExplanation,
  GroupTimer,
  KindDiagram,
  KindSyntax,
  MatchProgress,
  ScenarioKind,
  Show,
  StepPlan,
  WhenPlan,
} from './kinds/index.js';
export type { ScenarioRuntime } from './state.js';
export type { Step, Vars } from './step.js';
export { eventInput, seen, timerInput, timerKey } from './step.js';
