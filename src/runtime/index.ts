export {
  CLOCK_FLOOR_MS,
  CLOCK_STEP_MS,
  monotonicClock,
  observeWall,
  WallTime,
  type Clock,
  type WallChange,
  type WallState,
} from './clock.js';
export { TimerDriver, type TimerQueueLike } from './timer-driver.js';
export { Metrics } from './metrics.js';
export {
  LATENCY_BUCKETS,
  metricFamilies,
  type FamilyOptions,
  type MetricFamilies,
} from './metric-families.js';
export { DecisionLoop, type DecisionLoopDeps, type ErrorEffect, type LoopOutputs } from './decision-loop.js';
export { RulesInForce } from './rules-in-force.js';
export type { Scheduler } from './scheduler.js';
export { VirtualScheduler } from './virtual-scheduler.js';
export { replay, VirtualRun, parseEventsNdjson, type ReplayOutput, type ReplayError } from './replay.js';
export { Recorder } from './recorder.js';
export {
  DurableInputs,
  DEFAULT_DURABILITY,
  type DurabilitySettings,
  type DurabilityHealth,
  type DurabilityState,
  type ProfileLookup,
  type RecoveryDeps,
  type PublishSource,
  type RecoveryReport,
} from './durable-inputs.js';
export { Journal, type JournalEntry, type JournalFault, type Persist } from './journal.js';
export {
  decodeRecord,
  encodeRecord,
  encodeRecordInPlace,
  recordFormat,
  type ClockRecord,
  type InputRecord,
  type PublishOrigin,
} from './journal-records.js';
export {
  CheckpointEncoder,
  Checkpoints,
  encodeCheckpoint,
  type CheckpointSource,
  type CheckpointState,
  type EncodedCheckpoint,
} from './checkpoint.js';
export { DuplicateFilter, UPSTREAM_SENDER, type DuplicateEntry } from './duplicate-filter.js';
export { DurabilityMetrics } from './durability-metrics.js';
export {
  fileJournalStorage,
  type JournalFile,
  type JournalStorage,
  type StreamedFile,
} from './journal-storage.js';
export { clockNotBefore, graceMs, type RuleChanges } from './recovery.js';
export { retryUntilDone } from './retry.js';
export { swapRules, type SwapReport, type SwapTarget } from './rules-swap.js';
export { rulesRecordOf, rulesOfRecord } from './rules-record.js';
export type { ProfileChange, RulesRecord } from './journal-records.js';
export { JournalReader, type SegmentSpan } from './journal.js';
export {
  replayJournal,
  ReplayRangeError,
  type JournalReplay,
  type JournalReplayOptions,
  type RetainedRange,
} from './journal-replay.js';
export { oldestRetained, type RetentionSettings, type ReplayStart, type Retained } from './retention.js';
export { LastSeen, type LastSeenEviction, type LastSeenNeeds } from './last-seen.js';
export { BoundMetrics, type BoundedQueue } from './bound-metrics.js';
export { DEFAULT_INPUT_LIMITS, type InputLimits } from './durable-inputs.js';
export { releaseUnusedMemory } from './release-memory.js';
export {
  QUIET_CHECK_MS,
  QuietRelease,
  type MemoryReading,
  type QuietReleaseOptions,
  type ReleaseReport,
} from './quiet-release.js';
