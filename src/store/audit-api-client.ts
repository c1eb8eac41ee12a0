import http from 'node:http';
import https from 'node:https';
import type { AuditEntry, AuditQuery } from './audit-log.js';
import { GatewayApiError } from './errors.js';
import type { GatewayInfo } from './gateway-info.js';

/** The audit log of a running gateway, read through its local HTTP API (`GET /api/actions/log`). */
export async function auditLogThroughGateway(info: GatewayInfo, query: AuditQuery): Promise<AuditEntry[]> {
  const url = new URL('/api/actions/log', info.http);
  if (query.actor !== undefined) url.searchParams.set('actor', query.actor);
  if (query.suppressed === true) url.searchParams.set('suppressed', 'true');
  if (query.limit !== undefined) url.searchParams.set('limit', String(query.limit));
  const { status, text } = await get(info, url);
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch (err) {
    throw new GatewayApiError(`the gateway at ${url.origin} answered ${status} with invalid JSON`, {
      cause: err,
    });
  }
  const answer = body as { entries?: unknown; error?: unknown } | null;
  if (status !== 200) {
    const reason = typeof answer?.error === 'string' ? answer.error : text.trim() || 'no reason given';
    throw new GatewayApiError(
      `the gateway at ${url.origin} answered ${status} to ${url.pathname}: ${reason}`,
    );
  }
  if (!Array.isArray(answer?.entries)) {
    throw new GatewayApiError(`the gateway at ${url.origin} answered something other than an audit log`);
  }
  return answer.entries as AuditEntry[];
}

function get(info: GatewayInfo, url: URL): Promise<{ status: number; text: string }> {
  const client = url.protocol === 'https:' ? https : http;
  const headers = info.token === undefined ? {} : { authorization: `Bearer ${info.token}` };
  return new Promise((resolve, reject) => {
    const req = client.get(url, { headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('error', unreachable);
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }),
      );
    });
    req.on('error', unreachable);
    function unreachable(err: Error): void {
      reject(
        new GatewayApiError(
          `cannot reach the gateway (pid ${info.pid}) at ${url.origin}: ${err.message}. ` +
            'If it is starting or stopping, retry in a moment.',
          { cause: err },
        ),
      );
    }
  });
}
