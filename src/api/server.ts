import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { VigilError } from '../shared/index.js';
import { DEFAULT_MAX_BODY_BYTES, tooLarge, type BodySource } from './body.js';
import { reasonOf, RequestRejectedError, type RejectCode } from './errors.js';
import type { HttpMetrics } from './http-metrics.js';
import { LogBudget } from './log-budget.js';
import { parseTarget } from './request-target.js';
import { rawErrorResponse, sendError } from './respond.js';
import { Router } from './router.js';

/** A request being handled: what the route matched, and the body's limit. */
export interface RequestContext extends BodySource {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly method: string;
  /** The `:name` segments of the route, percent-decoded. */
  readonly params: Readonly<Record<string, string>>;
  readonly query: URLSearchParams;
  /** The client's address, for logs. */
  readonly peer: string;
  /** The route's template, e.g. `/api/profiles/:id`. */
  readonly route: string;
}

export type RouteHandler = (ctx: RequestContext) => Promise<void> | void;

export interface RouteOptions {
  /** Default 16 KiB; Infinity for a body the handler streams with limits of its own. */
  maxBodyBytes?: number;
}

export interface HttpApiOptions {
  logger: Logger;
  metrics: HttpMetrics;
  /** The token check: every request but those to `openPaths` must pass it, or is answered 401. */
  authorize?: ((req: IncomingMessage) => boolean) | undefined;
  openPaths?: readonly string[];
}

interface Route {
  handler: RouteHandler;
  maxBodyBytes: number;
}

/** After an early refusal, at most this much of the rest of the body is read (and dropped) to keep the connection. */
const DRAIN_MAX_BYTES = 1024 * 1024;
const MAX_LOGGED_TARGET_CHARS = 200;
/** Errors of a request whose client went away: nothing to answer, nothing wrong with the gateway. */
const CLIENT_GONE = new Set(['ECONNRESET', 'ERR_STREAM_PREMATURE_CLOSE', 'ERR_STREAM_DESTROYED', 'EPIPE']);

/**
 * The gateway's local HTTP server: routes, the token check and the error boundary. Whatever a client
 * sends — a malformed target or percent-escape, an unknown method, a bad header, a body too large or not
 * JSON — is answered with a 4xx and `{"error": {"code", "message"}}`, counted and logged; a handler that
 * throws answers 500 (or, once its answer has started, has its connection cut); the server goes on.
 */
export class HttpApi {
  private readonly router = new Router<Route>();
  private readonly server: Server;
  private readonly openPaths: ReadonlySet<string>;
  private readonly logBudget = new LogBudget();

