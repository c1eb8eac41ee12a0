import { createRequire } from 'node:module';

/**
 * mqtt-packet (aedes's packet writer) by default makes a 2-byte Buffer for each of the 65,536 16-bit numbers
 * the first time it writes a packet: some 17 ms and 10 to 14 MB of heap at the gateway's first CONNACK, kept for
 * good. Without that cache it makes the 2 bytes when it writes a number (a packet identifier, a string's
 * length), from Node's buffer pool. Off here, before the broker writes; the single executable's bundle has it off
 * from the start (build/bundle.ts), where this finds no node_modules and does nothing.
 */
export function dropPacketNumberCache(): void {
  try {
    const fromAedes = createRequire(createRequire(import.meta.url).resolve('aedes'));
    const writer = fromAedes('mqtt-packet') as { writeToStream: { cacheNumbers: boolean } };
    writer.writeToStream.cacheNumbers = false;
  } catch {
    // Not resolvable this way (bundled).
  }
}
