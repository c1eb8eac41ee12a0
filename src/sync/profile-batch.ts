import { decodePayload } from '../ingest/index.js';
import type { Profile } from '../shared/index.js';
import { profileSecretProblem } from '../credentials/index.js';

/**
 * A batch of profile changes from the cloud, on `vigil/{gw}/profiles`, JSON or CBOR:
 * `{"seq": 12, "upsert": [{"id": "dev-1", "maxTemp": 55}], "delete": ["dev-9"]}`.
 * An upsert replaces the whole profile of its id, as `vigil profiles import` does.
 */
export interface ProfileBatch {
  seq: number;
  upserts: Array<{ id: string; profile: Profile }>;
  deletes: string[];
}

/** Refused before it is decoded. */
export const MAX_PROFILE_BATCH_BYTES = 16 * 1024 * 1024;
/** Upserts and deletes together; refused before any entry is looked at. */
export const MAX_PROFILE_BATCH_CHANGES = 100_000;
const MAX_ID_CHARS = 256;

/** Which bound a refused batch is over, when it is over one. */
export type ProfileBatchLimit = 'too-large' | 'too-many-changes';

export type ParsedProfileBatch =
  { ok: true; batch: ProfileBatch } | { ok: false; seq?: number; detail: string; limit?: ProfileBatchLimit };

/**
 * Decodes and validates a batch; one bad entry refuses the whole batch, which applies all or nothing. An
 * upsert with a field named like a secret is a bad entry: credentials are provisioned as hashes, by import.
 */
export function parseProfileBatch(payload: Buffer): ParsedProfileBatch {
  if (payload.length > MAX_PROFILE_BATCH_BYTES) {
    const detail = `${payload.length} bytes; a batch is at most ${MAX_PROFILE_BATCH_BYTES} bytes (16 MiB): split it`;
    return { ok: false, detail, limit: 'too-large' };
  }
  const decoded = decodePayload(payload, MAX_PROFILE_BATCH_BYTES);
  if (!decoded.ok) return { ok: false, detail: `not a JSON object or CBOR map (${decoded.detail})` };
  const { seq, upsert = [], delete: deletes = [], ...rest } = decoded.data;
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 1) {
    return { ok: false, detail: `seq must be a whole number of at least 1, got ${JSON.stringify(seq)}` };
  }
  const refuse = (detail: string): ParsedProfileBatch => ({ ok: false, seq, detail });
  const unknown = Object.keys(rest);
  if (unknown.length > 0) return refuse(`unknown key${unknown.length > 1 ? 's' : ''} ${unknown.join(', ')}`);
  if (!Array.isArray(upsert)) return refuse('upsert must be a list of profiles');
  if (!Array.isArray(deletes)) return refuse('delete must be a list of device ids');
  if (upsert.length + deletes.length > MAX_PROFILE_BATCH_CHANGES) {
    const detail = `${upsert.length + deletes.length} changes; a batch holds at most ${MAX_PROFILE_BATCH_CHANGES}: split it`;
    return { ok: false, seq, detail, limit: 'too-many-changes' };
  }
  const touched = new Set<string>();
  const batch: ProfileBatch = { seq, upserts: [], deletes: [] };
  for (const [i, profile] of (upsert as unknown[]).entries()) {
    if (typeof profile !== 'object' || profile === null || Array.isArray(profile)) {
      return refuse(`upsert[${i}] is not a profile object`);
    }
    const id = (profile as Profile)['id'];
    const bad = idProblem(id);
    if (bad !== undefined) return refuse(`upsert[${i}].id ${bad}`);
    if (touched.has(id as string)) return refuse(`device ${JSON.stringify(id)} appears twice in the batch`);
    const secret = profileSecretProblem(profile as Profile);
    if (secret !== undefined) return refuse(`upsert[${i}] (device ${JSON.stringify(id)}): ${secret}`);
    touched.add(id as string);
    batch.upserts.push({ id: id as string, profile: profile as Profile });
  }
  for (const [i, id] of (deletes as unknown[]).entries()) {
    const bad = idProblem(id);
    if (bad !== undefined) return refuse(`delete[${i}] ${bad}`);
    if (touched.has(id as string)) return refuse(`device ${JSON.stringify(id)} appears twice in the batch`);
    touched.add(id as string);
    batch.deletes.push(id as string);
  }
  return { ok: true, batch };
}

function idProblem(id: unknown): string | undefined {
  if (typeof id !== 'string') return `must be a device id (text), got ${JSON.stringify(id) ?? typeof id}`;
  if (id === '' || id.length > MAX_ID_CHARS) return `must be 1 to ${MAX_ID_CHARS} characters`;
  return undefined;
}
