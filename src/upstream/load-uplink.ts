import type { Uplink } from './uplink.js';

/**
 * The cloud connection's class, loaded with mqtt.js when a gateway has an upstream: without one, mqtt.js
 * (about a tenth of the gateway's start, and megabytes of memory) is never loaded.
 */
export async function loadUplink(): Promise<typeof Uplink> {
  return (await import('./uplink.js')).Uplink;
}
