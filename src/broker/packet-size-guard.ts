import type { Socket } from 'node:net';
import { MalformedPacketError, PacketTooLargeError } from './errors.js';

/**
 * Ends the connection as soon as a packet's fixed header announces more than `maxBytes`, before its
 * body arrives: aedes' parser (mqtt-packet) has no size limit and buffers a packet whole before it
 * looks at it, so a client could make the gateway hold megabytes per connection.
 *
 * It follows the packet boundaries in the bytes aedes reads, via 'data': with a 'readable' listener
 * attached (aedes'), 'data' fires for each chunk `read()` returns, before aedes parses it, and does
 * not switch the socket to flowing mode. So it must be attached after `aedes.handle(socket)`.
 */
export function guardPacketSize(socket: Socket, maxBytes: number): void {
  // Body bytes of the current packet still to skip; while 0, the next byte starts a fixed header.
  let skip = 0;
  // Fixed-header bytes seen for the packet being announced (0: none yet; 1: type byte; 2–5: length bytes).
  let headerBytes = 0;
  let remaining = 0;
  let multiplier = 1;

  const stop = (err: Error): void => {
    socket.removeListener('data', onData);
    socket.destroy(err);
  };

  function onData(chunk: Buffer): void {
    let i = 0;
    while (i < chunk.length) {
      if (skip > 0) {
        const n = Math.min(skip, chunk.length - i);
        skip -= n;
        i += n;
        continue;
      }
      const byte = chunk[i++] ?? 0;
      if (headerBytes === 0) {
        headerBytes = 1;
        remaining = 0;
        multiplier = 1;
        continue;
      }
      remaining += (byte & 0x7f) * multiplier;
      multiplier *= 128;
      headerBytes++;
      if (byte & 0x80) {
        // [MQTT-2.2.3] the Remaining Length takes at most four bytes.
        if (headerBytes > 4) return stop(new MalformedPacketError('remaining length longer than four bytes'));
        continue;
      }
      const total = headerBytes + remaining;
      headerBytes = 0;
      if (total > maxBytes) return stop(new PacketTooLargeError(total, maxBytes));
      skip = remaining;
    }
  }

  socket.on('data', onData);
}
