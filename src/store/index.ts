export { openStore, storeExists, SUBLEVEL_NAMES } from './store.js';
export { STORE_FORMAT_KEY, type StoreFormat } from './store-format.js';
export type { Store, StoreOptions, SublevelName } from './store.js';
export { openStoreSnapshot, StoreBusyError } from './store-snapshot.js';
export type { SnapshotOptions, StoreSnapshot } from './store-snapshot.js';
export type { RootLevel, Sublevel } from './level-types.js';
export { storeIo } from './store-io.js';
export { isDiskFull, type StoreHealth } from './write-fault.js';
export { cborInUse, encodeCbor, decodeCbor } from './cbor-encoding.js';
export { ProfileStore } from './profile-store.js';
export type { ProfilePeek, ProfileEntry } from './profile-store.js';
export type { AddResult, OutboxLimits } from './outbox.js';
export { CommandOutbox, DEFAULT_COMMAND_OUTBOX_LIMITS } from './command-outbox.js';
export type {
  CommandAddResult,
  CommandDropReason,
  CommandOutboxLimits,
  DroppedCommand,
} from './command-outbox.js';
export { LruCache } from './lru-cache.js';
export { importProfiles } from './profile-import.js';
export type { ImportOptions, ProfileCheck } from './profile-import.js';
export type { ImportSummary, ImportLineError, ImportProgress } from './import-summary.js';
export { ProfileImportError } from './errors.js';
export { AuditLog, auditEntryOf, DEFAULT_AUDIT_LIMIT, MAX_AUDIT_LIMIT } from './audit-log.js';
export type { AuditEntry, AuditQuery, AuditLogOptions } from './audit-log.js';
export { MqttSessions, DEFAULT_MQTT_SESSION_LIMITS } from './mqtt-sessions.js';
export type {
  MqttSessionLimits,
  MqttSessionsOptions,
  MqttSessionStats,
  SessionDrop,
} from './mqtt-sessions.js';
