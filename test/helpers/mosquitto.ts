import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { freePort } from './ports.js';
import { tempDir } from './temp.js';

const MOSQUITTO = '/usr/sbin/mosquitto';

export const MOSQUITTO_MISSING =
  'Debian mosquitto is not installed; these tests are skipped. Install it with: apt-get install -y mosquitto mosquitto-clients';

export function hasMosquitto(): boolean {
  return existsSync(MOSQUITTO) && spawnSync('which', ['mosquitto_pub']).status === 0;
}

export interface Mosquitto {
  readonly port: number;
  readonly url: string;
  /** Stops it for good and deletes its files. */
  stop(): Promise<void>;
  /** Stops the process but keeps its files: the cloud going down. */
  halt(): Promise<void>;
  /** Starts it again on the same port (the cloud coming back), with its persisted sessions. */
  resume(): Promise<void>;
}

/** Starts Debian's mosquitto on 127.0.0.1 and a free port, anonymous, with TCP_NODELAY. */
export async function startMosquitto(opts: { persistent?: boolean } = {}): Promise<Mosquitto> {
  const port = await freePort();
  const dir = await tempDir('vigil-mosquitto-');
  const conf = join(dir.path, 'mosquitto.conf');
  // Started as root, mosquitto drops to its own user, which must be able to write its database here.
  await chmod(dir.path, 0o777);
  // Persistence keeps a subscriber's session and its queued QoS 1 messages across a restart.
  const persistence = opts.persistent
    ? `persistence true\npersistence_location ${dir.path}/\nautosave_interval 1\n`
    : 'persistence false\n';
  await writeFile(
    conf,
    `listener ${port} 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\n${persistence}`,
  );
  let child: ChildProcess | undefined;
  const start = async () => {
    child = spawn(MOSQUITTO, ['-c', conf], { stdio: 'ignore' });
    await waitForPort(port);
  };
  const halt = async () => {
    const c = child;
    child = undefined;
    if (!c || c.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      c.once('exit', () => resolve());
      c.kill('SIGTERM');
    });
  };
  await start();
  return {
    port,
    url: `mqtt://127.0.0.1:${port}`,
    stop: async () => {
      await halt();
      await dir.remove();
    },
    halt,
    resume: async () => {
      await halt();
      await start();
    },
  };
}

/** Resolves once something accepts TCP connections on the port. */
export async function waitForPort(port: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline)
      throw new Error(`nothing listening on 127.0.0.1:${port} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Runs mosquitto_pub with the given arguments; resolves with its exit code. */
export function mosquittoPub(args: string[]): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn('mosquitto_pub', args, { stdio: 'ignore' });
    child.once('exit', (code) => resolve(code ?? -1));
  });
}
