import type { IncomingMessage, ServerResponse } from 'node:http';
import { MAX_BUNDLE_BYTES } from './bundle.js';
import type { RuleSync } from './rule-sync.js';
import type { RulesStatus } from './rules-status.js';

/** The answer of `POST /api/rules/apply` when the bundle is the one already running. */
export interface UnchangedAnswer {
  status: 'unchanged';
  version: number;
  detail: string;
}

export interface RulesRoutes {
  /** `POST /api/rules/apply`: the bundle as the body; 200 applied or unchanged, 422 rejected (a RulesStatus). */
  apply(req: IncomingMessage, res: ServerResponse): Promise<void>;
  /** `GET /api/rules`: the rules in force. */
  running(req: IncomingMessage, res: ServerResponse): void;
}

/** The handlers through which `vigil rules apply` reaches a running gateway. */
export function rulesRoutes(sync: RuleSync): RulesRoutes {
  return {
    async apply(req, res) {
      const body = await readBody(req, MAX_BUNDLE_BYTES);
      if (body === undefined) {
        sendJson(res, 413, { error: `a bundle is at most ${MAX_BUNDLE_BYTES} bytes` });
        return;
      }
      const status: RulesStatus | undefined = await sync.applyBundle(body, 'local');
      if (status === undefined) {
        const answer: UnchangedAnswer = {
          status: 'unchanged',
          version: sync.running.version,
          detail: 'this bundle is the one running',
        };
        sendJson(res, 200, answer);
        return;
      }
      sendJson(res, status.status === 'applied' ? 200 : 422, status);
    },
    running(_req, res) {
      sendJson(res, 200, sync.running);
    },
  };
}

/** The whole request body; undefined when it is longer than `maxBytes` (the rest is read and dropped). */
function readBody(req: IncomingMessage, maxBytes: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= maxBytes) chunks.push(chunk);
    });
    req.on('end', () => resolve(size > maxBytes ? undefined : Buffer.concat(chunks)));
    req.on('error', reject);
  });
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
