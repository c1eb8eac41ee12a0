import { existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';

/** Name of the cache folder inside the data directory. */
export const DATA_CACHE_DIR = '.cache';

export interface CacheDirInput {
  /** Arguments after the executable, `process.argv.slice(2)`. */
  readonly args: readonly string[];
  readonly env: NodeJS.ProcessEnv;
  readonly cwd: string;
  readonly uid: number;
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
  if (data !== undefined) dirs.push(join(resolve(cwd, data), DATA_CACHE_DIR));
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
export function dataDirOf({ args, env, cwd }: CacheDirInput): string | undefined {
  if (args[0] === 'run') {
    return (
      optionValue(args, ['--data']) ??
      (nonEmpty(env.VIGIL_DATA) ? env.VIGIL_DATA : undefined) ??
      dataFromConfig(optionValue(args, ['--config', '-c']), cwd) ??
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

// A config file that cannot be read is left to the command to report; here it only means no answer.
function dataFromConfig(file: string | undefined, cwd: string): string | undefined {
  if (file === undefined) return undefined;
  try {
    const doc = parseYaml(readFileSync(resolve(cwd, file), 'utf8')) as unknown;
    if (typeof doc !== 'object' || doc === null) return undefined;
    const data = (doc as Record<string, unknown>).data;
    return typeof data === 'string' && data !== '' ? data : undefined;
  } catch {
    return undefined;
  }
}

function nonEmpty(value: string | undefined): value is string {
  return value !== undefined && value !== '';
}
