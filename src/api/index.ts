export { startHttpApi, type HttpApiDeps, type RunningHttpApi } from './start.js';
export {
  HttpApi,
  type HttpApiOptions,
  type RequestContext,
  type RouteHandler,
  type RouteOptions,
} from './server.js';
export { HttpMetrics } from './http-metrics.js';
export { RequestRejectedError, type ApiErrorCode, type RejectCode, type RejectReason } from './errors.js';
export { sendError, sendJson, type ErrorBody } from './respond.js';
export { parseTarget, MAX_TARGET_CHARS, type RequestTarget } from './request-target.js';
export { readBody, readJsonObject, DEFAULT_MAX_BODY_BYTES } from './body.js';
export { apiAuthorizer, isLoopbackHost, OPEN_PATHS } from './api-token.js';
export { LiveStream, DEFAULT_MAX_STREAM_CLIENTS } from './live-stream.js';
export { mountProfileRoutes } from './routes/profiles.js';
export { mountAuditRoutes, parseAuditQuery, type AuditQueryResult } from './routes/audit.js';
export { mountDeviceRoutes, type DeviceRoutesDeps } from './routes/devices.js';
export { mountRulesRoutes, type UnchangedAnswer } from './routes/rules.js';
export { mountHealthRoutes } from './routes/health.js';
export { mountDashboard, type Dashboard } from './routes/dashboard.js';
export { GatewayClient } from './client.js';
export { GatewayApiError } from './client-errors.js';
export { readGatewayInfo, gatewayInfoPath, isProcessAlive } from './gateway-info.js';
export type { GatewayInfo } from './gateway-info.js';
