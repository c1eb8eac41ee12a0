import { join } from 'node:path';
import { StoreIoError } from '../../src/shared/index.js';
import { cacheDirs, embeddedManifest, ensurePrivateDir, materialize } from './embedded-files.js';
import type { AddonName } from './manifest.js';

/** How an addon loaded; the shape `src/cli/native-addons.ts` reads for `vigil --version`. */
export type AddonLoad =
  { readonly ok: true; readonly file: string } | { readonly ok: false; readonly error: string };

const LOADS = Symbol.for('vigil.embedded-addons');

function loads(): Map<string, AddonLoad> {
  const g = globalThis as unknown as Record<symbol, Map<string, AddonLoad> | undefined>;
  g[LOADS] ??= new Map();
  return g[LOADS];
}

/**
 * Loads an embedded native addon: writes it to the first cache folder that accepts it and dlopens it
 * from there, trying the next folder when writing or loading fails (a read-only or `noexec` mount).
 * Throws when no folder works, as a missing addon does under plain Node; the packages that have a
 * pure-JavaScript fallback catch that.
 */
export function loadEmbeddedAddon(name: AddonName): unknown {
  const addon = embeddedManifest().addons[name];
  const failures: string[] = [];
  for (const dir of cacheDirs()) {
    try {
      const nativeDir = join(dir, 'native');
      ensurePrivateDir(dir);
      ensurePrivateDir(nativeDir);
      const file = materialize(nativeDir, addon);
      const module = { exports: {} as unknown };
      process.dlopen(module, file);
      loads().set(name, { ok: true, file });
      return module.exports;
    } catch (err) {
      failures.push(`${dir}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  const error = `cannot load the native ${name} addon (${addon.source}) from ${failures.join('; ')}`;
  loads().set(name, { ok: false, error });
  throw new Error(`${error}. Set VIGIL_CACHE_DIR to a writable folder that allows execution.`);
}

/**
 * For classic-level, which has no fallback: when its addon cannot load, the commands that do not open
 * the store (`--version`, `rules check`, `replay`) still run, and the ones that do fail with the reason
 * as a StoreIoError the first time they call into it.
 */
export function loadLevelDbAddon(): object {
  try {
    return loadEmbeddedAddon('classic-level') as object;
  } catch (err) {
    const fail = (): never => {
      throw new StoreIoError(`LevelDB is unavailable: ${(err as Error).message}`, { cause: err });
    };
    return new Proxy({}, { get: fail, has: fail, ownKeys: fail, getOwnPropertyDescriptor: fail });
  }
}

/**
 * classic-level's binding in the bundle. While the executable's startup snapshot is built (outside the
 * executable, where no addon is embedded), it is a stand-in filled in when the executable starts from
 * the snapshot, before anything runs; otherwise the addon itself.
 */
export function levelDbBinding(): object {
  const { startupSnapshot } = process.getBuiltinModule('node:v8');
  if (!startupSnapshot.isBuildingSnapshot()) return loadLevelDbAddon();
  let addon: object | undefined;
  startupSnapshot.addDeserializeCallback(() => {
    addon = loadLevelDbAddon();
  });
  const loaded = (): object => {
    if (addon === undefined)
      throw new Error('the LevelDB addon is not loaded while a startup snapshot is built');
    return addon;
  };
  return new Proxy(
    {},
    { get: (_t, key): unknown => Reflect.get(loaded(), key), has: (_t, key) => key in loaded() },
  );
}

/**
 * cbor-extract for cbor-x, which decodes in pure JavaScript without it. While the startup snapshot is
 * built there is none: the executable loads it when it starts from the snapshot and hands its
 * `extractStrings` to cbor-x's `setExtractor`, as cbor-x does when it loads the addon itself.
 */
export function cborExtract(setExtractor: (extractStrings: unknown) => void): unknown {
  const { startupSnapshot } = process.getBuiltinModule('node:v8');
  if (!startupSnapshot.isBuildingSnapshot()) return loadEmbeddedAddon('cbor-extract');
  startupSnapshot.addDeserializeCallback(() => {
    // cbor-x reads this at import; the snapshot holds the build's environment, so it is read again here.
    if (process.env.CBOR_NATIVE_ACCELERATION_DISABLED?.toLowerCase() === 'true') return;
    try {
      setExtractor((loadEmbeddedAddon('cbor-extract') as { extractStrings: unknown }).extractStrings);
    } catch {
      // Decoded in JavaScript, as cbor-x does when the addon fails; `vigil --version` says why.
    }
  });
  return undefined;
}
