import { sendJson } from '../respond.js';
import type { HttpApi } from '../server.js';

/**
 * `GET /api/shadow`: what the shadow rules would have done differently (the report `vigil/{gw}/shadow` carries), or
 * `{"status":"none"}` when no shadow runs.
 */
export function mountShadowRoutes(api: HttpApi, report: () => object | undefined): void {
  api.route('GET', '/api/shadow', ({ res }) => sendJson(res, 200, report() ?? { status: 'none' }));
}
