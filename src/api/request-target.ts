import { badEncoding, badTarget, type RequestRejectedError } from './errors.js';

/** Longer request targets are refused (414) before anything is decoded. */
export const MAX_TARGET_CHARS = 8 * 1024;

/** A request target taken apart: the path's segments, each percent-decoded, and the query. */
export interface RequestTarget {
  /** `/api/profiles/a%2Fb` is `['api', 'profiles', 'a/b']`; `/` is `['']`. */
  segments: string[];
  /** The path as sent (still encoded), for messages and logs. */
  path: string;
  query: URLSearchParams;
}

export type TargetResult = { ok: true; target: RequestTarget } | { ok: false; error: RequestRejectedError };

const HEX_PAIR = /^[0-9A-Fa-f]{2}$/;
// Printable ASCII only: other bytes must be percent-encoded (Node's parser refuses most of them already).
const OUTSIDE_TARGET_CHARS = /[^\x21-\x7e]/;

/**
 * Parses the request target of a request line, strictly: origin form (`/path?query`) or absolute form
 * (`http://host/path`), every percent-escape well-formed and the bytes it encodes UTF-8. Anything else is
 * refused with a reason, never thrown.
 */
export function parseTarget(raw: string): TargetResult {
  try {
    return { ok: true, target: parseOrThrow(raw) };
  } catch (err) {
    return { ok: false, error: err as RequestRejectedError };
  }
}

function parseOrThrow(raw: string): RequestTarget {
  if (raw.length > MAX_TARGET_CHARS)
    throw badTarget(`the request target is over ${MAX_TARGET_CHARS} characters`, 414);
  let target = stripFragment(raw);
  const absolute = /^https?:\/\/[^/?]*/i.exec(target);
  if (absolute) {
    target = target.slice(absolute[0].length);
    if (!target.startsWith('/')) target = `/${target}`;
  }
  if (!target.startsWith('/')) throw badTarget('the request target must be a path starting with /');
  if (target.startsWith('//')) throw badTarget('the request target must not start with //');
  if (OUTSIDE_TARGET_CHARS.test(target))
    throw badTarget('the request target has characters that must be percent-encoded');
  const q = target.indexOf('?');
  const path = q < 0 ? target : target.slice(0, q);
  const queryText = q < 0 ? '' : target.slice(q + 1);
  const segments = path
    .slice(1)
    .split('/')
    .map((segment) => {
      if (segment === '.' || segment === '..') throw badTarget('the path must not have . or .. segments');
      return decode(segment, 'path');
    });
  for (const part of queryText.split('&')) decode(part.replace(/\+/g, ' '), 'query');
  return { segments, path, query: new URLSearchParams(queryText) };
}

function stripFragment(raw: string): string {
  const hash = raw.indexOf('#');
  return hash < 0 ? raw : raw.slice(0, hash);
}

/** Percent-decodes `text`; a `%` without two hex digits, or bytes that are not UTF-8, are refused. */
function decode(text: string, where: 'path' | 'query'): string {
  if (!text.includes('%')) return text;
  for (let i = text.indexOf('%'); i >= 0; i = text.indexOf('%', i + 1)) {
    if (!HEX_PAIR.test(text.slice(i + 1, i + 3)))
      throw badEncoding(`the ${where} has a % not followed by two hex digits`);
  }
  try {
    return decodeURIComponent(text);
  } catch {
    throw badEncoding(`the ${where} has percent-escapes that are not UTF-8`);
  }
}
