export { Engine, DEFAULT_LATE_AFTER_MS, DEFAULT_MAX_EMIT_DEPTH } from './engine.js';
export type { EngineOptions, PendingTimer } from './engine.js';
export type { Effect, ErrorStage, ScenarioCandidate } from './effects.js';
export type { EngineState, GroupState, ScenarioStats, SeenEvent } from './state.js';
export { TimerQueue } from './timer-queue.js';
export type { TimerQueueState } from './timer-queue.js';
export { parseTimerKey } from './step.js';
