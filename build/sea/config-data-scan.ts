import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { UNKNOWN_DATA } from './cache-dir.js';

// The `data` a config file names, for the executable's loader, which finds its code cache before anything can
// parse YAML (and carries no YAML parser). Read line by line, and answered only for a file whose top level is
// plainly a block mapping of simple keys: in any other file (quoted or complex keys, merge keys, flow
// collections at the top, documents, tabs, a value that is not a plain path, or one that may go on over the
// next line) the answer is "not known", and the loader then leaves the data directory's cache folder out, as
// it would without this. Where it answers, YAML's own reading (config-data.ts) gives the same.

/** A key of the top-level mapping, at the start of a line, with its value after it. */
const TOP_KEY = /^([A-Za-z_][A-Za-z0-9_-]*) *:(?: (.*))?$/;
/** The value of `data`, a plain scalar with an optional comment after it. */
const PLAIN_VALUE = /^ *(\S+)(?: +#.*)? *$/;
/** A path YAML reads as this very string: no quoting, no indicators, no comment, not a number. */
const SAFE_PATH = /^(?:\.{1,2}\/|\/|[A-Za-z_])[A-Za-z0-9_./-]*$/;
/** Plain scalars of YAML 1.2's core schema that match `SAFE_PATH` and are not strings. */
const NOT_STRINGS = new Set(['null', 'Null', 'NULL', 'true', 'True', 'TRUE', 'false', 'False', 'FALSE']);

/**
 * The top-level `data` of a config file's text: `{ sure: true, data }` (data undefined when there is no such
 * key), or `{ sure: false }` when the text is not plain enough to tell without parsing it.
 */
export function scanConfigData(text: string): { sure: true; data: string | undefined } | { sure: false } {
  const unsure = { sure: false } as const;
  const lines = text.replaceAll('\r\n', '\n');
  if (lines.includes('\r') || lines.includes('\t') || lines.startsWith('\uFEFF')) return unsure;
  let data: string | undefined;
  let seenKey = false;
  let afterData = false;
  for (const line of lines.split('\n')) {
    if (line.trim() === '') continue;
    if (line.startsWith(' ')) {
      // Nested content, or a value going on over lines: not `data`'s, whose value must end on its line.
      if (afterData || !seenKey) return unsure;
      continue;
    }
    if (line.startsWith('#')) continue;
    afterData = false;
    const key = TOP_KEY.exec(line);
    if (key === null) return unsure;
    seenKey = true;
    if (key[1] !== 'data') continue;
    if (data !== undefined) return unsure;
    const value = PLAIN_VALUE.exec(key[2] ?? '')?.[1];
    if (value === undefined || !SAFE_PATH.test(value) || NOT_STRINGS.has(value)) return unsure;
    data = value;
    afterData = true;
  }
  return { sure: true, data };
}

/**
 * For `cacheDirCandidates`' `configData`: the `data` the config file names, undefined when it names none, and
 * `UNKNOWN_DATA` when the file cannot be read or is not plain enough to tell (`scanConfigData`).
 */
export function dataFromConfigScan(file: string, cwd: string): string | undefined {
  let text: string;
  try {
    text = readFileSync(resolve(cwd, file), 'utf8');
  } catch {
    return UNKNOWN_DATA;
  }
  const scan = scanConfigData(text);
  return scan.sure ? scan.data : UNKNOWN_DATA;
}
