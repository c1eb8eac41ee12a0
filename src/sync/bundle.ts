import { createHash } from 'node:crypto';
import { VigilError } from '../shared/index.js';
import { decodeCbor, encodeCbor } from '../store/index.js';
import { parseSign1, signSign1, verifySign1 } from './cose-sign1.js';
import type { SigningKey, TrustedKey } from './keys.js';

/** One rule file of a bundle; `path` is relative to the rules directory (`overheat.yaml`, `templates/x.yaml`). */
export interface BundleFile {
  path: string;
  text: string;
}

/** What a bundle carries, all of it covered by the signature. */
export interface BundleContent {
  /** Greater than the version a gateway runs, or it refuses the bundle. */
  version: number;
  /** ISO 8601, when the bundle was made. */
  createdAt: string;
  files: BundleFile[];
}

/** Layout of the signed payload; a gateway refuses a layout it does not know. */
const BUNDLE_FORMAT = 1;
export const MAX_BUNDLE_BYTES = 4 * 1024 * 1024;
const MAX_BUNDLE_FILES = 1_000;
/** A file at the top of the rules directory or in its `templates/` folder, as `vigil rules bundle` reads it. */
const FILE_PATH = /^(templates\/)?[A-Za-z0-9_][A-Za-z0-9._-]{0,127}\.ya?ml$/;

/** Why a bundle was refused before its rules were looked at. */
export type BundleDefect = 'malformed' | 'untrusted-key' | 'bad-signature' | 'invalid-content';

export type OpenedBundle =
  | { ok: true; content: BundleContent; keyId: string; hash: string }
  | { ok: false; reason: BundleDefect; detail: string; hash: string };

/** The identity of a bundle: the SHA-256 of its bytes, in hex. */
function bundleHash(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Packs and signs `content`: a COSE_Sign1 message whose payload is the CBOR of the content; throws VIGIL_BUNDLE_INPUT when it cannot be a bundle. */
export function createBundle(content: BundleContent, signer: SigningKey): Buffer {
  const problem = contentProblem({ format: BUNDLE_FORMAT, ...content });
  if (problem !== undefined) throw new VigilError('VIGIL_BUNDLE_INPUT', `cannot bundle: ${problem}`);
  const payload = encodeCbor({
    format: BUNDLE_FORMAT,
    version: content.version,
    createdAt: content.createdAt,
    files: content.files.map((f) => ({ path: f.path, text: f.text })),
  });
  const bundle = signSign1(payload, signer.key, Buffer.from(signer.id, 'hex'));
  if (bundle.length > MAX_BUNDLE_BYTES) {
    throw new VigilError(
      'VIGIL_BUNDLE_INPUT',
      `the bundle would be ${bundle.length} bytes; at most ${MAX_BUNDLE_BYTES} are accepted`,
    );
  }
  return bundle;
}

/**
 * Checks a bundle: its envelope, then its signature against the trusted keys, and only then decodes and
 * validates what it carries. Nothing of an unverified bundle is interpreted beyond its envelope.
 */
export function openBundle(bytes: Uint8Array, trusted: readonly TrustedKey[]): OpenedBundle {
  const hash = bundleHash(bytes);
  const refuse = (reason: BundleDefect, detail: string): OpenedBundle => ({
    ok: false,
    reason,
    detail,
    hash,
  });
  if (bytes.length > MAX_BUNDLE_BYTES) {
    return refuse('malformed', `${bytes.length} bytes; a bundle is at most ${MAX_BUNDLE_BYTES}`);
  }
  const parsed = parseSign1(bytes);
  if (!parsed.ok) return refuse('malformed', `not a signed bundle: ${parsed.detail}`);
  const { sign1 } = parsed;
  if (trusted.length === 0) return refuse('untrusted-key', 'no trusted keys are configured on this gateway');
  const signer = trusted.find((k) => verifySign1(sign1, k.key));
  if (signer === undefined) {
    const kid = sign1.kid?.toString('hex');
    const named = kid === undefined ? undefined : trusted.find((k) => k.id === kid);
    if (named !== undefined) {
      return refuse('bad-signature', `the signature does not match key ${named.id}: the bundle was altered`);
    }
    return refuse(
      'untrusted-key',
      `signed by ${kid === undefined ? 'a key it does not name' : `key ${kid}`}, which this gateway does not trust`,
    );
  }
  let value: unknown;
  try {
    value = decodeCbor(sign1.payload);
  } catch (err) {
    return refuse('invalid-content', `the signed payload is not CBOR: ${(err as Error).message}`);
  }
  const problem = contentProblem(value);
  if (problem !== undefined) return refuse('invalid-content', problem);
  const v = value as BundleContent;
  return {
    ok: true,
    keyId: signer.id,
    hash,
    content: {
      version: v.version,
      createdAt: v.createdAt,
      files: v.files.map((f) => ({ path: f.path, text: f.text })),
    },
  };
}

/** What is wrong with a payload, or undefined when it has the layout of BUNDLE_FORMAT. */
function contentProblem(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'the payload is not a map';
  const v = value as Record<string, unknown>;
  if (v['format'] !== BUNDLE_FORMAT) return `unknown bundle format ${JSON.stringify(v['format'])}`;
  const version = v['version'];
  if (typeof version !== 'number' || !Number.isSafeInteger(version) || version < 1) {
    return `version must be a whole number of at least 1, got ${JSON.stringify(version)}`;
  }
  const createdAt = v['createdAt'];
  if (typeof createdAt !== 'string' || Number.isNaN(Date.parse(createdAt))) {
    return `createdAt must be an ISO 8601 time, got ${JSON.stringify(createdAt)}`;
  }
  const files = v['files'];
  if (!Array.isArray(files)) return 'files must be a list';
  if (files.length > MAX_BUNDLE_FILES) return `${files.length} files; at most ${MAX_BUNDLE_FILES}`;
  const paths = new Set<string>();
  for (const [i, file] of files.entries()) {
    if (typeof file !== 'object' || file === null) return `files[${i}] is not a map`;
    const { path, text } = file as Record<string, unknown>;
    if (typeof path !== 'string' || !FILE_PATH.test(path)) {
      return `files[${i}].path must be NAME.yaml or templates/NAME.yaml, got ${JSON.stringify(path)}`;
    }
    if (typeof text !== 'string') return `files[${i}].text (${path}) must be text`;
    if (paths.has(path)) return `${path} appears twice`;
    paths.add(path);
  }
  return undefined;
}
