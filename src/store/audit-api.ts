import type { IncomingMessage, ServerResponse } from 'node:http';
import { VigilError } from '../shared/index.js';
import type { AuditLog, AuditQuery } from './audit-log.js';

/** The largest `limit` one request may ask for: the whole log of one kind. */
export const MAX_AUDIT_LIMIT = 100_000;

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
export function auditLogRoute(audit: AuditLog) {
  return async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const parsed = parseAuditQuery(new URL(req.url ?? '/', 'http://localhost').searchParams);
    if (!parsed.ok) {
      sendJson(res, 400, { error: parsed.message });
      return;
    }
    try {
      sendJson(res, 200, { entries: await audit.list(parsed.query) });
    } catch (err) {
      const body =
        err instanceof VigilError
          ? { error: err.message, code: err.code }
          : { error: err instanceof Error ? err.message : String(err) };
      sendJson(res, 500, body);
    }
  };
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent || res.destroyed) return;
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}
