import { DeviceCredentialError, type CredentialStore } from '../../credentials/index.js';
import { readJsonObject } from '../body.js';
import { badBody } from '../errors.js';
import { sendError, sendJson } from '../respond.js';
import type { HttpApi } from '../server.js';

/** Bodies of the credential API are one small JSON object. */
const MAX_BODY_BYTES = 4 * 1024;

export interface DeviceRoutesDeps {
  credentials: Pick<CredentialStore, 'list' | 'setHash' | 'remove'>;
  /** Ends the removed device's connection. */
  onRemoved?: (id: string) => void;
}

/**
 * How `vigil devices` reaches the credentials of a running gateway (LevelDB allows one process per
 * directory): `GET /api/devices` lists them without hashes; `PUT /api/devices/{id}/credential` with
 * `{"hash": "...", "mode": "add" | "rotate", "overlapMs"?: N}` stores a hash (a rotation's old secret still works
 * for `overlapMs`) (the secret is made and shown by the command;
 * only its hash crosses HTTP); `DELETE /api/devices/{id}` removes one and ends the device's connection.
 */
export function mountDeviceRoutes(api: HttpApi, deps: DeviceRoutesDeps): void {
  const { credentials } = deps;
  api
    .route('GET', '/api/devices', async ({ res }) => {
      sendJson(res, 200, { devices: await credentials.list() });
    })
    .route(
      'PUT',
      '/api/devices/:id/credential',
      async (ctx) => {
        const id = ctx.params['id'] ?? '';
        const { hash, mode, overlapMs = 0 } = await readJsonObject(ctx);
        const overlapOk = typeof overlapMs === 'number' && Number.isSafeInteger(overlapMs) && overlapMs >= 0;
        if (typeof hash !== 'string' || (mode !== 'add' && mode !== 'rotate') || !overlapOk)
          throw badBody(
            'expected {"hash": "hmac-sha256$...", "mode": "add" | "rotate", "overlapMs"?: N >= 0}',
          );
        try {
          await credentials.setHash(id, hash, mode, 'cli', overlapMs);
        } catch (err) {
          if (!(err instanceof DeviceCredentialError)) throw err;
          sendError(ctx.res, statusOf(err), err.code, err.message);
          return;
        }
        sendJson(ctx.res, mode === 'add' ? 201 : 200, { id, mode });
      },
      { maxBodyBytes: MAX_BODY_BYTES },
    )
    .route('DELETE', '/api/devices/:id', async ({ res, params }) => {
      const id = params['id'] ?? '';
      if (!(await credentials.remove(id))) {
        sendError(res, 404, 'VIGIL_DEVICE_UNKNOWN', `device ${id} has no credential`);
        return;
      }
      deps.onRemoved?.(id);
      sendJson(res, 200, { id, removed: true });
    });
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
