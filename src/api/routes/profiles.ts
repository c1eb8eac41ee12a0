import { CredentialStore, credentialImportTarget } from '../../credentials/index.js';
import { importProfiles, ProfileImportError, type Store } from '../../store/index.js';
import { checkBodyHeaders } from '../body.js';
import { sendError, sendJson } from '../respond.js';
import type { HttpApi } from '../server.js';

/**
 * `POST /api/profiles/import` (the NDJSON body, streamed; answers an ImportSummary) and
 * `GET /api/profiles/{id}`: how `vigil profiles` reaches the data of a running gateway (LevelDB allows one
 * process per directory).
 */
export function mountProfileRoutes(api: HttpApi, store: Pick<Store, 'profiles' | 'sublevels'>): void {
  api
    .route(
      'POST',
      '/api/profiles/import',
      async ({ req, res }) => {
        checkBodyHeaders(req);
        // A `credential` in a line goes to the credentials, never into the profile.
        const target = credentialImportTarget({
          profiles: store.profiles,
          credentials: new CredentialStore(store.sublevels.creds),
        });
        try {
          sendJson(res, 200, await importProfiles(target, req));
        } catch (err) {
          // A body that broke off is the client's failure; anything else is the gateway's (500).
          if (!(err instanceof ProfileImportError)) throw err;
          sendError(res, 400, err.code, err.message);
        }
      },
      // Streamed: each line is bounded by the import itself, not the whole body.
      { maxBodyBytes: Infinity },
    )
    .route('GET', '/api/profiles/:id', async ({ res, params }) => {
      const id = params['id'] ?? '';
      const profile = await store.profiles.get(id);
      if (profile === undefined)
        sendError(res, 404, 'VIGIL_NOT_FOUND', `no profile with id ${JSON.stringify(id)}`);
      else sendJson(res, 200, profile);
    });
}
