import { createHmac } from 'node:crypto';
import { hashSecret } from '../src/credentials/index.js';

/**
 * Each simulated device's own secret, derived from one fleet secret: the profiles file carries the
 * hashes for `vigil profiles import`, and the simulator derives the secrets again to connect.
 */
export function deviceSecret(fleetSecret: string, deviceId: string): string {
  return createHmac('sha256', fleetSecret).update(deviceId).digest('base64url');
}

/** The `credential` field a profile import takes: a keyed hash of the device's secret, never the secret. */
export function credentialOf(fleetSecret: string, deviceId: string): string {
  return hashSecret(deviceSecret(fleetSecret, deviceId));
}
