import { Aedes } from 'aedes';
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterEach, expect, test } from 'vitest';

const root = fileURLToPath(new URL('../..', import.meta.url));

let aedes: Aedes | undefined;
let server: Server | undefined;
let child: ChildProcess | undefined;

afterEach(async () => {
  if (child?.exitCode === null && child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
  child = undefined;
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  await new Promise<void>((resolve) => (aedes ? aedes.close(() => resolve()) : resolve()));
  server = undefined;
  aedes = undefined;
});

async function startBroker(): Promise<string> {
  aedes = await Aedes.createBroker();
  server = createServer(aedes.handle);
  await new Promise<void>((resolve) => server?.listen(0, '127.0.0.1', resolve));
  return `mqtt://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

function runCli(args: string[]): { proc: ChildProcess; out: { stdout: string; stderr: string } } {
  const proc = spawn(process.execPath, ['--import', 'tsx', 'firmware-sim/cli.ts', ...args], { cwd: root });
  const out = { stdout: '', stderr: '' };
  proc.stdout?.on('data', (c: Buffer) => (out.stdout += c.toString()));
  proc.stderr?.on('data', (c: Buffer) => (out.stderr += c.toString()));
  child = proc;
  return { proc, out };
}

const exited = (proc: ChildProcess): Promise<number | null> =>
  new Promise((resolve) => {
    if (proc.exitCode !== null) resolve(proc.exitCode);
    else proc.once('exit', (code) => resolve(code));
  });

async function until(condition: () => boolean, timeoutMs = 15_000): Promise<void> {
  const giveUpAt = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > giveUpAt) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

test('npm run sim: runs for its duration, prints the plan, progress and the summary', async () => {
  const url = await startBroker();
  let published = 0;
  aedes?.on('publish', (_packet, client) => {
    if (client) published++;
  });
  const { proc, out } = runCli([
    ...['--url', url, '--devices', '6', '--rate', '60', '--duration', '1s', '--progress', '300ms'],
    ...['--never-registered', '1', '--heat-bursts', '1', '--format', 'cbor'],
  ]);
  expect(await exited(proc)).toBe(0);
  expect(out.stdout).toMatch(
    /^sim: 6 devices -> mqtt:\/\/127\.0\.0\.1:\d+, 60 events\/s for 1 s, cbor, QoS 0, seed 1/,
  );
  expect(out.stdout).toMatch(/never register: dev-\d+\n/);
  expect(out.stdout).toMatch(/heat bursts: dev-\d+\n/);
  expect(out.stdout).toMatch(/connected 5\/5/);
  expect(out.stdout).toMatch(/published {2}60 telemetry in 1\.\d s = \d+ events\/s · failed 0/);
  expect(out.stderr).toMatch(/sim +\d+\.\ds {2}connected 5\/5 {2}published \d+/);
  await until(() => aedes?.connectedClients === 0, 5_000); // the broker has read every socket to its end
  expect(published).toBe(60);
});

test('Ctrl-C stops an endless run cleanly and still prints the summary', async () => {
  const url = await startBroker();
  const { proc, out } = runCli([
    '--url',
    url,
    '--devices',
    '5',
    '--rate',
    '50',
    '--duration',
    'forever',
    '--progress',
    '200ms',
  ]);
  await until(() => /published [1-9]\d*/.test(out.stderr));
  expect(aedes?.connectedClients).toBe(5);
  proc.kill('SIGINT');
  expect(await exited(proc)).toBe(0);
  expect(out.stderr).toContain('sim: stopping');
  expect(out.stdout).toMatch(/published {2}[1-9]\d* telemetry/);
  expect(out.stdout).toContain('stopped early');
  await until(() => aedes?.connectedClients === 0, 5_000);
});

test('an unreachable broker is reported and the exit code says so', async () => {
  const url = await startBroker();
  await new Promise<void>((resolve) => server?.close(() => resolve()));
  server = undefined;
  const { proc, out } = runCli(['--url', url, '--devices', '3', '--duration', '1m']);
  expect(await exited(proc)).toBe(1);
  expect(out.stderr).toMatch(
    /vigil sim: no device could connect to mqtt:\/\/127\.0\.0\.1:\d+ \(dev-\d+: .*ECONNREFUSED/,
  );
});
