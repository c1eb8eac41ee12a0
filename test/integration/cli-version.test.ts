import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { expect, test } from 'vitest';

const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
  version: string;
};

test('`vigil --version` on Node names the version, the commit, Node and the native addons', () => {
  const r = spawnSync(process.execPath, ['--import', 'tsx', MAIN, '--version'], { encoding: 'utf8' });
  expect(r.status).toBe(0);
  expect(r.stdout.split('\n')).toEqual([
    expect.stringMatching(
      new RegExp(`^vigil ${version.replaceAll('.', '\\.')} \\(commit ([0-9a-f]{12}(-dirty)?|unknown)\\)$`),
    ),
    `node ${process.version} ${process.platform}-${process.arch}, on node`,
    'leveldb native',
    'cbor native',
    '',
  ]);
});
