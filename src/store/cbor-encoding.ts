import { Encoder, isNativeAccelerationEnabled } from 'cbor-x';
import { plainCbor } from '../shared/index.js';

// Plain CBOR maps, no cbor-x records (tag 105): what is on disk stays readable by any CBOR decoder.
const codec = new Encoder({ useRecords: false, mapsAsObjects: true });

/**
 * Encodes one value as CBOR: plain values (an action, an outbox entry) by the shared plain writer, which writes the
 * bytes cbor-x writes for them without its generic encoder (about 1 KB less per action, docs/benchmarks.md); the rest
 * (bytes, dates, class instances) by cbor-x.
 */
export function encodeCbor(value: unknown): Buffer {
  return plainCbor.encodePlain(value) ?? codec.encode(value);
}

/** Decodes one CBOR value. */
export function decodeCbor(bytes: Uint8Array): unknown {
  return codec.decode(bytes) as unknown;
}

/** A `level` value encoding; values are stored as CBOR. */
export const cborEncoding = {
  name: 'cbor',
  format: 'buffer' as const,
  encode: encodeCbor,
  decode: decodeCbor,
};

/**
 * Whether cbor-x decodes with the native `cbor-extract` addon or fell back to pure JavaScript.
 * cbor-x falls back silently when the addon fails to load, so this reads the flag it sets on success.
 */
export function cborInUse(): 'native' | 'js' {
  return isNativeAccelerationEnabled ? 'native' : 'js';
}
