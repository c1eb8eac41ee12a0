import { sign, verify, type KeyObject } from 'node:crypto';

/**
 * The one COSE_Sign1 shape a bundle may take (RFC 9052, §4.2): tag 18, then the protected header
 * `{1: -8, 4: kid}` (alg EdDSA, key id) as a byte string, an empty unprotected header, the payload, and
 * a 64-byte Ed25519 signature. The key id is protected too, so that no byte of a bundle can change without
 * the bundle being refused. The cloud may sign bundles with any COSE library.
 *
 * The envelope is read by hand, strictly, so that nothing from an unverified bundle reaches a general
 * CBOR decoder: the payload is decoded only once its signature is good.
 */
export interface Sign1 {
  /** The key id of the protected header: which key to name when the signature does not verify. */
  kid: Buffer | undefined;
  /** The protected header as sent: part of what is signed. */
  protectedHeader: Buffer;
  payload: Buffer;
  signature: Buffer;
}

const HEADER_ALG = 1;
/** Algorithm EdDSA, the only one accepted. */
const ALG_EDDSA_ARG = 7; // -8, as CBOR encodes a negative integer: major type 1, argument 7
const COSE_SIGN1_TAG = 18;
const HEADER_KID = 4;
const ED25519_SIGNATURE_BYTES = 64;
const MAX_KID_BYTES = 64;

const MAJOR_UINT = 0;
const MAJOR_NEGINT = 1;
const MAJOR_BYTES = 2;
const MAJOR_ARRAY = 4;
const MAJOR_MAP = 5;
const MAJOR_TAG = 6;

/** Signs `payload` with an Ed25519 private key into a tagged COSE_Sign1 message. */
export function signSign1(payload: Buffer, privateKey: KeyObject, kid: Buffer): Buffer {
  const protectedHeader = Buffer.concat([
    head(MAJOR_MAP, 2),
    head(MAJOR_UINT, HEADER_ALG),
    head(MAJOR_NEGINT, ALG_EDDSA_ARG),
    head(MAJOR_UINT, HEADER_KID),
    bytes(kid),
  ]);
  const signature = sign(null, sigStructure(protectedHeader, payload), privateKey);
  return Buffer.concat([
    head(MAJOR_TAG, COSE_SIGN1_TAG),
    head(MAJOR_ARRAY, 4),
    bytes(protectedHeader),
    head(MAJOR_MAP, 0),
    bytes(payload),
    bytes(signature),
  ]);
}

/** Reads the envelope; `detail` says what is wrong when it is not the shape above. */
export function parseSign1(input: Uint8Array): { ok: true; sign1: Sign1 } | { ok: false; detail: string } {
  const r = new Reader(Buffer.from(input.buffer, input.byteOffset, input.byteLength));
  try {
    let h = r.head();
    if (h.major === MAJOR_TAG) {
      if (h.value !== COSE_SIGN1_TAG) throw new ShapeError(`CBOR tag ${h.value}, expected 18 (COSE_Sign1)`);
      h = r.head();
    }
    if (h.major !== MAJOR_ARRAY || h.value !== 4) throw new ShapeError('not a COSE_Sign1 array of 4');
    const protectedHeader = r.bytes('protected header');
    const kid = readProtected(protectedHeader);
    const unprotected = r.head();
    if (unprotected.major !== MAJOR_MAP || unprotected.value !== 0)
      throw new ShapeError('the unprotected header must be empty');
    const payload = r.bytes('payload');
    const signature = r.bytes('signature');
    if (signature.length !== ED25519_SIGNATURE_BYTES)
      throw new ShapeError(`signature of ${signature.length} bytes, expected 64`);
    if (!r.atEnd) throw new ShapeError('bytes after the end of the message');
    return { ok: true, sign1: { kid, protectedHeader, payload, signature } };
  } catch (err) {
    if (err instanceof ShapeError) return { ok: false, detail: err.message };
    throw err;
  }
}

/** Whether `publicKey` made the signature over this payload. */
export function verifySign1(sign1: Sign1, publicKey: KeyObject): boolean {
  return verify(null, sigStructure(sign1.protectedHeader, sign1.payload), publicKey, sign1.signature);
}

/** `{1: -8}` or `{1: -8, 4: kid}`, in that order and nothing else; returns the kid. */
function readProtected(header: Buffer): Buffer | undefined {
  const r = new Reader(header);
  const map = r.head();
  if (map.major !== MAJOR_MAP || (map.value !== 1 && map.value !== 2))
    throw new ShapeError('the protected header must be {alg: EdDSA, kid}');
  const label = r.head();
  const alg = r.head();
  if (
    label.major !== MAJOR_UINT ||
    label.value !== HEADER_ALG ||
    alg.major !== MAJOR_NEGINT ||
    alg.value !== ALG_EDDSA_ARG
  )
    throw new ShapeError('the algorithm is not EdDSA');
  let kid: Buffer | undefined;
  if (map.value === 2) {
    const kidLabel = r.head();
    if (kidLabel.major !== MAJOR_UINT || kidLabel.value !== HEADER_KID)
      throw new ShapeError('the protected header must be {alg: EdDSA, kid}');
    kid = r.bytes('kid');
    if (kid.length > MAX_KID_BYTES) throw new ShapeError('kid longer than 64 bytes');
  }
  if (!r.atEnd) throw new ShapeError('bytes after the end of the protected header');
  return kid;
}

/** `["Signature1", protected, external_aad = h'', payload]`, what is signed (RFC 9052, §4.4). */
function sigStructure(protectedHeader: Buffer, payload: Buffer): Buffer {
  const context = Buffer.from('Signature1', 'ascii');
  return Buffer.concat([
    head(MAJOR_ARRAY, 4),
    head(3, context.length),
    context,
    bytes(protectedHeader),
    bytes(Buffer.alloc(0)),
    bytes(payload),
  ]);
}

function bytes(b: Buffer): Buffer {
  return Buffer.concat([head(MAJOR_BYTES, b.length), b]);
}

/** A CBOR initial byte with its argument in the shortest form (RFC 8949, §3). */
function head(major: number, value: number): Buffer {
  const m = major << 5;
  if (value < 24) return Buffer.from([m | value]);
  if (value < 0x100) return Buffer.from([m | 24, value]);
  if (value < 0x10000) {
    const b = Buffer.alloc(3);
    b[0] = m | 25;
    b.writeUInt16BE(value, 1);
    return b;
  }
  const b = Buffer.alloc(5);
  b[0] = m | 26;
  b.writeUInt32BE(value, 1);
  return b;
}

class ShapeError extends Error {}

class Reader {
  private pos = 0;
  constructor(private readonly buf: Buffer) {}

  get atEnd(): boolean {
    return this.pos === this.buf.length;
  }

  head(): { major: number; value: number } {
    const first = this.take(1)[0] as number;
    const major = first >> 5;
    const info = first & 0x1f;
    if (info < 24) return { major, value: info };
    if (info === 24) return { major, value: this.take(1)[0] as number };
    if (info === 25) return { major, value: this.take(2).readUInt16BE(0) };
    if (info === 26) return { major, value: this.take(4).readUInt32BE(0) };
    // 64-bit lengths and indefinite lengths have no place in a bundle.
    throw new ShapeError('unsupported CBOR length encoding');
  }

  bytes(what: string): Buffer {
    const h = this.head();
    if (h.major !== MAJOR_BYTES) throw new ShapeError(`${what} is not a byte string`);
    return this.take(h.value);
  }

  private take(n: number): Buffer {
    if (this.pos + n > this.buf.length) throw new ShapeError('truncated');
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
}
