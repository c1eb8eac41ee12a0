const UNIT_BYTES: Record<string, number> = {
  b: 1,
  kb: 1_000,
  mb: 1_000_000,
  gb: 1_000_000_000,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
};

/** Parses `512KiB`, `256MiB`, `1GB`, `100B` (or a bare number of bytes) into bytes; undefined when malformed. */
export function parseBytes(text: unknown): number | undefined {
  if (typeof text === 'number') return Number.isSafeInteger(text) && text >= 0 ? text : undefined;
  if (typeof text !== 'string') return undefined;
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmg]i?b|b)?\s*$/i.exec(text);
  if (!m) return undefined;
  const bytes = Math.round(Number(m[1]) * (UNIT_BYTES[(m[2] ?? 'b').toLowerCase()] ?? 1));
  return Number.isSafeInteger(bytes) ? bytes : undefined;
}
