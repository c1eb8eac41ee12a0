export { Arbiter, capCovers, DEFAULT_ARBITER_ENTRIES } from './arbiter.js';
export type {
  ArbiterCandidate,
  ArbiterState,
  ArbiterStateLists,
  ArbiterStateV1,
  SavedArbiterState,
  SuppressReason,
  Verdict,
} from './arbiter.js';
export { decidedOnGatewayAt, isExpired } from './expiry.js';
export { RateLimiter } from './rate-limiter.js';
export type { RateLimiterState } from './rate-limiter.js';
