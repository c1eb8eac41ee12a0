import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';

/**
 * docs/architecture.md describes the code as it is: the files it names exist, the names its "Follow one event"
 * walk gives are in the files it gives them for, and the sections the code cites are there.
 */

const root = new URL('../../', import.meta.url).pathname;
const doc = readFileSync(join(root, 'docs/architecture.md'), 'utf8');

/** `src/…` paths the document names, without the punctuation that may follow one in a sentence. */
function srcPaths(text: string): string[] {
  return [...text.matchAll(/\bsrc\/[\w./-]*[\w/]/g)].map((m) => m[0]);
}

/** The text of the `## ` section titled `title`, up to the next one. */
function section(title: string): string {
  const part = doc.split(/^## /m).find((s) => s.startsWith(`${title}\n`));
  if (part === undefined) throw new Error(`docs/architecture.md has no "## ${title}" section`);
  return part;
}

/**
 * The code names in backticks of one block of text: `Class.method`, `object.member`, `#private`, `name(args)`
 * (the part before the parenthesis). Words that are not names (topics, file names, JSON) are left out.
 */
function codeNames(block: string): string[] {
  const names: string[] = [];
  for (const [, raw] of block.matchAll(/`([^`]+)`/g)) {
    const name = (raw ?? '').replace(/\(.*$/s, '');
    if (/^#?[A-Za-z_$][\w$]*(\.#?[A-Za-z_$][\w$]*)*$/.test(name)) names.push(name);
  }
  return names;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(join(root, dir)).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(join(root, path)).isDirectory()) return sourceFiles(path);
    return path.endsWith('.ts') ? [path] : [];
  });
}

describe('docs/architecture.md', () => {
  test('every src/ path it names exists', () => {
    const paths = [...new Set(srcPaths(doc))];
    // A document that stopped naming files would pass the check below without saying anything.
    expect(paths.length).toBeGreaterThan(50);
    expect(paths.filter((p) => !existsSync(join(root, p)))).toEqual([]);
  });

  test('every name of "Follow one event" is in a file its step names', () => {
    // One step: a numbered or bulleted item (with its continuation lines), or a paragraph.
    const steps = section('Follow one event')
      .split(/\n(?=\d+\. |- )|\n\n/)
      .filter((block) => srcPaths(block).some((p) => p.endsWith('.ts')));
    expect(steps.length).toBeGreaterThan(20);
    const missing: string[] = [];
    for (const step of steps) {
      const files = srcPaths(step)
        .filter((p) => p.endsWith('.ts'))
        .map((p) => readFileSync(join(root, p), 'utf8'));
      for (const name of codeNames(step)) {
        const parts = name.split('.');
        const found = files.some((text) =>
          parts.every((part) =>
            new RegExp(`(^|[^\\w$#])${part.replace(/[$#]/g, '\\$&')}(?![\\w$])`).test(text),
          ),
        );
        if (!found) missing.push(`${name} (step: ${step.trim().slice(0, 60)}…)`);
      }
    }
    expect(missing).toEqual([]);
  });

  test('every section the code cites as docs/architecture.md, "…" is a heading of it', () => {
    const headings = new Set([...doc.matchAll(/^#{2,4} (.+)$/gm)].map((m) => m[1]));
    const cited: string[] = [];
    for (const file of [...sourceFiles('src'), 'eslint.config.js']) {
      const text = readFileSync(join(root, file), 'utf8');
      for (const m of text.matchAll(/docs\/architecture\.md, "([^"]+)"/g)) cited.push(`${file}: ${m[1]}`);
    }
    expect(cited.length).toBeGreaterThan(0);
    expect(cited.filter((c) => !headings.has(c.slice(c.indexOf(': ') + 2)))).toEqual([]);
  });
});
