import type { Registry } from 'prom-client';
import { sendJson } from '../respond.js';
import type { HttpApi } from '../server.js';

/** `GET /healthz` (open without the token: a liveness probe rarely carries credentials) and `GET /metrics`. */
export function mountHealthRoutes(api: HttpApi, deps: { healthz: () => object; registry: Registry }): void {
  api
    .route('GET', '/healthz', ({ res }) => sendJson(res, 200, deps.healthz()))
    .route('GET', '/metrics', async ({ res }) => {
      const text = await deps.registry.metrics();
      res.writeHead(200, { 'content-type': deps.registry.contentType });
      res.end(text);
    });
}
