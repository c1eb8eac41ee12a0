import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { sendError } from './respond.js';

/** Pages watching at once; each costs one socket and one serialized batch per second. */
export const DEFAULT_MAX_STREAM_CLIENTS = 16;
/** A page that leaves this much unread is too slow (or gone without a FIN): it is cut off, not buffered for. */
const MAX_UNREAD_BYTES = 1024 * 1024;

/**
 * Server-sent events to the dashboard pages: each message is serialized once and written to every
 * page, and a page that stops reading is disconnected rather than allowed to grow the gateway's memory.
 */
export class LiveStream {
  private readonly clients = new Set<ServerResponse>();

  constructor(
    private readonly logger: Logger,
    private readonly maxClients: number = DEFAULT_MAX_STREAM_CLIENTS,
  ) {}

  get size(): number {
    return this.clients.size;
  }

  /** Takes over a request as an event stream; `first` are the messages this page starts from. */
  open(
    req: IncomingMessage,
    res: ServerResponse,
    first: ReadonlyArray<[event: string, data: unknown]>,
  ): void {
    if (this.clients.size >= this.maxClients) {
      sendError(res, 503, 'VIGIL_HTTP_BUSY', `at most ${this.maxClients} dashboard pages may watch at once`, {
        'retry-after': '10',
      });
      return;
    }
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
    });
    // Tells the browser how soon to reconnect after the gateway restarts.
    res.write('retry: 2000\n\n');
    for (const [event, data] of first) res.write(frame(event, data));
    this.clients.add(res);
    const drop = () => this.clients.delete(res);
    req.on('close', drop);
    res.on('close', drop);
    res.on('error', (err) => {
      drop();
      this.logger.debug({ err }, 'dashboard stream closed with an error');
    });
  }

  /** Sends one message to every page. */
  send(event: string, data: unknown): void {
    if (this.clients.size === 0) return;
    const text = frame(event, data);
    for (const res of this.clients) {
      if (res.writableLength > MAX_UNREAD_BYTES) {
        this.clients.delete(res);
        this.logger.warn(
          { unreadBytes: res.writableLength, address: res.socket?.remoteAddress },
          'dashboard page not reading its live stream; disconnected it',
        );
        res.destroy();
        continue;
      }
      res.write(text);
    }
  }

  /** Ends every stream (the gateway is stopping). */
  close(): void {
    for (const res of this.clients) res.end();
    this.clients.clear();
  }
}

function frame(event: string, data: unknown): string {
  // JSON.stringify escapes newlines inside strings, so the data is always one `data:` line.
  return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}
