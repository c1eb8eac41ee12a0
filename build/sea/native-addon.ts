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
