export { monotonicClock, type Clock } from './clock.js';
export { TimerDriver, type TimerQueueLike } from './timer-driver.js';
export { Metrics } from './metrics.js';
export { Pipeline, type PipelineDeps } from './pipeline.js';
export { Recorder } from './recorder.js';
export {
  DurableInputs,
  DEFAULT_DURABILITY,
  type DurabilitySettings,
  type DurabilityState,
  type ProfileLookup,
  type PublishSource,
  type RecoveryReport,
} from './durable-inputs.js';
export { Journal, type JournalEntry, type JournalFault, type Persist } from './journal.js';
export { decodeRecord, encodeRecord, type InputRecord, type PublishOrigin } from './journal-records.js';
export { Checkpoints, type CheckpointState } from './checkpoint.js';
export { DuplicateFilter, type DuplicateEntry } from './duplicate-filter.js';
export { DurabilityMetrics } from './durability-metrics.js';
export { fileJournalStorage, type JournalFile, type JournalStorage } from './journal-storage.js';
export { clockNotBefore, graceMs, type RuleChanges } from './recovery.js';
export { retryUntilDone } from './retry.js';
