import type { ServerResponse } from 'node:http';
import type { ErrorCode } from '../shared/index.js';

/** The body of every error answer of the API. */
export interface ErrorBody {
  error: { code: string; message: string };
}

/** Answers `body` as JSON; does nothing once an answer has started (or the client is gone). */
export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Readonly<Record<string, string>> = {},
): void {
  if (res.headersSent || res.destroyed) return;
  const text = JSON.stringify(body);
  res.writeHead(status, {
    ...headers,
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

/** Answers `{"error": {"code", "message"}}`. */
export function sendError(
  res: ServerResponse,
  status: number,
  code: ErrorCode,
  message: string,
  headers: Readonly<Record<string, string>> = {},
): void {
  sendJson(res, status, errorBody(code, message), headers);
}

export function errorBody(code: ErrorCode, message: string): ErrorBody {
  return { error: { code, message } };
}

/**
 * A whole HTTP/1.1 error answer as bytes, for a socket the HTTP parser gave up on (there is no response
 * object then); the connection closes after it.
 */
export function rawErrorResponse(
  status: number,
  statusText: string,
  code: ErrorCode,
  message: string,
): string {
  const text = JSON.stringify(errorBody(code, message));
  return (
    `HTTP/1.1 ${status} ${statusText}\r\n` +
    'content-type: application/json; charset=utf-8\r\n' +
    `content-length: ${Buffer.byteLength(text)}\r\n` +
    'connection: close\r\n\r\n' +
    text
  );
}
