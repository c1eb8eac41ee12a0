export { runSim, type SimHooks } from './run-sim.js';
export { formatSummary, type SimSummary } from './summary.js';
export { generateProfiles, writeProfilesNdjson, type SimProfile } from './profiles.js';
export { planFleet, type DevicePlan, type FleetPlan, type OutagePlan, type SilentHow } from './plan.js';
export {
  EventSchedule,
  HEAT_THRESHOLD,
  HUMID_THRESHOLD,
  LOW_BATTERY_V,
  type PlannedEvent,
  type SimEventType,
  type Telemetry,
} from './schedule.js';
export { payloadEncoder, type PayloadEncoder } from './encode.js';
export { nowMs } from './clock.js';
export {
  resolveSimOptions,
  type DeviceCredentials,
  type FleetOptions,
  type PayloadFormat,
  type PlanOptions,
  type SilentMode,
  type SimOptions,
} from './options.js';
export { registerSimCommand } from './command.js';
