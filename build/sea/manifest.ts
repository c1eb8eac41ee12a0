/** Asset key of the manifest that the build embeds next to the files it lists. */
export const MANIFEST_ASSET = 'vigil/embedded.json';

/** The native addons the gateway needs; each has a pure-JavaScript fallback or none (LevelDB). */
export const ADDON_NAMES = ['classic-level', 'cbor-extract'] as const;
export type AddonName = (typeof ADDON_NAMES)[number];

/** One file embedded as a SEA asset and written out to the cache when the gateway needs it on disk. */
export interface EmbeddedFile {
  /** SEA asset key. */
  readonly asset: string;
  /** Path relative to the folder it is written to. */
  readonly path: string;
  readonly sha256: string;
  readonly bytes: number;
}

export interface EmbeddedAddon extends EmbeddedFile {
  /** Where the build took it from, e.g. `classic-level@3.0.0 prebuilds/linux-x64/classic-level.node`. */
  readonly source: string;
}

/** What the build embedded; read by the executable at start-up. */
export interface Manifest {
  readonly target: string;
  readonly addons: Readonly<Record<AddonName, EmbeddedAddon>>;
  /**
   * Files the app's modules read relative to themselves (`rules/`, the dashboard's page), with their
   * paths in the repository; `sha256` covers every path and content, and names the cache folder.
   */
  readonly tree: {
    readonly sha256: string;
    readonly files: readonly EmbeddedFile[];
    /** The paths of `files` each module reads, by the module's path in the repository (module-files.ts). */
    readonly modules: Readonly<Record<string, readonly string[]>>;
  };
}
