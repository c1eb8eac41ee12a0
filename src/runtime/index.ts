export { monotonicClock, type Clock } from './clock.js';
export { TimerDriver, type TimerQueueLike } from './timer-driver.js';
export { Metrics } from './metrics.js';
export { Pipeline, type PipelineDeps } from './pipeline.js';
export { Recorder } from './recorder.js';
