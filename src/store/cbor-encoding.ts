import { Encoder, isNativeAccelerationEnabled } from 'cbor-x';

// Plain CBOR maps, no cbor-x records (tag 105): what is on disk stays readable by any CBOR decoder.
const codec = new Encoder({ useRecords: false, mapsAsObjects: true });

/** Encodes one value as CBOR. */
export function encodeCbor(value: unknown): Buffer {
  return codec.encode(value);
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
