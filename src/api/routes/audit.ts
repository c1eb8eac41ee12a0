import { MAX_AUDIT_LIMIT, type AuditLog, type AuditQuery } from '../../store/index.js';
import { badQuery } from '../errors.js';
import { sendJson } from '../respond.js';
import type { HttpApi } from '../server.js';

export type AuditQueryResult = { ok: true; query: AuditQuery } | { ok: false; message: string };

/** Reads `?actor=ID&suppressed=true&limit=N`; anything else is refused with a reason. */
export function parseAuditQuery(params: URLSearchParams): AuditQueryResult {
  const query: AuditQuery = {};
  for (const name of params.keys()) {
    if (name !== 'actor' && name !== 'suppressed' && name !== 'limit')
      return { ok: false, message: `unknown parameter "${name}" (expected actor, suppressed, limit)` };
  }
  const actor = params.get('actor');
  if (actor !== null) {
    if (actor === '') return { ok: false, message: 'actor must not be empty' };
    query.actor = actor;
  }
  const suppressed = params.get('suppressed');
  if (suppressed !== null) {
    if (suppressed !== 'true' && suppressed !== 'false')
      return { ok: false, message: 'suppressed must be true or false' };
    query.suppressed = suppressed === 'true';
  }
  const limit = params.get('limit');
  if (limit !== null) {
    const n = Number(limit);
    if (!/^\d+$/.test(limit) || n < 1 || n > MAX_AUDIT_LIMIT)
      return { ok: false, message: `limit must be a whole number from 1 to ${MAX_AUDIT_LIMIT}` };
    query.limit = n;
  }
  return { ok: true, query };
}

/**
 * `GET /api/actions/log`: the audit log of a running gateway, newest first, as `{ entries: [...] }`; the
 * way `vigil actions log` reads it while the gateway holds the data directory.
 */
export function mountAuditRoutes(api: HttpApi, audit: Pick<AuditLog, 'list'>): void {
  api.route('GET', '/api/actions/log', async ({ res, query }) => {
    const parsed = parseAuditQuery(query);
    if (!parsed.ok) throw badQuery(parsed.message);
    sendJson(res, 200, { entries: await audit.list(parsed.query) });
  });
}
