import http from 'node:http';
import https from 'node:https';
import type { Readable } from 'node:stream';
import type { Profile } from '../shared/index.js';
import { GatewayApiError } from './errors.js';
import type { GatewayInfo } from './gateway-info.js';
import type { ImportSummary } from './import-summary.js';

interface Answer {
  status: number;
  text: string;
}

/** Streams NDJSON to a running gateway's import API; `onBytes` gets the running total sent. */
export async function importThroughGateway(
  info: GatewayInfo,
  body: Readable,
  opts: { onBytes?: (bytesSent: number) => void } = {},
): Promise<ImportSummary> {
  const url = new URL('/api/profiles/import', info.http);
  const answer = await request(
    info,
    url,
    'POST',
    { 'content-type': 'application/x-ndjson' },
    body,
    opts.onBytes,
  );
  if (answer.status !== 200) throw refusal(info, url, answer);
  const summary = parseJson(url, answer.text) as Partial<ImportSummary> | null;
  if (
    typeof summary !== 'object' ||
    summary === null ||
    typeof summary.imported !== 'number' ||
    typeof summary.rejected !== 'number' ||
    !Array.isArray(summary.errors)
  ) {
    throw new GatewayApiError(`the gateway at ${url.origin} answered something other than an import summary`);
  }
  return {
    imported: summary.imported,
    rejected: summary.rejected,
    errors: summary.errors,
    elapsedMs: summary.elapsedMs ?? 0,
  };
}

/** A profile read through a running gateway; undefined when it has none with this id. */
export async function getThroughGateway(info: GatewayInfo, id: string): Promise<Profile | undefined> {
  const url = new URL(`/api/profiles/${encodeURIComponent(id)}`, info.http);
  const answer = await request(info, url, 'GET', {});
  if (answer.status === 404) return undefined;
  if (answer.status !== 200) throw refusal(info, url, answer);
  const profile = parseJson(url, answer.text);
  if (typeof profile !== 'object' || profile === null || Array.isArray(profile)) {
    throw new GatewayApiError(`the gateway at ${url.origin} answered something other than a profile`);
  }
  return profile as Profile;
}

function request(
  info: GatewayInfo,
  url: URL,
  method: string,
  headers: Record<string, string>,
  body?: Readable,
  onBytes?: (bytesSent: number) => void,
): Promise<Answer> {
  const client = url.protocol === 'https:' ? https : http;
  const allHeaders =
    info.token === undefined ? headers : { ...headers, authorization: `Bearer ${info.token}` };
  return new Promise<Answer>((resolve, reject) => {
    const unreachable = (err: Error): void =>
      reject(
        new GatewayApiError(
          `cannot reach the gateway (pid ${info.pid}) at ${url.origin}: ${err.message}. ` +
            'If it is starting or stopping, retry in a moment.',
          { cause: err },
        ),
      );
    const req = client.request(url, { method, headers: allHeaders });
    req.on('error', unreachable);
    req.on('response', (res) => {
      // An answer before the whole body was sent is a refusal: stop sending.
      if (body !== undefined && !body.readableEnded) {
        body.unpipe(req);
        body.destroy();
      }
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('error', unreachable);
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }),
      );
    });
    if (body === undefined) {
      req.end();
      return;
    }
    let sent = 0;
    body.on('data', (chunk: Buffer | string) => {
      sent += typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.length;
      onBytes?.(sent);
    });
    body.on('error', (err) => {
      req.destroy();
      reject(new GatewayApiError(`reading the input failed: ${err.message}`, { cause: err }));
    });
    body.pipe(req);
  });
}

function refusal(info: GatewayInfo, url: URL, answer: Answer): GatewayApiError {
  let reason = answer.text.trim();
  try {
    const parsed = JSON.parse(answer.text) as { error?: unknown };
    if (typeof parsed.error === 'string') reason = parsed.error;
  } catch {
    // Not JSON: the raw text says more than nothing.
  }
  const hint =
    answer.status === 401 || answer.status === 403
      ? ` (the gateway refused ${info.token === undefined ? 'a request without a token' : 'the token in gateway.json'})`
      : '';
  return new GatewayApiError(
    `the gateway at ${url.origin} answered ${answer.status} to ${url.pathname}${hint}: ${reason || 'no reason given'}`,
  );
}

function parseJson(url: URL, text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new GatewayApiError(`the gateway at ${url.origin} answered invalid JSON`, { cause: err });
  }
}
