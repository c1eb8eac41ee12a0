import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startLocalBroker } from '../../src/broker/index.js';
import { hasMosquitto, MOSQUITTO_MISSING } from '../helpers/mosquitto.js';
import { copyRepository, ROOT, userShellEnv } from '../helpers/repo-copy.js';
import { tempDir } from '../helpers/temp.js';

/**
 * Every command of the README's `sh` blocks, run as written in a copy of the repository (its tracked files
 * and the installed node_modules, as after `npm ci`), from a shell whose PATH has the machine's own Node
 * first, as a new user's has. Where an example names a remote host, the host is a broker on 127.0.0.1
 * and the gateway binds loopback and free ports; those substitutions are spelled out below. Commands that
 * need more than loopback, or that are the repository's own checks, are listed in SKIPPED with the reason.
 */
const SKIPPED: Record<string, string> = {
  'npm ci && npm test': 'runs the whole suite, this test included; CI runs it',
  'npm run lint': "the repository's own check; CI runs it",
  'npm run typecheck': "the repository's own check; CI runs it",
  'npm test': 'runs the whole suite, this test included; CI runs it',
  'npm run build:binary && VIGIL_BINARY_TEST=1 npx vitest run test/e2e/binary-x64.test.ts test/e2e/binary-arm64.test.ts':
    'builds both executables (minutes); the binary tests and CI cover it',
};

