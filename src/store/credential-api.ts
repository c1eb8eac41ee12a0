import type { IncomingMessage, ServerResponse } from 'node:http';
import { DeviceCredentialError, type CredentialStore } from './credentials.js';

/** Bodies of the credential API are one small JSON object. */
const MAX_BODY_BYTES = 4 * 1024;

export interface CredentialRoutes {
  /** `GET /api/devices`: every device with a credential, without hashes. */
  list(res: ServerResponse): Promise<void>;
  /**
   * `PUT /api/devices/{id}/credential` with `{"hash": "...", "mode": "add" | "rotate"}`. The secret is
   * made and shown by the command; only its hash crosses HTTP.
   */
  put(id: string, req: IncomingMessage, res: ServerResponse): Promise<void>;
  /** `DELETE /api/devices/{id}`: removes the credential and ends the device's connection. */
  remove(id: string, res: ServerResponse): Promise<void>;
}

/**
 * The handlers through which `vigil devices` reaches the credentials of a running gateway (LevelDB
 * allows one process per directory). `onRemoved` ends the removed device's connection.
 */
export function credentialRoutes(
  credentials: CredentialStore,
  opts: { onRemoved?: (id: string) => void } = {},
): CredentialRoutes {
  return {
    async list(res) {
      sendJson(res, 200, { devices: await credentials.list() });
    },

    async put(id, req, res) {
      const body = await readJsonBody(req);
      if (!body.ok) return sendJson(res, 400, { error: body.error });
      const { hash, mode } = body.value as { hash?: unknown; mode?: unknown };
      if (typeof hash !== 'string' || (mode !== 'add' && mode !== 'rotate')) {
        return sendJson(res, 400, {
          error: 'expected {"hash": "hmac-sha256$...", "mode": "add" | "rotate"}',
        });
      }
      try {
        await credentials.setHash(id, hash, mode);
      } catch (err) {
        if (err instanceof DeviceCredentialError) return sendJson(res, statusOf(err), errorBody(err));
        throw err;
      }
      sendJson(res, mode === 'add' ? 201 : 200, { id, mode });
    },

    async remove(id, res) {
      const removed = await credentials.remove(id);
      if (!removed) {
        return sendJson(res, 404, { error: `device ${id} has no credential`, code: 'VIGIL_DEVICE_UNKNOWN' });
      }
      opts.onRemoved?.(id);
      sendJson(res, 200, { id, removed: true });
    },
  };
}

function statusOf(err: DeviceCredentialError): number {
  switch (err.code) {
    case 'VIGIL_DEVICE_EXISTS':
      return 409;
    case 'VIGIL_DEVICE_UNKNOWN':
      return 404;
    case 'VIGIL_DEVICE_ID':
    case 'VIGIL_CREDENTIAL_HASH':
      return 400;
  }
}

function errorBody(err: DeviceCredentialError): { error: string; code: string } {
  return { error: err.message, code: err.code };
}

async function readJsonBody(
  req: IncomingMessage,
): Promise<{ ok: true; value: object } | { ok: false; error: string }> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const buf = chunk as Buffer;
    size += buf.length;
    if (size > MAX_BODY_BYTES) return { ok: false, error: `the body is over ${MAX_BODY_BYTES} bytes` };
    chunks.push(buf);
  }
  try {
    const value: unknown = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    if (typeof value === 'object' && value !== null && !Array.isArray(value)) return { ok: true, value };
  } catch {
    // Reported below, as for any body that is not an object.
  }
  return { ok: false, error: 'the body must be a JSON object' };
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
