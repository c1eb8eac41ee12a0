import { cborInUse } from '../store/index.js';

/** How the single executable loaded one of the native addons it carries. */
type AddonLoad =
  { readonly ok: true; readonly file: string } | { readonly ok: false; readonly error: string };

// Filled by the executable's loader (build/sea/native-addon.ts); absent when running on plain Node.
const EMBEDDED_ADDONS = Symbol.for('vigil.embedded-addons');

function embeddedLoad(name: string): AddonLoad | undefined {
  const loads = (globalThis as unknown as Record<symbol, ReadonlyMap<string, AddonLoad> | undefined>)[
    EMBEDDED_ADDONS
  ];
  return loads?.get(name);
}

/** Whether LevelDB runs on its native addon, and if not, why. */
export function leveldbInUse(): string {
  const load = embeddedLoad('classic-level');
  // On plain Node, classic-level has no fallback: the process got this far, so its addon is loaded.
  if (load === undefined || load.ok) return 'native';
  return `unavailable (${load.error})`;
}

/** Whether CBOR decodes with the native cbor-extract or cbor-x's pure-JavaScript fallback, and why. */
export function cborDecoderInUse(): string {
  const inUse = cborInUse();
  const load = embeddedLoad('cbor-extract');
  if (inUse === 'js' && load !== undefined && !load.ok) return `js (${load.error})`;
  return inUse;
}
