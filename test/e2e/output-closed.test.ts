import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, test } from 'vitest';
import { readGatewayInfo } from '../../src/api/gateway-info.js';
import { tempDir } from '../helpers/temp.js';
import { until } from '../helpers/wait.js';

const CLI = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** Spawns `node ARGS` with standard output on a pipe whose reading end this side closes at the first byte. */
function spawnWithOutputClosed(args: string[], cwd?: string) {
  const child = spawn(process.execPath, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  cleanups.push(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await new Promise((resolve) => child.once('exit', resolve));
    }
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdout.once('data', () => child.stdout.destroy());
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, exited, stderr: () => stderr };
}

describe('standard output whose reader went away', () => {
  test('the gateway keeps serving, reloads its rules, and stops cleanly on SIGTERM', async () => {
    const dir = await tempDir();
    cleanups.push(() => dir.remove());
    const data = join(dir.path, 'data');
    // Its first log line closes the pipe: the ports it prints afterwards, and every later log line, hit EPIPE.
    const gw = spawnWithOutputClosed([
      CLI,
      'run',
      '--mqtt-host',
      '127.0.0.1',
      '--mqtt-port',
      '0',
      '--http-port',
      '0',
      '--log-level',
      'info',
      '--data',
      data,
    ]);
    let exitCode: number | null | undefined;
    void gw.exited.then((code) => (exitCode = code));
    const healthy = async () => {
      const info = await readGatewayInfo(data).catch(() => undefined);
      if (info === undefined) return false;
      const res = await fetch(`${info.http}/healthz`).catch(() => undefined);
      return res?.ok === true;
    };
    await until(
      'the gateway to answer /healthz',
      async () => exitCode !== undefined || (await healthy()),
      20_000,
    );
    expect(exitCode, gw.stderr()).toBeUndefined();
    // The ports went out right after the start; a reload logs at info, into the closed pipe too.
    gw.child.kill('SIGHUP');
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect(exitCode, gw.stderr()).toBeUndefined();
    expect(await healthy()).toBe(true);
    gw.child.kill('SIGTERM');
    expect(await gw.exited).toBe(0);
  });

  test('a fatal log line does not hang the process when an earlier line is still being written', async () => {
    // pino writes asynchronously and flushes synchronously after a fatal line; with the reader gone, that flush
    // must fail and return, not retry forever (the gateway's handler of uncaught exceptions logs fatal, then exits).
    const script = [
      "const pino = require('pino');",
      'const logger = pino();',
      "logger.info('first');",
      "setTimeout(() => { logger.info('in flight'); logger.fatal('fatal'); process.exit(3); }, 300);",
    ].join('\n');
    const proc = spawnWithOutputClosed(['-e', script], ROOT);
    const timeout = setTimeout(() => proc.child.kill('SIGKILL'), 10_000);
    const code = await proc.exited;
    clearTimeout(timeout);
    expect(code, proc.stderr()).toBe(3);
  });
});
