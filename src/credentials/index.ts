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
  CREDENTIAL_SCHEME,
  SECRET_BYTES,
} from './credentials.js';
export type { CredentialInfo, CredentialSource, Verification } from './credentials.js';
