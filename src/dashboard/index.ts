export {
  DashboardView,
  FIRST_ACTIONS,
  type DashboardDeps,
  type DeviceDetail,
  type EngineView,
  type Hello,
  type ScenarioDetail,
  type ScenarioRow,
  type Summary,
  type UplinkState,
} from './view.js';
export {
  RecentActions,
  DEFAULT_RECENT_ACTIONS,
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
export { ScenarioRates, type RateHistory } from './scenario-rates.js';
export { DirSizeSampler, dirBytes, DEFAULT_DIR_SIZE_EVERY_MS } from './dir-size.js';
export { StaticAssets, ASSETS_DIR, VENDOR_FILES } from './static-assets.js';
