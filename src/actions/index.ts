export { Arbiter } from './arbiter.js';
export type { ArbiterCandidate, ArbiterState, SuppressReason, Verdict } from './arbiter.js';
export { decidedOnGatewayAt, isExpired } from './expiry.js';
export { RateLimiter } from './rate-limiter.js';
export type { RateLimiterState } from './rate-limiter.js';
