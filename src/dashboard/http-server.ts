import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';

export type RouteHandler = (
  req: IncomingMessage,
  res: ServerResponse,
  params: Record<string, string>,
) => Promise<void> | void;

interface Route {
  method: string;
  pattern: RegExp;
  names: string[];
  handler: RouteHandler;
}

/** The gateway's local HTTP API: health, metrics, and the commands that must go through a running gateway. */
export class HttpServer {
  private readonly routes: Route[] = [];
  private readonly server: Server;
  private authorize: ((req: IncomingMessage) => boolean) | undefined;
  private openPaths = new Set<string>();

  constructor(private readonly logger: Logger) {
    this.server = createServer((req, res) => this.handle(req, res));
    this.server.on('error', (err) => this.logger.error({ err }, 'http server error'));
  }

  /** Registers a route; `:name` segments become params. */
  route(method: string, path: string, handler: RouteHandler): this {
    const names: string[] = [];
    const source = path
      .split('/')
      .map((part) => {
        if (!part.startsWith(':')) return part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
        names.push(part.slice(1));
        return '([^/]+)';
      })
      .join('/');
    this.routes.push({ method, pattern: new RegExp(`^${source}$`), names, handler });
    return this;
  }

  /**
   * Every request but those to `openPaths` must pass `check`, or is answered 401. Set before `listen`;
   * the token check of the local API.
   */
  requireAuthorization(check: (req: IncomingMessage) => boolean, openPaths: readonly string[] = []): this {
    this.authorize = check;
    this.openPaths = new Set(openPaths);
    return this;
  }

  listen(host: string, port: number): Promise<{ host: string; port: number }> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      this.server.once('error', onError);
      this.server.listen(port, host, () => {
        this.server.off('error', onError);
        const addr = this.server.address() as AddressInfo;
        resolve({ host: addr.address, port: addr.port });
      });
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (this.authorize && !this.openPaths.has(url.pathname) && !this.authorize(req)) {
      // Basic lets a browser ask for the token (as the password) and send it with every request after.
      res.setHeader('www-authenticate', 'Basic realm="vigil", charset="UTF-8"');
      sendJson(res, 401, { error: 'this API needs the token: Authorization: Bearer TOKEN' });
      return;
    }
    let pathMatched = false;
    for (const route of this.routes) {
      const m = route.pattern.exec(url.pathname);
      if (!m) continue;
      pathMatched = true;
      if (route.method !== req.method) continue;
      const params: Record<string, string> = {};
      route.names.forEach((name, i) => (params[name] = decodeURIComponent(m[i + 1] ?? '')));
      Promise.resolve(route.handler(req, res, params)).catch((err: unknown) => {
        this.logger.error({ err, path: url.pathname }, 'http handler failed');
        if (!res.headersSent) sendJson(res, 500, { error: 'internal error; see the gateway log' });
        else res.end();
      });
      return;
    }
    if (pathMatched)
      sendJson(res, 405, { error: `method ${req.method ?? ''} not allowed on ${url.pathname}` });
    else sendJson(res, 404, { error: `no such endpoint: ${url.pathname}` });
  }
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}
