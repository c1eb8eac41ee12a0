export { createBundle, openBundle, MAX_BUNDLE_BYTES } from './bundle.js';
export type { BundleContent, BundleDefect, BundleFile, OpenedBundle } from './bundle.js';
export { readBundleFiles } from './bundle-files.js';
export { BundleStore, type StoredBundle } from './bundle-store.js';
export { checkBundle, type BundleVerdict, type BundleInForce } from './check-bundle.js';
export {
  keyId,
  readSigningKey,
  readTrustedKey,
  readTrustedKeys,
  writeKeyPair,
  KeyFileError,
} from './keys.js';
export type { SigningKey, TrustedKey } from './keys.js';
export { applyToStore } from './offline-apply.js';
export { parseProfileBatch, MAX_PROFILE_BATCH_BYTES, MAX_PROFILE_BATCH_CHANGES } from './profile-batch.js';
export type { ParsedProfileBatch, ProfileBatch, ProfileBatchLimit } from './profile-batch.js';
export { ProfileSync, PROFILE_SEQ_KEY } from './profile-sync.js';
export type { ProfileBatchRefusal, ProfileBatchStatus, ProfileSyncOptions } from './profile-sync.js';
export { RuleSync } from './rule-sync.js';
export type { RuleSyncOptions, RulesInForce, RunningRules } from './rule-sync.js';
export type { RejectReason, RulesSource, RulesStatus } from './rules-status.js';
export { chooseStartupRules } from './startup-rules.js';
export { startCloudSync, type CloudSync, type CloudSyncOptions } from './cloud-sync.js';
export { createKeyList, openKeyList, MAX_KEY_LIST_BYTES } from './key-list.js';
export type { KeyListContent } from './key-list.js';
export { KeyRing, KEY_LIST_KEY } from './key-ring.js';
export type { KeyListRejectReason, KeyListStatus } from './key-ring.js';
