export {
  CredentialStore,
  DeviceCredentialError,
  credentialHashProblem,
  credentialImportTarget,
  generateSecret,
  hashSecret,
  importedCredentialProblem,
  profileSecretProblem,
  secretFieldOf,
  secretMatches,
  withoutSecretFields,
  CREDENTIAL_FIELD,
  CREDENTIAL_SCHEME,
  SECRET_BYTES,
  SECRET_FIELD_WORDS,
  READ_AHEAD_MAX,
} from './credentials.js';
export type { CredentialInfo, CredentialSource, Verification } from './credentials.js';
