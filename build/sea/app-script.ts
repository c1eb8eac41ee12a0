/** SEA asset of the command line's bundle as `wrapApp` makes it, which the executable's loader compiles (loader.ts). */
export const APP_ASSET = 'vigil/app.cjs';
/**
 * SEA asset of V8's code cache of that bundle, compressed with zstd: as a start of `vigil run` that the build ran
 * left it, or, when the build could not run one, as the build compiled it, before any of it ran.
 */
export const APP_CODE_CACHE_ASSET = 'vigil/app.code-cache';

/**
 * The bundle as the script the loader compiles: a function of CommonJS's arguments. The build embeds it so,
 * rather than the loader joining the strings, which would keep a second copy of the bundle's source. The header is a line of its
 * own and `APP_LINE_OFFSET` takes it back out, so that stack traces give the bundle's lines and columns.
 */
export function wrapApp(source: string): string {
  return `(function (exports, require, module, __filename, __dirname) {\n${source}\n})`;
}

export const APP_LINE_OFFSET = -1;
