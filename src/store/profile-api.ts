import type { IncomingMessage, ServerResponse } from 'node:http';
import { VigilError } from '../shared/index.js';
import { CredentialStore, credentialImportTarget } from './credentials.js';
import { ProfileImportError } from './errors.js';
import { importProfiles } from './profile-import.js';
import type { Store } from './store.js';

/** The body of every error answer of the profile API. */
export interface ApiErrorBody {
  error: string;
  code?: string;
}

export interface ProfileRoutes {
  /** `POST /api/profiles/import`: the NDJSON request body, streamed; answers an ImportSummary. */
  importNdjson(req: IncomingMessage, res: ServerResponse): Promise<void>;
  /** `GET /api/profiles/{id}`: the profile as JSON, or 404. */
  get(id: string, res: ServerResponse): Promise<void>;
}

/**
 * The handlers through which `vigil profiles` reaches the data of a running gateway (LevelDB allows
 * one process per directory). The gateway's HTTP server routes to them and checks the token.
 */
export function profileRoutes(store: Store): ProfileRoutes {
  return {
    async importNdjson(req, res) {
      if (req.method !== 'POST') {
        res.setHeader('Allow', 'POST');
        sendJson(res, 405, { error: 'use POST with the NDJSON as the request body' });
        return;
      }
      try {
        // A `credential` in a line goes to the credentials, never into the profile.
        const target = credentialImportTarget({
          profiles: store.profiles,
          credentials: new CredentialStore(store.sublevels.creds),
        });
        const summary = await importProfiles(target, req);
        sendJson(res, 200, summary);
      } catch (err) {
        // A body that broke off is the client's failure; anything else is the gateway's.
        sendJson(res, err instanceof ProfileImportError ? 400 : 500, errorBody(err));
      }
    },

    async get(id, res) {
      try {
        const profile = await store.profiles.get(id);
        if (profile === undefined) sendJson(res, 404, { error: `no profile with id ${JSON.stringify(id)}` });
        else sendJson(res, 200, profile);
      } catch (err) {
        sendJson(res, 500, errorBody(err));
      }
    },
  };
}

function errorBody(err: unknown): ApiErrorBody {
  if (err instanceof VigilError) return { error: err.message, code: err.code };
  return { error: err instanceof Error ? err.message : String(err) };
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
