// The plain-aedes baseline, run as a child process: aedes on TCP with nothing of Vigil, relaying what devices
// publish to whoever subscribed. Its sockets are set up as Vigil's embedded broker sets up its own (TCP_NODELAY,
// writes batched per turn of the event loop), so the difference to Vigil is everything Vigil does per event.
// Prints `listening on PORT` once it accepts connections (`--port N` binds N rather than a free port). Runs under
// `--import tsx` or Node 24's own type stripping (the startup benchmark, which times the start itself).
import { createServer, type Socket } from 'node:net';
import { parseArgs } from 'node:util';
import { Aedes } from 'aedes';

const { values } = parseArgs({
  options: { 'no-batch': { type: 'boolean', default: false }, port: { type: 'string', default: '0' } },
});

/** Holds a socket's writes until the loop's next check phase and sends them in one go (as src/broker does). */
function batchWrites(socket: Socket): void {
  let corked = false;
  const release = (): void => {
    corked = false;
    socket.uncork();
  };
  const write = socket.write.bind(socket) as (...args: unknown[]) => boolean;
  socket.write = (...args: unknown[]): boolean => {
    if (!corked) {
      corked = true;
      socket.cork();
      setImmediate(release);
    }
    return write(...args);
  };
}

const aedes = await Aedes.createBroker();
const server = createServer((socket) => {
  socket.setNoDelay(true);
  if (!values['no-batch']) batchWrites(socket);
  aedes.handle(socket);
});
server.listen(Number(values.port), '127.0.0.1', () => {
  const address = server.address();
  process.stdout.write(`listening on ${typeof address === 'object' && address ? address.port : 0}\n`);
});
const stop = (): void => {
  server.close();
  aedes.close(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
