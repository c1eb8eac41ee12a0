const FNV64_OFFSET = 0xcbf29ce484222325n;
const FNV64_PRIME = 0x100000001b3n;
const MASK64 = 0xffffffffffffffffn;

/**
 * FNV-1a, 64 bits, over the UTF-16 code units of `text`, as 16 hex digits. Pure and stable across
 * processes and versions, so ids derived from it survive restarts and replays. Not cryptographic.
 */
export function fnv1a64(text: string): string {
  // Two 32-bit halves keep the loop in small integers; BigInt per character would be ~20x slower.
  let hi = 0xcbf29ce4;
  let lo = 0x84222325;
  for (let i = 0; i < text.length; i++) {
    lo = (lo ^ text.charCodeAt(i)) >>> 0;
    // Multiply (hi:lo) by the FNV prime 0x100_0000_01b3 = 2^40 + 0x1b3, modulo 2^64.
    const loMul = lo * 0x1b3;
    const carry = Math.floor(loMul / 0x1_0000_0000);
    const newLo = loMul >>> 0;
    const newHi = (Math.imul(hi, 0x1b3) + carry + ((lo << 8) >>> 0)) >>> 0;
    hi = newHi;
    lo = newLo;
  }
  return hi.toString(16).padStart(8, '0') + lo.toString(16).padStart(8, '0');
}

/** Reference implementation on BigInt, for tests of {@link fnv1a64}. */
export function fnv1a64Reference(text: string): string {
  let h = FNV64_OFFSET;
  for (let i = 0; i < text.length; i++) {
    h ^= BigInt(text.charCodeAt(i));
    h = (h * FNV64_PRIME) & MASK64;
  }
  return h.toString(16).padStart(16, '0');
}

/**
 * JSON with object keys sorted at every level, so equal data gives equal text whatever the key order it
 * arrived in; bigints are written as numbers, and values JSON cannot carry (undefined, functions) as null.
 */
export function canonicalJson(value: unknown): string {
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'number':
      return Number.isFinite(value) ? String(value) : 'null';
    case 'bigint':
      return value.toString();
    case 'boolean':
      return value ? 'true' : 'false';
    case 'object': {
      if (value === null) return 'null';
      if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
      if (value instanceof Map) {
        const entries = [...(value as Map<unknown, unknown>).entries()].map(
          ([k, v]) => [String(k), v] as const,
        );
        entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
        return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
      }
      if (ArrayBuffer.isView(value)) return canonicalJson(Array.from(value as Uint8Array));
      return canonicalObject(value as Record<string, unknown>);
    }
    case 'undefined':
    case 'function':
    case 'symbol':
      return 'null';
  }
}

/**
 * An object's JSON with its keys sorted, as `Object.keys(rec).sort()` orders them (by UTF-16 code units): sorted in
 * place by insertion (an event's data has a handful of keys) and the text written as it goes, without the
 * intermediate lists `sort`, `map` and `join` make. Every action and emitted event names its input by this.
 */
function canonicalObject(rec: Record<string, unknown>): string {
  const keys = Object.keys(rec);
  for (let i = 1; i < keys.length; i++) {
    const k = keys[i] as string;
    let j = i - 1;
    while (j >= 0 && (keys[j] as string) > k) {
      keys[j + 1] = keys[j] as string;
      j--;
    }
    keys[j + 1] = k;
  }
  let out = '{';
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i] as string;
    if (i > 0) out += ',';
    out += JSON.stringify(k) + ':' + canonicalJson(rec[k]);
  }
  return out + '}';
}
