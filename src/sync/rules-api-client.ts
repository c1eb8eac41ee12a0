import http from 'node:http';
import https from 'node:https';
import { GatewayApiError, type GatewayInfo } from '../store/index.js';
import type { UnchangedAnswer } from './rules-api.js';
import type { RulesStatus } from './rules-status.js';

/** Sends a bundle to a running gateway, which applies it under its own trusted keys. */
export async function applyThroughGateway(
  info: GatewayInfo,
  bundle: Buffer,
): Promise<RulesStatus | UnchangedAnswer> {
  const url = new URL('/api/rules/apply', info.http);
  const client = url.protocol === 'https:' ? https : http;
  const headers: Record<string, string> = {
    'content-type': 'application/cose; cose-type="cose-sign1"',
    'content-length': String(bundle.length),
  };
  if (info.token !== undefined) headers['authorization'] = `Bearer ${info.token}`;
  const answer = await new Promise<{ status: number; text: string }>((resolve, reject) => {
    const req = client.request(url, { method: 'POST', headers });
    req.on('error', (err) =>
      reject(
        new GatewayApiError(`cannot reach the gateway (pid ${info.pid}) at ${url.origin}: ${err.message}`, {
          cause: err,
        }),
      ),
    );
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('error', reject);
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }),
      );
    });
    req.end(bundle);
  });
  let body: unknown;
  try {
    body = JSON.parse(answer.text);
  } catch (err) {
    throw new GatewayApiError(`the gateway at ${url.origin} answered ${answer.status} with invalid JSON`, {
      cause: err,
    });
  }
  const status = (body as { status?: unknown } | null)?.status;
  if ((answer.status === 200 || answer.status === 422) && typeof status === 'string') {
    return body as RulesStatus | UnchangedAnswer;
  }
  const error = (body as { error?: unknown } | null)?.error;
  throw new GatewayApiError(
    `the gateway at ${url.origin} answered ${answer.status} to ${url.pathname}: ${typeof error === 'string' ? error : answer.text}`,
  );
}
