import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { DATA_CACHE_DIR } from '../../src/shared/cache-folder.js';

export { DATA_CACHE_DIR, privateDirProblem } from '../../src/shared/cache-folder.js';

export interface CacheDirInput {
  /** Arguments after the executable, `process.argv.slice(2)`. */
  readonly args: readonly string[];
  readonly env: NodeJS.ProcessEnv;
  readonly cwd: string;
  readonly uid: number;
  /**
   * The `data` a config file names (`config-data.ts`), or `UNKNOWN_DATA` when it cannot tell
   * (`config-data-scan.ts`, the loader's, which reads no YAML). Without it, or unknown, the data directory of
   * `run --config FILE` is not known and its cache folder is left out.
   */
  readonly configData?: (file: string, cwd: string) => string | undefined;
}

/**
 * Where the executable may write the files it carries (native addons, the shipped rules), best first.
 * The addons are loaded with dlopen, so the folder must allow execution: a `noexec` /tmp fails. The data
 * directory is the default because a gateway's service is set up to write and run from it; otherwise
 * the user's cache, then the temp folder.
 */
export function cacheDirCandidates(input: CacheDirInput): string[] {
  const { env, cwd } = input;
  const dirs: string[] = [];
  if (nonEmpty(env.VIGIL_CACHE_DIR)) dirs.push(resolve(cwd, env.VIGIL_CACHE_DIR));
  const data = dataDirOf(input);
  if (data !== undefined && data !== UNKNOWN_DATA) dirs.push(join(resolve(cwd, data), DATA_CACHE_DIR));
  if (nonEmpty(env.XDG_CACHE_HOME)) dirs.push(join(resolve(cwd, env.XDG_CACHE_HOME), 'vigil'));
  else if (nonEmpty(env.HOME)) dirs.push(join(env.HOME, '.cache', 'vigil'));
  dirs.push(join(tmpdir(), `vigil-cache-${input.uid}`));
  return [...new Set(dirs)];
}

// Commands that create the data directory when it is missing, as `run` does.
const CREATORS = new Set(['devices add', 'profiles import']);

/**
 * The data directory the command will use: for `run`, resolved as `run` does (flag, `VIGIL_DATA`, the
 * config file, `./data`); for the other commands, `--data` or `./data`. Undefined when it is not a
 * Vigil data directory yet (no LevelDB `CURRENT`), unless the command creates one: `vigil --version`
 * must not leave a `data/.cache` in whatever folder it runs from.
 */
export function dataDirOf({ args, env, cwd, configData }: CacheDirInput): string | undefined {
  if (args[0] === 'run') {
    const config = optionValue(args, ['--config', '-c']);
    const fromConfig = (): string | undefined => {
      if (config === undefined) return undefined;
      return configData === undefined ? UNKNOWN_DATA : configData(config, cwd);
    };
    return (
      optionValue(args, ['--data']) ??
      (nonEmpty(env.VIGIL_DATA) ? env.VIGIL_DATA : undefined) ??
      fromConfig() ??
      './data'
    );
  }
  const data = optionValue(args, ['--data']) ?? './data';
  if (CREATORS.has(`${args[0]} ${args[1]}`)) return data;
  return existsSync(join(resolve(cwd, data), 'CURRENT')) ? data : undefined;
}

/** The value of the last `--name VALUE`, `--name=VALUE` or `-xVALUE` among `args`, before `--`. */
export function optionValue(args: readonly string[], names: readonly string[]): string | undefined {
  let value: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] ?? '';
    if (arg === '--') break;
    for (const name of names) {
      if (arg === name) value = args[i + 1];
      else if (name.startsWith('--') && arg.startsWith(`${name}=`)) value = arg.slice(name.length + 1);
      else if (!name.startsWith('--') && arg.startsWith(name) && arg.length > name.length)
        value = arg.slice(name.length);
    }
  }
  return value;
}

/** A data directory that only a config file names, and that could not be read from it. */
export const UNKNOWN_DATA = '\0unknown';

function nonEmpty(value: string | undefined): value is string {
  return value !== undefined && value !== '';
}
