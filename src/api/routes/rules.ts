import { MAX_BUNDLE_BYTES, type RuleSync, type RulesStatus } from '../../sync/index.js';
import { readBody } from '../body.js';
import { sendJson } from '../respond.js';
import type { HttpApi } from '../server.js';

/** The answer of `POST /api/rules/apply` when the bundle is the one already running. */
export interface UnchangedAnswer {
  status: 'unchanged';
  version: number;
  detail: string;
}

/**
 * `POST /api/rules/apply` (the bundle as the body; 200 applied or unchanged, 422 rejected, a RulesStatus),
 * the way `vigil rules apply` reaches a running gateway; and `GET /api/rules`, the rules in force.
 */
export function mountRulesRoutes(api: HttpApi, sync: Pick<RuleSync, 'applyBundle' | 'running'>): void {
  api
    .route(
      'POST',
      '/api/rules/apply',
      async (ctx) => {
        const body = await readBody(ctx);
        const status: RulesStatus | undefined = await sync.applyBundle(body, 'local');
        if (status === undefined) {
          const answer: UnchangedAnswer = {
            status: 'unchanged',
            version: sync.running.version,
            detail: 'this bundle is the one running',
          };
          sendJson(ctx.res, 200, answer);
          return;
        }
        sendJson(ctx.res, status.status === 'applied' ? 200 : 422, status);
      },
      { maxBodyBytes: MAX_BUNDLE_BYTES },
    )
    .route('GET', '/api/rules', ({ res }) => sendJson(res, 200, sync.running));
}