/** The command lines of the README's `sh` blocks, comments and output lines left out. */
function readmeCommands(): string[] {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const blocks = [...readme.matchAll(/^```sh\n([\s\S]*?)^```/gm)].map((m) => m[1] ?? '');
  return blocks
    .flatMap((b) => b.split('\n'))
    .map((line) => line.replace(/\s{2,}# .*$/, '').trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
}

interface Shell {
  dir: string;
  env: NodeJS.ProcessEnv;
  /** Processes started in the background, each its own process group. */
  running: Set<ChildProcess>;
}

interface Run {
  code: number | null;
  out: string;
}

let shell: Shell;
let removeDir: () => Promise<void>;
let cloud: Awaited<ReturnType<typeof startLocalBroker>>;
const covered = new Set<string>();

/** Runs one README line (or its stand-in) with bash in the copy; `readme` is the line it covers. */
function sh(readme: string, command: string = readme, timeoutMs = 120_000): Promise<Run> {
  covered.add(readme);
  return new Promise((resolve) => {
    const child = spawn('bash', ['-c', command], { cwd: shell.dir, env: shell.env, detached: true });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => child.pid !== undefined && process.kill(-child.pid, 'SIGKILL'), timeoutMs);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
  });
}

/** Starts a README line in the background (its own process group); `output()` is what it printed so far. */
function background(readme: string, command: string = readme): { child: ChildProcess; output: () => string } {
  covered.add(readme);
  const child = spawn('bash', ['-c', `exec ${command}`], { cwd: shell.dir, env: shell.env, detached: true });
  shell.running.add(child);
  child.once('exit', () => shell.running.delete(child));
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  return { child, output: () => out };
}

/**
 * Signals a background process group started here, as a terminal's Ctrl-C does (npm and npx go with it, so
 * the group's own exit status says nothing: what it printed does), and waits for it to end.
 */
async function stop(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  process.kill(-child.pid, signal);
  await exited;
  await groupGone(child.pid);
}

/**
 * Waits until no process of the group is left: npm exits before the gateway it started has finished its own
 * shutdown (the last checkpoint), which still writes in the copy's data directory.
 */
async function groupGone(pgid: number, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      process.kill(-pgid, 0);
    } catch {
      return;
    }
    if (Date.now() > deadline)
      throw new Error(`process group ${pgid} still running ${timeoutMs} ms after its signal`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

beforeAll(async () => {
  const dir = await tempDir('vigil-readme-');
  removeDir = () => dir.remove();
  copyRepository(dir.path);
  shell = { dir: dir.path, env: userShellEnv(), running: new Set() };
  cloud = await startLocalBroker();
}, 60_000);

afterAll(async () => {
  for (const child of shell.running) await stop(child, 'SIGKILL');
  await cloud.close();
  await removeDir();
});

const mqttPortOf = (out: string) => Number(/mqtt listening on \S+:(\d+)/.exec(out)?.[1]);

describe.skipIf(!hasMosquitto())('the README examples, as written', () => {
  test('install: npm ci checks out clean on the machine’s own Node; the demo runs until Ctrl-C', async () => {
    // `npm ci` itself downloads from the registry: its checks (engines, install scripts, the lockfile)
    // run here without the download.
    const ci = await sh('npm ci && npm run demo', 'npm ci --dry-run --offline --no-audit');
    expect(ci.code, ci.out).toBe(0);
    expect(ci.out).not.toMatch(/EBADENGINE|npm warn/);

    const demo = background('npm ci && npm run demo', 'npm run demo');
    await expect
      .poll(demo.output, { timeout: 150_000, interval: 500 })
      .toMatch(/^\[\s*\d+\.\ds\] \S+\s+\S+\s+-> /m);
    expect(demo.output()).toMatch(/vigil demo: dashboard on http:\/\/127\.0\.0\.1:\d+\//);
    await stop(demo.child, 'SIGINT');
    expect(demo.output()).toMatch(/^Summary$/m);
    expect(demo.output()).not.toMatch(/EBADENGINE/);
  }, 240_000);

  test('run a gateway: profiles, devices, an action upstream, a suppression, and a signed rules bundle', async () => {
    const build = await sh('npm ci && npm run build', 'npm run build');
    expect(build.code, build.out).toBe(0);
    covered.add('npm run build'); // the same command, in the Development section

    writeFileSync(join(shell.dir, 'profiles.ndjson'), '{"id": "dev-1", "maxTemp": 50, "site": "north"}\n');
    const imported = await sh('npx vigil profiles import profiles.ndjson --data ./data');
    expect(imported.out).toMatch(/^imported 1 profiles from profiles\.ndjson/);

    const cloudHost = `-h 127.0.0.1 -p ${cloud.address.port}`;
    const runLine = 'npx vigil run --data ./data --upstream mqtt://cloud.example:1883 --gateway-id gw1';
    const loopback = '--mqtt-host 127.0.0.1 --mqtt-port 0 --http-port 0';
    const cloudUrl = `mqtt://127.0.0.1:${cloud.address.port}`;
    let gateway = background(
      runLine,
      `${runLine.replace('mqtt://cloud.example:1883', cloudUrl)} ${loopback}`,
    );
    await expect
      .poll(() => gateway.output(), { timeout: 20_000 })
      .toMatch(/http listening on 127\.0\.0\.1:\d+/);
    expect(gateway.output()).toMatch(/mqtt listening on 127\.0\.0\.1:\d+/);
    expect(gateway.output()).not.toMatch(/EBADENGINE/);

    const subLine = "mosquitto_sub -h cloud.example -t 'vigil/gw1/actions' &";
    const actions = background(subLine, subLine.replace('-h cloud.example', cloudHost).replace(' &', ''));
    const addLine = 'SECRET=$(npx vigil devices add dev-1 --data ./data | tail -n 1)';
    const pubLine = `mosquitto_pub -p 1883 -i dev-1 -u dev-1 -P "$SECRET" -t devices/dev-1/events/telemetry -m '{"temp":61,"bat":3.9}'`;
    const port = mqttPortOf(gateway.output());
    const published = await sh(
      addLine,
      `${addLine}\n${pubLine.replace('-p 1883', `-p ${port}`)}\n${pubLine.replace('-p 1883', `-p ${port}`)}`,
    );
    covered.add(pubLine);
    expect(published.code, published.out).toBe(0);
    await expect.poll(() => actions.output(), { timeout: 10_000 }).toMatch(/"scenario":"overheat"/);
    const action = JSON.parse(actions.output().split('\n')[0] ?? '') as Record<string, unknown>;
    expect(action).toMatchObject({
      gateway: 'gw1',
      scenario: 'overheat',
      action: 'inspect-device',
      actor: 'dev-1',
      payload: { temp: 61, site: 'north' },
    });

    expect((await sh('npx vigil profiles import profiles.ndjson --data ./data')).out).toMatch(
      /imported 1 profiles/,
    );
    expect(JSON.parse((await sh('npx vigil profiles get dev-1 --data ./data')).out)).toEqual({
      id: 'dev-1',
      maxTemp: 50,
      site: 'north',
    });
    // The second overheat right after the first is held back by the policy's cooldown.
    const log = await sh('npx vigil actions log --actor dev-1 --suppressed --data ./data');
    expect(log.out).toMatch(
      /^\S+Z\s+suppressed cooldown\s+overheat\s+actor=dev-1 category=maintenance priority=70 id=/m,
    );

    const keygen = await sh('npx vigil keygen --out keys/');
    expect(keygen.out).toMatch(/public key\s+keys\/public\.pem/);
    const bundle = await sh(
      'npx vigil rules bundle rules/ --key keys/private.pem --version 7 --out rules-v7.bundle',
    );
    expect(bundle.out).toMatch(/^rules-v7\.bundle: bundle version 7, .* signed by key/);

    // "A gateway started with --trusted-key keys/public.pem" takes it.
    await stop(gateway.child);
    gateway = background(
      runLine,
      `${runLine.replace('mqtt://cloud.example:1883', cloudUrl)} ${loopback} --trusted-key keys/public.pem`,
    );
    await expect.poll(() => gateway.output(), { timeout: 20_000 }).toMatch(/http listening/);
    const statusLine = "mosquitto_sub -h cloud.example -t 'vigil/+/rules/status' -v &";
    const status = background(
      statusLine,
      statusLine.replace('-h cloud.example', cloudHost).replace(' &', ''),
    );
    await new Promise((r) => setTimeout(r, 500));
    const pushLine = 'mosquitto_pub -h cloud.example -t vigil/gw1/rules -r -q 1 -f rules-v7.bundle';
    expect((await sh(pushLine, pushLine.replace('-h cloud.example', cloudHost))).code).toBe(0);
    await expect
      .poll(status.output, { timeout: 15_000 })
      .toMatch(/^vigil\/gw1\/rules\/status \{"gateway":"gw1","version":7,"status":"applied"/m);
    await stop(gateway.child);
  }, 240_000);

  test('every README command was run here or is skipped with its reason', () => {
    const missing = readmeCommands().filter((c) => !covered.has(c) && SKIPPED[c] === undefined);
    expect(missing).toEqual([]);
  });
});

if (!hasMosquitto()) console.warn(`README examples skipped: ${MOSQUITTO_MISSING}`);
