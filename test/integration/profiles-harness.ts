// A stand-in for the gateway's HTTP server: the profile routes on 127.0.0.1, port 0.
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { profileRoutes, type Store } from '../../src/store/index.js';

export interface ApiServer {
  url: string;
  /** Requests that reached the profile routes. */
  readonly hits: string[];
  close(): Promise<void>;
}

export async function startProfileApi(store: Store, opts: { token?: string } = {}): Promise<ApiServer> {
  const routes = profileRoutes(store);
  const hits: string[] = [];
  const server: Server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    if (opts.token !== undefined && req.headers.authorization !== `Bearer ${opts.token}`) {
      res.writeHead(401, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'bad token' }));
      return;
    }
    hits.push(`${req.method} ${path}`);
    const done = (p: Promise<void>): void => {
      p.catch((err: unknown) => res.destroy(err as Error));
    };
    if (path === '/api/profiles/import') done(routes.importNdjson(req, res));
    else if (path.startsWith('/api/profiles/') && req.method === 'GET') {
      done(routes.get(decodeURIComponent(path.slice('/api/profiles/'.length)), res));
    } else res.writeHead(404).end();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    hits,
    async close() {
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    },
  };
}
