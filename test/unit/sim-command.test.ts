import { Command, CommanderError } from 'commander';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { generateProfiles, registerSimCommand } from '../../firmware-sim/index.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'vigil-sim-cli-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function sim(...args: string[]): Promise<{ code: number | undefined; out: string; err: string }> {
  const out = new PassThrough();
  const err = new PassThrough();
  let code: number | undefined;
  const text = { out: '', err: '' };
  out.on('data', (c: Buffer) => (text.out += c.toString()));
  err.on('data', (c: Buffer) => (text.err += c.toString()));
  const program = new Command('vigil').exitOverride();
  program.configureOutput({ writeOut: (s) => (text.out += s), writeErr: (s) => (text.err += s) });
  registerSimCommand(program, { out, err, setExitCode: (c) => (code = c) }).exitOverride();
  try {
    await program.parseAsync(['sim', ...args], { from: 'user' });
  } catch (e) {
    if (!(e instanceof CommanderError)) throw e;
    code = e.exitCode;
  }
  return { code, ...text };
}

describe('vigil sim', () => {
  test('--profiles-only writes the fleet profiles and connects to nothing', async () => {
    const file = join(dir, 'p.ndjson');
    const r = await sim(
      '--devices',
      '30',
      '--seed',
      '4',
      '--sites',
      '3',
      '--profiles-out',
      file,
      '--profiles-only',
    );
    expect(r).toMatchObject({ code: 0, err: '' });
    expect(r.out).toContain(`wrote 30 profiles to ${file}`);
    const lines = (await readFile(file, 'utf8')).trim().split('\n');
    expect(lines.map((l) => JSON.parse(l) as unknown)).toEqual([
      ...generateProfiles({ devices: 30, seed: 4, sites: 3 }),
    ]);
  });

  test.each([
    [['--rate', '0'], 'expected a number above 0'],
    [['--devices', 'many'], 'expected a whole number'],
    [['--format', 'xml'], 'Allowed choices are json, cbor'],
    [['--duration', '5 parsecs'], 'expected a duration'],
    [['--hot-share', '5'], 'expected a share from 0 to 1'],
    [['--silent-mode', 'asleep'], 'Allowed choices are stay, disconnect, drop, mixed'],
  ])('%j is refused with a message saying what is expected', async (args, message) => {
    const r = await sim(...args);
    expect(r.code).not.toBe(0);
    expect(r.err).toContain(message);
  });

  test('a fleet that cannot hold the behaviours asked for stops before connecting, naming the option', async () => {
    const r = await sim('--devices', '5', '--outage-sites', '4', '--url', 'mqtt://127.0.0.1:1');
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^vigil sim: outageSites: only \d sites/);
    expect(r.out).toBe('');
  });

  test('--profiles-only without a file is refused', async () => {
    const r = await sim('--profiles-only');
    expect(r.code).toBe(2);
    expect(r.err).toContain('--profiles-only needs --profiles-out FILE');
  });

  test('--help explains the load flags and every behaviour flag', async () => {
    const r = await sim('--help');
    for (const flag of [
      '--devices',
      '--rate',
      '--duration',
      '--format',
      '--qos',
      '--seed',
      '--profiles-out',
      '--silent-share',
      '--silent-mode',
      '--outage-sites',
      '--heat-bursts',
      '--humid-bursts',
      '--never-registered',
    ]) {
      expect(r.out).toMatch(new RegExp(`${flag} [^\\n]*\\S+\\s+\\S+`));
    }
  });
});
