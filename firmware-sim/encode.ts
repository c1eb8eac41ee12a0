import { Encoder } from 'cbor-x';
import type { PayloadFormat } from './options.js';

/** Turns an event's data and its send time into the bytes a device publishes. */
export type PayloadEncoder = (data: Readonly<Record<string, number>>, tsMs: number) => Buffer;

// variableMapSize gives the shortest map header (0xa4 for four keys), as other CBOR encoders do.
const cbor = new Encoder({ useRecords: false, variableMapSize: true });

export function payloadEncoder(format: PayloadFormat): PayloadEncoder {
  switch (format) {
    case 'json':
      return (data, tsMs) => Buffer.from(JSON.stringify({ ...data, ts: microseconds(tsMs) }));
    case 'cbor':
      return (data, tsMs) => cbor.encode({ ...data, ts: microseconds(tsMs) });
  }
}

/** Keeps the send time to the microsecond: enough for latencies well under a millisecond, short in JSON. */
function microseconds(ms: number): number {
  return Math.round(ms * 1_000) / 1_000;
}
