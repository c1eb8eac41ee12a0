import { createServer, type AddressInfo } from 'node:net';
import { Aedes } from 'aedes';

/** The local "cloud": an aedes the gateway's uplink publishes its actions to, on 127.0.0.1 and a free port. */
export interface CloudBroker {
  readonly url: string;
  stop(): Promise<void>;
}

export async function startCloudBroker(): Promise<CloudBroker> {
  const aedes = await Aedes.createBroker();
  const server = createServer((socket) => {
    socket.setNoDelay(true);
    aedes.handle(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `mqtt://127.0.0.1:${port}`,
    stop: async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      await new Promise<void>((resolve) => aedes.close(() => resolve()));
      await closed;
    },
  };
}
