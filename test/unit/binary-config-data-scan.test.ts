import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { parse } from 'yaml';
import { UNKNOWN_DATA } from '../../build/sea/cache-dir.js';
import { dataFromConfigScan, scanConfigData } from '../../build/sea/config-data-scan.js';
import { tempDir } from '../helpers/temp.js';

/** What YAML itself reads as the top-level `data`, as the gateway's config does; null when it fails. */
function yamlData(text: string): string | undefined | null {
  try {
    const doc = parse(text) as unknown;
    if (typeof doc !== 'object' || doc === null) return undefined;
    const data = (doc as Record<string, unknown>).data;
    return typeof data === 'string' ? data : data === undefined ? undefined : null;
  } catch {
    return null;
  }
}

// The README's example config, as users start from it.
const readmeConfig = /```yaml\n(gatewayId: vigil\ndata: [^]*?)```/.exec(
  readFileSync(new URL('../../README.md', import.meta.url), 'utf8'),
)?.[1];

// The executable's loader reads a config file's `data` without a YAML parser: where it answers, YAML must agree.
describe("the loader's reading of a config file's data directory", () => {
  const cleanups: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0)) await c();
  });

  test('reads plain files as YAML does', () => {
    const plain: Array<[string, string | undefined]> = [
      ['data: /var/lib/vigil\n', '/var/lib/vigil'],
      ['gatewayId: site-42\ndata: ./state # on the SD card\nmqtt:\n  port: 1884\n', './state'],
      ['# comment\n\nmqtt: { port: 1884 }\ndata : d\r\nlog:\n  level: warn\n', 'd'],
      ['upstream:\n  url: mqtts://cloud:8883\n  password: "x: y"\n', undefined],
      ['notes: |\n  data: /not/this\ndata: ../here\n', '../here'],
      [readmeConfig ?? '', './data'],
    ];
    for (const [text, data] of plain) {
      expect(yamlData(text)).toBe(data);
      expect(scanConfigData(text), text).toEqual({ sure: true, data });
    }
  });

  test('does not answer where it cannot be sure, and never answers otherwise than YAML', () => {
    const unclear = [
      'data: x\n  y\n', // a plain value going on over the next line: "x y"
      'data: x\n# c\n  y\n',
      '  data: x\n  b: 1\n', // an indented top level
      '"data": x\n',
      "'data': x\n",
      '? data\n: x\n',
      '{data: x}\n',
      '--- \ndata: x\n',
      '%YAML 1.2\n---\ndata: x\n',
      'base: &b\n  data: q\n<<: *b\n',
      'data: .5\n',
      'data: 1e3\n',
      'data: true\n',
      'data: null\n',
      'data: ~\n',
      'data: x#c\n',
      'data: "quoted"\n',
      "data: 'quoted'\n",
      'data: &a x\n',
      'data: !!str x\n',
      'data: my dir\n',
      'data:\n  x\n',
      'data: |\n  x\n',
      'data: a\ndata: b\n',
      'data:\tx\n',
      '\uFEFFdata: x\n',
      'data: x\rmqtt: 1\n',
      'a: "foo\ndata: bar"\n',
      'a: [1,\ndata: y]\n',
      'data:x\n',
      '- data: x\n',
    ];
    for (const text of unclear) {
      const scan = scanConfigData(text);
      if (scan.sure) expect(yamlData(text), JSON.stringify(text)).toBe(scan.data);
      expect(scan, JSON.stringify(text)).toEqual({ sure: false });
    }
  });

  test('gives the cache folders the data directory, or says it does not know it', async () => {
    const dir = await tempDir();
    cleanups.push(() => dir.remove());
    await writeFile(join(dir.path, 'plain.yaml'), 'data: /var/lib/from-config\n');
    await writeFile(join(dir.path, 'none.yaml'), 'gatewayId: g\n');
    await writeFile(join(dir.path, 'quoted.yaml'), 'data: "/var/lib/quoted"\n');
    expect(dataFromConfigScan('plain.yaml', dir.path)).toBe('/var/lib/from-config');
    expect(dataFromConfigScan('none.yaml', dir.path)).toBeUndefined();
    expect(dataFromConfigScan('quoted.yaml', dir.path)).toBe(UNKNOWN_DATA);
    expect(dataFromConfigScan('missing.yaml', dir.path)).toBe(UNKNOWN_DATA);
  });
});
