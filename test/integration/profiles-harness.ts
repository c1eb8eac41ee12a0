// The gateway's HTTP server with only the profile routes, on 127.0.0.1, port 0.
import { pino } from 'pino';
import { Registry } from 'prom-client';
import {
  apiAuthorizer,
  HttpApi,
  HttpMetrics,
  mountProfileRoutes,
  type RouteHandler,
  type RouteOptions,
} from '../../src/api/index.js';
import type { Store } from '../../src/store/index.js';

export interface ApiServer {
  url: string;
  /** Requests that reached the profile routes. */
  readonly hits: string[];
  close(): Promise<void>;
}

/** Records each request that reaches a route. */
class RecordingApi extends HttpApi {
  readonly hits: string[] = [];

  override route(method: string, template: string, handler: RouteHandler, options?: RouteOptions): this {
    return super.route(
      method,
      template,
      (ctx) => {
        this.hits.push(`${ctx.method} ${(ctx.req.url ?? '').split('?')[0] ?? ''}`);
        return handler(ctx);
      },
      options,
    );
  }
}

export async function startProfileApi(store: Store, opts: { token?: string } = {}): Promise<ApiServer> {
  const api = new RecordingApi({
    logger: pino({ level: 'silent' }),
    metrics: new HttpMetrics(new Registry()),
    authorize: opts.token === undefined ? undefined : apiAuthorizer({ host: '127.0.0.1', token: opts.token }),
  });
  mountProfileRoutes(api, store);
  const { port } = await api.listen('127.0.0.1', 0);
  return { url: `http://127.0.0.1:${port}`, hits: api.hits, close: () => api.close() };
}
