import { createServer } from 'node:net';

/**
 * A port the OS considers free right now. Only for programs that cannot bind port 0 and report it
 * (mosquitto); everything of ours binds port 0 itself.
 */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}
