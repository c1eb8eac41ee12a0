import { VigilError } from '../shared/index.js';
import { encodeCbor } from '../store/index.js';
import { signSign1 } from './cose-sign1.js';
import type { SigningKey, TrustedKey } from './keys.js';
import { openSigned, type SignedDefect } from './signed.js';

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
export type BundleDefect = SignedDefect;

export type OpenedBundle =
  | { ok: true; content: BundleContent; keyId: string; hash: string }
  | { ok: false; reason: BundleDefect; detail: string; hash: string };

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
  const opened = openSigned(bytes, trusted, 'bundle', MAX_BUNDLE_BYTES);
  if (!opened.ok) return opened;
  const { value, signer, hash } = opened;
  const problem = contentProblem(value);
  if (problem !== undefined) return { ok: false, reason: 'invalid-content', detail: problem, hash };
  const v = value as BundleContent;
  return {
    ok: true,
    keyId: signer,
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
