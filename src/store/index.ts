export { openStore, storeExists, SUBLEVEL_NAMES } from './store.js';
export type { Store, StoreOptions, SublevelName } from './store.js';
export type { RootLevel, Sublevel } from './level-types.js';
export { isDiskFull, type StoreHealth } from './write-fault.js';
export { cborInUse, cborEncoding, encodeCbor, decodeCbor } from './cbor-encoding.js';
export { ProfileStore, DEFAULT_PROFILE_CACHE_ENTRIES } from './profile-store.js';
export type { ProfilePeek, ProfileEntry } from './profile-store.js';
export { Outbox, DEFAULT_OUTBOX_LIMITS, MAX_PRIORITY } from './outbox.js';
export type { AddResult, OutboxLimits } from './outbox.js';
export { LruCache } from './lru-cache.js';
export { importProfiles, DEFAULT_IMPORT_BATCH_SIZE } from './profile-import.js';
export type { ImportOptions } from './profile-import.js';
export type { ImportSummary, ImportLineError, ImportProgress } from './import-summary.js';
export { profileRoutes } from './profile-api.js';
export type { ProfileRoutes, ApiErrorBody } from './profile-api.js';
export { importThroughGateway, getThroughGateway } from './profile-api-client.js';
export { readGatewayInfo, gatewayInfoPath, isProcessAlive, GATEWAY_INFO_FILE } from './gateway-info.js';
export type { GatewayInfo } from './gateway-info.js';
export { ProfileImportError, GatewayApiError } from './errors.js';
export { AuditLog, auditEntryOf, DEFAULT_AUDIT_LIMIT } from './audit-log.js';
export type { AuditEntry, AuditQuery, AuditLogOptions } from './audit-log.js';
export { auditLogRoute, parseAuditQuery, MAX_AUDIT_LIMIT } from './audit-api.js';
export { auditLogThroughGateway } from './audit-api-client.js';
export {
  CredentialStore,
  DeviceCredentialError,
  credentialHashProblem,
  credentialImportTarget,
  generateSecret,
  hashSecret,
  importedCredentialProblem,
  secretMatches,
  CREDENTIAL_FIELD,
  SECRET_BYTES,
} from './credentials.js';
export type { CredentialInfo, CredentialSource, Verification } from './credentials.js';
export { credentialRoutes } from './credential-api.js';
export type { CredentialRoutes } from './credential-api.js';
export { listThroughGateway, removeThroughGateway, setHashThroughGateway } from './credential-api-client.js';
