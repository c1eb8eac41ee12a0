import { VigilError, type ErrorCode } from '../shared/index.js';

/**
 * Stable codes of the local HTTP API's error answers (`{"error": {"code", "message"}}`). Clients and
 * operators match on these, never on messages.
 */
export type ApiErrorCode = Extract<ErrorCode, `VIGIL_HTTP_${string}`>;

/** Codes of refused requests (4xx), as opposed to the gateway's own trouble (busy, internal). */
export type RejectCode = Exclude<ApiErrorCode, 'VIGIL_HTTP_BUSY' | 'VIGIL_HTTP_INTERNAL'>;

/** The `reason` label of `vigil_http_requests_rejected_total`: what was wrong with a refused request. */
export type RejectReason =
  | 'bad-target'
  | 'bad-encoding'
  | 'bad-method'
  | 'method-not-allowed'
  | 'bad-header'
  | 'bad-request'
  | 'bad-query'
  | 'bad-body'
  | 'bad-json'
  | 'bad-content-type'
  | 'body-too-large'
  | 'unauthorized'
  | 'no-route'
  | 'timeout';

const REASONS: Record<RejectCode, RejectReason> = {
  VIGIL_HTTP_BAD_TARGET: 'bad-target',
  VIGIL_HTTP_BAD_ENCODING: 'bad-encoding',
  VIGIL_HTTP_BAD_METHOD: 'bad-method',
  VIGIL_HTTP_METHOD_NOT_ALLOWED: 'method-not-allowed',
  VIGIL_HTTP_BAD_HEADER: 'bad-header',
  VIGIL_HTTP_BAD_REQUEST: 'bad-request',
  VIGIL_HTTP_BAD_QUERY: 'bad-query',
  VIGIL_HTTP_BAD_BODY: 'bad-body',
  VIGIL_HTTP_BAD_JSON: 'bad-json',
  VIGIL_HTTP_BAD_CONTENT_TYPE: 'bad-content-type',
  VIGIL_HTTP_BODY_TOO_LARGE: 'body-too-large',
  VIGIL_HTTP_UNAUTHORIZED: 'unauthorized',
  VIGIL_HTTP_NO_ROUTE: 'no-route',
  VIGIL_HTTP_TIMEOUT: 'timeout',
};

export function reasonOf(code: RejectCode): RejectReason {
  return REASONS[code];
}

/**
 * A request the API refuses (4xx): thrown by the server or a handler, answered by the error boundary
 * with `{"error": {"code", "message"}}`, counted by reason and logged.
 */
export class RequestRejectedError extends VigilError {
  readonly reason: RejectReason;
  declare readonly code: RejectCode;
  constructor(
    readonly status: number,
    code: RejectCode,
    message: string,
    readonly headers: Readonly<Record<string, string>> = {},
  ) {
    super(code, message);
    this.name = 'RequestRejectedError';
    this.reason = REASONS[code];
  }
}

export function badTarget(message: string, status = 400): RequestRejectedError {
  return new RequestRejectedError(status, 'VIGIL_HTTP_BAD_TARGET', message);
}

export function badEncoding(message: string): RequestRejectedError {
  return new RequestRejectedError(400, 'VIGIL_HTTP_BAD_ENCODING', message);
}

export function badQuery(message: string): RequestRejectedError {
  return new RequestRejectedError(400, 'VIGIL_HTTP_BAD_QUERY', message);
}

export function badBody(message: string): RequestRejectedError {
  return new RequestRejectedError(400, 'VIGIL_HTTP_BAD_BODY', message);
}
