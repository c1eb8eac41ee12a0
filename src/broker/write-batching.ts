import type { Socket } from 'node:net';

/**
 * Holds a socket's writes until the event loop's next check phase and sends them in one go.
 *
 * With TCP_NODELAY every write is a segment of its own. mqtt-packet corks a packet only until the
 * next tick, so the PUBACKs of one read batch, or the messages relayed to a subscriber in one turn,
 * still leave one by one, and with Nagle off that cost 30–40% of peak throughput. Corking from the
 * first write until setImmediate coalesces them into one writev; the wait is one turn of the loop,
 * not a timer.
 */
export function batchWrites(socket: Socket): void {
  let corked = false;
  const release = (): void => {
    corked = false;
    socket.uncork();
  };
  const write = socket.write.bind(socket) as (...args: unknown[]) => boolean;
  // Patched on the instance: net.Server creates the sockets, so there is no subclass to give it.
  socket.write = (...args: unknown[]): boolean => {
    if (!corked) {
      corked = true;
      socket.cork();
      setImmediate(release);
    }
    return write(...args);
  };
}