  constructor(private readonly opts: HttpApiOptions) {
    this.openPaths = new Set(opts.openPaths ?? []);
    // `node:http` is loaded here, not at import: a startup snapshot cannot hold its parser.
    const { createServer } = process.getBuiltinModule('node:http');
    // The Host check is ours, so that its refusal is JSON like every other.
    this.server = createServer({ requireHostHeader: false }, (req, res) => void this.handle(req, res));
    this.server.on('error', (err) => opts.logger.error({ err }, 'http server error'));
    this.server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) =>
      this.onClientError(err, socket),
    );
    this.server.on('checkExpectation', (req: IncomingMessage, res: ServerResponse) => {
      const err = new RequestRejectedError(
        417,
        'VIGIL_HTTP_BAD_HEADER',
        'only Expect: 100-continue is understood',
      );
      this.refuse(req, res, err);
    });
    // CONNECT takes the socket away from the HTTP server: answered here, then closed.
    this.server.on('connect', (req: IncomingMessage, socket: Duplex) => {
      socket.on('error', () => undefined);
      this.countAndLog('method-not-allowed', 'VIGIL_HTTP_METHOD_NOT_ALLOWED', 405, peerOf(req.socket), req);
      socket.end(
        rawErrorResponse(
          405,
          'Method Not Allowed',
          'VIGIL_HTTP_METHOD_NOT_ALLOWED',
          'CONNECT is not supported',
        ),
      );
    });
  }

  /** Registers a route; `:name` segments become params. */
  route(method: string, template: string, handler: RouteHandler, options: RouteOptions = {}): this {
    this.router.add(method, template, {
      handler,
      maxBodyBytes: options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES,
    });
    return this;
  }

  listen(host: string, port: number): Promise<{ host: string; port: number }> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      this.server.once('error', onError);
      this.server.listen(port, host, () => {
        this.server.off('error', onError);
        const addr = this.server.address() as AddressInfo;
        resolve({ host: addr.address, port: addr.port });
      });
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  /** The error boundary: settles whatever happens, and the request is answered, refused or cut off. */
  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const peer = peerOf(req.socket);
    const streamError = (err: Error) => this.opts.logger.debug({ err, peer }, 'http stream error');
    req.on('error', streamError);
    res.on('error', streamError);
    let route = 'unmatched';
    try {
      const { ctx, handler } = this.resolve(req, res, peer);
      route = ctx.route;
      await handler(ctx);
      if (!res.headersSent && !res.writableEnded) throw new Error(`the handler of ${route} did not answer`);
    } catch (err) {
      try {
        if (err instanceof RequestRejectedError) this.refuse(req, res, err);
        else this.fault(req, res, err, route, peer);
      } catch (failure) {
        this.opts.logger.error({ err: failure, peer }, 'http error boundary failed; connection closed');
        res.destroy();
      }
    }
  }

  /** Checks the request up to its route; throws RequestRejectedError for anything malformed or refused. */
  private resolve(
    req: IncomingMessage,
    res: ServerResponse,
    peer: string,
  ): { ctx: RequestContext; handler: RouteHandler } {
    const method = req.method ?? '';
    if (req.httpVersionMajor === 1 && req.httpVersionMinor >= 1 && req.headers.host === undefined)
      throw new RequestRejectedError(400, 'VIGIL_HTTP_BAD_HEADER', 'an HTTP/1.1 request needs a Host header');
    const parsed = parseTarget(req.url ?? '');
    if (!parsed.ok) throw parsed.error;
    const { segments, path, query } = parsed.target;
    if (this.opts.authorize && !this.openPaths.has(`/${segments.join('/')}`) && !this.opts.authorize(req)) {
      // Basic lets a browser ask for the token (as the password) and send it with every request after.
      throw new RequestRejectedError(
        401,
        'VIGIL_HTTP_UNAUTHORIZED',
        'this API needs the token: Authorization: Bearer TOKEN',
        { 'www-authenticate': 'Basic realm="vigil", charset="UTF-8"' },
      );
    }
    const match = this.router.match(method, segments);
    const shown = truncate(path);
    if (match.kind === 'none')
      throw new RequestRejectedError(404, 'VIGIL_HTTP_NO_ROUTE', `no such endpoint: ${shown}`);
    if (match.kind === 'method-not-allowed') {
      const allow = match.allowed.join(', ');
      throw new RequestRejectedError(
        405,
        'VIGIL_HTTP_METHOD_NOT_ALLOWED',
        `method ${method} is not allowed on ${shown} (allowed: ${allow})`,
        { allow },
      );
    }
    const { handler, maxBodyBytes } = match.route.handler;
    if (declaredLength(req) > maxBodyBytes) throw tooLarge(maxBodyBytes);
    const ctx: RequestContext = {
      req,
      res,
      method,
      params: match.params,
      query,
      peer,
      route: match.route.template,
      maxBodyBytes,
    };
    return { ctx, handler };
  }

  /** Answers a refused request with its 4xx, counted and logged; the rest of its body is dropped. */
  private refuse(req: IncomingMessage, res: ServerResponse, err: RequestRejectedError): void {
    this.countAndLog(err.reason, err.code, err.status, peerOf(req.socket), req, err.message);
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const headers: Record<string, string> = { ...err.headers };
    if (!req.complete) {
      // Read and dropped, so that the client sees the answer rather than a reset; unless there is too much.
      if (declaredLength(req) > DRAIN_MAX_BYTES) headers['connection'] = 'close';
      else drain(req);
    }
    sendError(res, err.status, err.code, err.message, headers);
  }

  /** A handler failed: 500 with what the error says, or the connection cut if the answer had started. */
  private fault(req: IncomingMessage, res: ServerResponse, err: unknown, route: string, peer: string): void {
    const code = (err as NodeJS.ErrnoException | undefined)?.code;
    if (req.socket.destroyed && code !== undefined && CLIENT_GONE.has(code)) {
      this.opts.logger.debug({ err, peer, route }, 'http client went away during the request');
      return;
    }
    this.opts.metrics.handlerErrors.inc({ route });
    this.opts.logger.error({ err, peer, method: req.method, route }, 'http handler failed');
    if (res.headersSent) {
      res.destroy();
      return;
    }
    if (err instanceof VigilError) sendError(res, 500, err.code, err.message);
    else sendError(res, 500, 'VIGIL_HTTP_INTERNAL', 'internal error; see the gateway log');
    if (!req.complete) drain(req);
  }

  /** Node's parser gave up on the request (bad method, header, chunk, …): answered on the raw socket. */
  private onClientError(err: NodeJS.ErrnoException, socket: Duplex): void {
    if (err.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    const refusal = parserRefusal(err.code);
    this.countAndLog(
      refusal.reason,
      refusal.code,
      refusal.status,
      peerOf(socket as Socket),
      undefined,
      err.message,
    );
    // A pipelined request's answer may be under way on this socket: raw bytes would corrupt it.
    const inFlight = (socket as Duplex & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
    if (inFlight?.headersSent) {
      socket.destroy();
      return;
    }
    socket.end(rawErrorResponse(refusal.status, refusal.statusText, refusal.code, refusal.message));
  }

  private countAndLog(
    reason: RequestRejectedError['reason'],
    code: RejectCode,
    status: number,
    peer: string,
    req?: IncomingMessage,
    detail?: string,
  ): void {
    this.opts.metrics.reject(reason);
    const { log, skipped } = this.logBudget.take();
    if (!log) return;
    this.opts.logger.warn(
      {
        peer,
        status,
        code,
        reason,
        ...(req ? { method: req.method, target: truncate(req.url ?? '') } : {}),
        ...(detail !== undefined ? { detail } : {}),
        ...(skipped > 0 ? { notLogged: skipped } : {}),
      },
      'http request refused',
    );
  }
}

interface ParserRefusal {
  status: number;
  statusText: string;
  code: RejectCode;
  reason: RequestRejectedError['reason'];
  message: string;
}

/** What a parse error of Node's HTTP parser (`HPE_*`) or a request timeout is answered with. */
function parserRefusal(code: string | undefined): ParserRefusal {
  const c = code ?? '';
  const make = (status: number, apiCode: ParserRefusal['code'], message: string): ParserRefusal => ({
    status,
    statusText: process.getBuiltinModule('node:http').STATUS_CODES[status] ?? '',
    code: apiCode,
    reason: reasonOf(apiCode),
    message,
  });
  if (c === 'ERR_HTTP_REQUEST_TIMEOUT' || c.includes('TIMEOUT'))
    return make(408, 'VIGIL_HTTP_TIMEOUT', 'the request did not arrive in time');
  if (c === 'HPE_HEADER_OVERFLOW')
    return make(431, 'VIGIL_HTTP_BAD_HEADER', 'the request line and headers are too large');
  if (c === 'HPE_INVALID_METHOD') return make(400, 'VIGIL_HTTP_BAD_METHOD', 'unknown request method');
  if (c === 'HPE_INVALID_URL')
    return make(
      400,
      'VIGIL_HTTP_BAD_TARGET',
      'malformed request target: characters that must be percent-encoded',
    );
  if (/HEADER|CONTENT_LENGTH|TRANSFER_ENCODING|CR_EXPECTED|LF_EXPECTED/.test(c))
    return make(400, 'VIGIL_HTTP_BAD_HEADER', `malformed header (${c})`);
  if (c.includes('CHUNK')) return make(400, 'VIGIL_HTTP_BAD_BODY', `malformed chunked body (${c})`);
  return make(400, 'VIGIL_HTTP_BAD_REQUEST', `malformed request (${c || 'unknown'})`);
}

function declaredLength(req: IncomingMessage): number {
  const value = req.headers['content-length'];
  return value === undefined ? 0 : Number(value);
}

/** Reads the rest of a request's body and drops it; past DRAIN_MAX_BYTES, the connection is closed instead. */
function drain(req: IncomingMessage): void {
  let dropped = 0;
  req.on('data', (chunk: Buffer) => {
    dropped += chunk.length;
    if (dropped > DRAIN_MAX_BYTES) req.socket.destroy();
  });
  req.resume();
}

function peerOf(socket: Socket | undefined): string {
  return socket?.remoteAddress ?? 'unknown';
}

function truncate(text: string): string {
  return text.length > MAX_LOGGED_TARGET_CHARS ? `${text.slice(0, MAX_LOGGED_TARGET_CHARS)}…` : text;
}
