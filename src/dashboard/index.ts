export {
  DashboardView,
  DEVICE_DECISIONS,
  FIRST_ACTIONS,
  type DeviceOverview,
  type DashboardDeps,
  type DeviceDetail,
  type EngineView,
  type Hello,
  type ScenarioDetail,
  type RulesView,
  type ScenarioRow,
  type Summary,
  type UplinkState,
} from './view.js';
export {
  RecentActions,
  DEFAULT_RECENT_ACTIONS,
  EXPIRED_REASON,
  type VerdictTotals,
  type ActionEntry,
  type ScenarioTally,
  type Verdict,
} from './recent-actions.js';
export {
  DeviceActivity,
  DEFAULT_ONLINE_WITHIN_MS,
  DEFAULT_MAX_TRACKED_DEVICES,
  type DeviceActivityOptions,
  type DeviceCounts,
} from './device-activity.js';
export {
  describeScenario,
  formatDuration,
  withParams,
  type DiagramBox,
  type ScenarioDiagram,
} from './scenario-diagram.js';
export { openMatchesOf, timersOf, type OpenMatch, type DeviceTimer } from './device-state.js';
export {
  explainDevice,
  type DeviceExplanation,
  type ScenarioExplanation,
  type DecisionExplanation,
} from './device-explain.js';
export { DeviceDecisions } from './device-decisions.js';
export { ScenarioRates, type RateHistory } from './scenario-rates.js';
export { DirSizeSampler, dirBytes, DEFAULT_DIR_SIZE_EVERY_MS } from './dir-size.js';
export { StaticAssets, assetsDir, VENDOR_FILES } from './static-assets.js';
export {
  History,
  PointRing,
  HISTORY_FIELDS,
  FINE_STEP_MS,
  FINE_POINTS,
  COARSE_STEP_MS,
  COARSE_POINTS,
  merge,
  percentile,
  type HistoryField,
  type HistoryPoint,
  type HistorySeries,
} from './history.js';
export { HistorySampler, type HistorySources } from './history-sampler.js';
export {
  PresenceCounter,
  DEFAULT_NEVER_SEEN_EVERY_MS,
  devicePresenceOf,
  type DevicePresence,
  type Presence,
  type PresenceOptions,
} from './presence.js';
export {
  DeviceEvents,
  DEFAULT_EVENTS_PER_DEVICE,
  DEFAULT_MAX_DEVICES_WITH_EVENTS,
  type DeviceEventsOptions,
  type SeenEvent,
} from './device-events.js';
