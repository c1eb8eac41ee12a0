import { decodePayload } from './decode-payload.js';
import { isTopicLevel } from '../shared/index.js';

/** A business system's event about a device, from `vigil/{gw}/events`. */
export interface CloudEvent {
  actor: string;
  type: string;
  data: Record<string, unknown>;
}

export type ParsedCloudEvent =
  | { ok: true; event: CloudEvent }
  | {
      ok: false;
      reason: 'too-large' | 'json' | 'cbor' | 'not-object' | 'empty' | 'invalid';
      detail: string;
      actor?: string;
    };

/**
 * Parses `{actor, type, data?}` (JSON, or CBOR like a device payload). `actor` and `type` must be
 * usable as topic levels, since the actor is a device id and the type an event type like a device's.
 */
export function parseCloudEvent(payload: Buffer, maxBytes: number): ParsedCloudEvent {
  const decoded = decodePayload(payload, maxBytes);
  if (!decoded.ok) return decoded;
  const { actor, type, data } = decoded.data;
  if (typeof actor !== 'string' || !isTopicLevel(actor) || actor.includes('/')) {
    return { ok: false, reason: 'invalid', detail: 'actor must be a non-empty string without /, + or #' };
  }
  if (typeof type !== 'string' || !isTopicLevel(type) || type.includes('/')) {
    return {
      ok: false,
      reason: 'invalid',
      detail: 'type must be a non-empty string without /, + or #',
      actor,
    };
  }
  if (data === undefined) return { ok: true, event: { actor, type, data: {} } };
  // A plain object only: CBOR could make it a tagged value, a set, a date or bytes, which rules cannot read as data.
  if (typeof data !== 'object' || data === null || Object.getPrototypeOf(data) !== Object.prototype) {
    return { ok: false, reason: 'invalid', detail: 'data must be an object when present', actor };
  }
  return { ok: true, event: { actor, type, data: data as Record<string, unknown> } };
}
