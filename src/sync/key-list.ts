import { createPublicKey } from 'node:crypto';
import { VigilError } from '../shared/index.js';
import { encodeCbor } from '../store/index.js';
import { signSign1 } from './cose-sign1.js';
import { keyId, type SigningKey, type TrustedKey } from './keys.js';
import { openSigned, type SignedDefect } from './signed.js';

/** A trusted-key list: the keys the gateway accepts bundles (and the next list) from, once it is applied. */
export interface KeyListContent {
  /** Greater than the sequence of the list in force, or the gateway refuses the list (no replay of an old one). */
  seq: number;
  /** ISO 8601, when the list was made. */
  createdAt: string;
  /** Ed25519 public keys, PEM (SPKI): the whole trusted set once applied. */
  keys: string[];
  /** Ids of keys never to be trusted again, on this list or any later one. */
  revoked: string[];
}

/** Tells a key list from a bundle: both are COSE_Sign1 messages with a CBOR map inside. */
const KEY_LIST_TYPE = 'vigil-trusted-keys';
const KEY_LIST_FORMAT = 1;
export const MAX_KEY_LIST_BYTES = 64 * 1024;
const MAX_KEYS = 64;
const KEY_ID = /^[0-9a-f]{16}$/;

export type KeyListDefect = SignedDefect;

export type OpenedKeyList =
  | { ok: true; content: KeyListContent; keys: TrustedKey[]; signer: string; hash: string }
  | { ok: false; reason: KeyListDefect; detail: string; hash: string };

/** Signs a key list with a key the gateways trust now; throws VIGIL_BUNDLE_INPUT when it cannot be one. */
export function createKeyList(content: KeyListContent, signer: SigningKey): Buffer {
  const problem = contentProblem({ type: KEY_LIST_TYPE, format: KEY_LIST_FORMAT, ...content });
  if (problem !== undefined)
    throw new VigilError('VIGIL_BUNDLE_INPUT', `cannot make the key list: ${problem}`);
  const payload = encodeCbor({
    type: KEY_LIST_TYPE,
    format: KEY_LIST_FORMAT,
    seq: content.seq,
    createdAt: content.createdAt,
    keys: [...content.keys],
    revoked: [...content.revoked],
  });
  return signSign1(payload, signer.key, Buffer.from(signer.id, 'hex'));
}

/** Checks a key list's envelope and signature against `trusted`, then its content; nothing unverified is decoded. */
export function openKeyList(bytes: Uint8Array, trusted: readonly TrustedKey[]): OpenedKeyList {
  const opened = openSigned(bytes, trusted, 'key list', MAX_KEY_LIST_BYTES);
  if (!opened.ok) return opened;
  const { value, signer, hash } = opened;
  const problem = contentProblem(value);
  if (problem !== undefined) return { ok: false, reason: 'invalid-content', detail: problem, hash };
  const v = value as KeyListContent;
  const content = { seq: v.seq, createdAt: v.createdAt, keys: [...v.keys], revoked: [...v.revoked] };
  return {
    ok: true,
    content,
    keys: trustedKeysOf(content.keys, `key list ${v.seq}`),
    signer,
    hash,
  };
}

/** The keys of a list (already checked to parse), each once. */
export function trustedKeysOf(pems: readonly string[], source: string): TrustedKey[] {
  const seen = new Set<string>();
  const keys: TrustedKey[] = [];
  for (const pem of pems) {
    const key = createPublicKey(pem);
    const id = keyId(key);
    if (seen.has(id)) continue;
    seen.add(id);
    keys.push({ id, key, source });
  }
  return keys;
}

function contentProblem(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'the payload is not a map';
  const v = value as Record<string, unknown>;
  if (v['type'] !== KEY_LIST_TYPE) return 'not a trusted-key list';
  if (v['format'] !== KEY_LIST_FORMAT) return `unknown key list format ${JSON.stringify(v['format'])}`;
  const seq = v['seq'];
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 1) {
    return `seq must be a whole number of at least 1, got ${JSON.stringify(seq)}`;
  }
  const createdAt = v['createdAt'];
  if (typeof createdAt !== 'string' || Number.isNaN(Date.parse(createdAt))) {
    return `createdAt must be an ISO 8601 time, got ${JSON.stringify(createdAt)}`;
  }
  const { keys, revoked } = v;
  if (!Array.isArray(keys) || keys.length === 0) return 'keys must be a list of at least one public key';
  if (keys.length > MAX_KEYS) return `${keys.length} keys; at most ${MAX_KEYS}`;
  if (!Array.isArray(revoked) || revoked.length > MAX_KEYS * 4) return 'revoked must be a list of key ids';
  for (const [i, id] of revoked.entries()) {
    if (typeof id !== 'string' || !KEY_ID.test(id)) return `revoked[${i}] is not a key id (16 hex digits)`;
  }
  for (const [i, pem] of keys.entries()) {
    if (typeof pem !== 'string') return `keys[${i}] is not text`;
    try {
      const key = createPublicKey(pem);
      if (key.asymmetricKeyType !== 'ed25519' || pem.includes('PRIVATE KEY')) {
        return `keys[${i}] is not an Ed25519 public key`;
      }
      if ((revoked as string[]).includes(keyId(key))) return `keys[${i}] (${keyId(key)}) is also revoked`;
    } catch (err) {
      return `keys[${i}] is not a public key in PEM: ${(err as Error).message}`;
    }
  }
  return undefined;
}
