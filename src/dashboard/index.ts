export { HttpServer, sendJson, type RouteHandler } from './http-server.js';
export {
  mountDashboard,
  type Dashboard,
  type DashboardDeps,
  type EngineView,
  type ScenarioRow,
  type Summary,
  type UplinkState,
} from './api.js';
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
export { LiveStream } from './live-stream.js';
export { StaticAssets, ASSETS_DIR, VENDOR_FILES } from './static-assets.js';
export { apiAuthorizer, isLoopbackHost, OPEN_PATHS } from './api-token.js';
