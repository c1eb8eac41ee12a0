import { createHash } from 'node:crypto';
import { decodeCbor } from '../store/index.js';
import { parseSign1, verifySign1 } from './cose-sign1.js';
import type { TrustedKey } from './keys.js';

/** Why a signed bundle or key list was refused before what it carries was looked at. */
export type SignedDefect = 'malformed' | 'untrusted-key' | 'bad-signature' | 'invalid-content';

export type OpenedSigned =
  | { ok: true; value: unknown; signer: string; hash: string }
  | { ok: false; reason: SignedDefect; detail: string; hash: string };

/**
 * Checks a signed payload's envelope (`what`: "bundle", "key list"), then its signature against `trusted`, and only
 * then decodes its CBOR: nothing unverified is interpreted beyond the envelope. `hash`: the SHA-256 of the bytes.
 */
export function openSigned(
  bytes: Uint8Array,
  trusted: readonly TrustedKey[],
  what: string,
  maxBytes: number,
): OpenedSigned {
  const hash = createHash('sha256').update(bytes).digest('hex');
  const refuse = (reason: SignedDefect, detail: string): OpenedSigned => ({
    ok: false,
    reason,
    detail,
    hash,
  });
  if (bytes.length > maxBytes)
    return refuse('malformed', `${bytes.length} bytes; a ${what} is at most ${maxBytes}`);
  const parsed = parseSign1(bytes);
  if (!parsed.ok) return refuse('malformed', `not a signed ${what}: ${parsed.detail}`);
  const { sign1 } = parsed;
  if (trusted.length === 0) return refuse('untrusted-key', 'no trusted keys are configured on this gateway');
  const signer = trusted.find((k) => verifySign1(sign1, k.key));
  if (signer === undefined) {
    const kid = sign1.kid?.toString('hex');
    if (kid !== undefined && trusted.some((k) => k.id === kid)) {
      return refuse('bad-signature', `the signature does not match key ${kid}: the ${what} was altered`);
    }
    return refuse(
      'untrusted-key',
      `signed by ${kid === undefined ? 'a key it does not name' : `key ${kid}`}, which this gateway does not trust`,
    );
  }
  try {
    return { ok: true, value: decodeCbor(sign1.payload), signer: signer.id, hash };
  } catch (err) {
    return refuse('invalid-content', `the signed payload is not CBOR: ${(err as Error).message}`);
  }
}
