import { connect } from 'node:net';

/** One HTTP response as read off a raw socket. */
export interface RawResponse {
  statusLine: string;
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

const HEADER_END = Buffer.from('\r\n\r\n');

/**
 * Writes `request` as is to 127.0.0.1:`port` (what fetch would refuse to send) and reads the first
 * response: its headers, then its body by content-length, chunked framing, or until the server closes.
 * An event stream is read up to its headers. Rejects if no response arrives within `timeoutMs`.
 */
export function rawExchange(
  port: number,
  request: string | Buffer,
  opts: { timeoutMs?: number; head?: boolean } = {},
): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let data = Buffer.alloc(0);
    let settled = false;
    const finish = (err: Error | undefined, response?: RawResponse): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (response) resolve(response);
      else reject(err ?? new Error('no response'));
    };
    const timer = setTimeout(
      () =>
        finish(
          new Error(
            `no complete response in ${opts.timeoutMs ?? 5_000} ms: ${data.toString('latin1').slice(0, 300)}`,
          ),
        ),
      opts.timeoutMs ?? 5_000,
    );
    const tryParse = (closed: boolean): void => {
      const end = data.indexOf(HEADER_END);
      if (end < 0) {
        if (closed)
          finish(
            new Error(`connection closed before a response: ${JSON.stringify(data.toString('latin1'))}`),
          );
        return;
      }
      const [statusLine = '', ...lines] = data.subarray(0, end).toString('latin1').split('\r\n');
      const headers: Record<string, string> = {};
      for (const line of lines) {
        const colon = line.indexOf(':');
        headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
      }
      const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1] ?? NaN);
      const rest = data.subarray(end + HEADER_END.length);
      if (status === 100) {
        // An interim answer (to Expect: 100-continue): the final one follows.
        data = rest;
        tryParse(closed);
        return;
      }
      const done = (body: Buffer) => finish(undefined, { statusLine, status, headers, body });
      if (opts.head === true || status === 304 || status === 204 || status === 100)
        return done(Buffer.alloc(0));
      if (headers['content-type']?.startsWith('text/event-stream')) return done(rest);
      if (headers['content-length'] !== undefined) {
        const length = Number(headers['content-length']);
        if (rest.length >= length) return done(rest.subarray(0, length));
      } else if (headers['transfer-encoding']?.includes('chunked')) {
        const body = dechunk(rest);
        if (body) return done(body);
      } else if (closed) return done(rest);
      if (closed)
        finish(
          new Error(
            `connection closed inside the body: ${JSON.stringify(data.toString('latin1').slice(0, 300))}`,
          ),
        );
    };
    socket.on('data', (chunk: Buffer) => {
      data = Buffer.concat([data, chunk]);
      tryParse(false);
    });
    socket.on('close', () => tryParse(true));
    // A reset after the answer was read is fine; before it, 'close' reports what was missing.
    socket.on('error', () => undefined);
    socket.write(request);
  });
}

/** The body of a complete chunked encoding, or undefined while it is incomplete. */
function dechunk(raw: Buffer): Buffer | undefined {
  const parts: Buffer[] = [];
  let at = 0;
  for (;;) {
    const lineEnd = raw.indexOf('\r\n', at);
    if (lineEnd < 0) return undefined;
    const size = parseInt(raw.subarray(at, lineEnd).toString('latin1'), 16);
    if (Number.isNaN(size)) return undefined;
    if (size === 0) return Buffer.concat(parts);
    const start = lineEnd + 2;
    if (raw.length < start + size + 2) return undefined;
    parts.push(raw.subarray(start, start + size));
    at = start + size + 2;
  }
}

/** The JSON body of a response, or undefined when it is not JSON. */
export function jsonOf(res: RawResponse): unknown {
  try {
    return JSON.parse(res.body.toString('utf8'));
  } catch {
    return undefined;
  }
}

/** A request with `Host` and `Connection: close` (the server closes after answering). */
export function requestText(method: string, target: string, headers: string[] = [], body = ''): string {
  return [`${method} ${target} HTTP/1.1`, 'Host: 127.0.0.1', ...headers, 'Connection: close', '', body].join(
    '\r\n',
  );
}
