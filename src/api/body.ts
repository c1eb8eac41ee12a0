import type { IncomingMessage } from 'node:http';
import { RequestRejectedError } from './errors.js';

/** Bodies read whole, unless the route says otherwise. */
export const DEFAULT_MAX_BODY_BYTES = 16 * 1024;

/** What the body readers need of a request being handled. */
export interface BodySource {
  readonly req: IncomingMessage;
  /** The route's limit; Infinity for a body the handler streams. */
  readonly maxBodyBytes: number;
}

export function tooLarge(maxBytes: number): RequestRejectedError {
  return new RequestRejectedError(413, 'VIGIL_HTTP_BODY_TOO_LARGE', `the body is over ${maxBytes} bytes`);
}

/**
 * Refuses a body the handler could not read as sent: compressed (`content-encoding`), or, when `types` is
 * given, of a declared type not among them (a body without a type is taken as the expected one).
 */
export function checkBodyHeaders(req: IncomingMessage, types?: readonly string[]): void {
  const encoding = req.headers['content-encoding'];
  if (encoding !== undefined && encoding.trim().toLowerCase() !== 'identity') {
    throw new RequestRejectedError(
      415,
      'VIGIL_HTTP_BAD_CONTENT_TYPE',
      `content-encoding ${JSON.stringify(encoding)} is not accepted: send the body uncompressed`,
    );
  }
  const declared = req.headers['content-type'];
  if (types === undefined || declared === undefined) return;
  const type = (declared.split(';')[0] ?? '').trim().toLowerCase();
  if (!types.includes(type)) {
    throw new RequestRejectedError(
      415,
      'VIGIL_HTTP_BAD_CONTENT_TYPE',
      `content-type ${JSON.stringify(type)} is not accepted here (expected ${types.join(' or ')})`,
    );
  }
}

/** The whole body; a body over the route's limit is refused with 413 once that many bytes have arrived. */
export async function readBody(source: BodySource, types?: readonly string[]): Promise<Buffer> {
  const { req, maxBodyBytes } = source;
  checkBodyHeaders(req, types);
  const chunks: Buffer[] = [];
  let size = 0;
  // Not destroyed when the loop stops early: the refusal still has to be answered on its socket.
  for await (const chunk of req.iterator({ destroyOnReturn: false })) {
    const buf = chunk as Buffer;
    size += buf.length;
    if (size > maxBodyBytes) throw tooLarge(maxBodyBytes);
    chunks.push(buf);
  }
  return Buffer.concat(chunks);
}

const JSON_TYPES = ['application/json'] as const;

/** The body as one JSON object; anything else is refused with 400 (415 for another content-type). */
export async function readJsonObject(source: BodySource): Promise<Record<string, unknown>> {
  const body = await readBody(source, JSON_TYPES);
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(body));
  } catch (err) {
    throw new RequestRejectedError(
      400,
      'VIGIL_HTTP_BAD_JSON',
      `the body is not JSON: ${err instanceof Error ? err.message : String(err)}`,
    );
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new RequestRejectedError(400, 'VIGIL_HTTP_BAD_JSON', 'the body must be a JSON object');
  }
  return value as Record<string, unknown>;
}
