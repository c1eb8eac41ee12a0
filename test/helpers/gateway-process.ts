import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const CLI = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));

export interface GatewayProcess {
  readonly child: ChildProcess;
  readonly mqttPort: number;
  readonly httpPort: number;
  /** Everything it printed so far (stdout and stderr). */
  output(): string;
  /** SIGTERM, resolves with the exit code. */
  stop(): Promise<number | null>;
  /** SIGKILL: a crash. */
  kill(): Promise<void>;
}

// A test run that is cut short (a timeout, Ctrl-C) must not leave gateways behind.
const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of running) if (child.exitCode === null) child.kill('SIGKILL');
});

/** Runs the built CLI (`node dist/cli.js run ...`) and waits for it to print its bound ports. */
export async function startGatewayProcess(
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<GatewayProcess> {
  const child = spawn(
    process.execPath,
    [CLI, 'run', '--mqtt-host', '127.0.0.1', '--log-level', 'warn', ...args],
    {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  running.add(child);
  child.once('exit', () => running.delete(child));
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const ports = await new Promise<{ mqtt: number; http: number }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`gateway did not start in 20 s:\n${out}`)), 20_000);
    const check = () => {
      const mqtt = /mqtt listening on \S+:(\d+)/.exec(out);
      const http = /http listening on \S+:(\d+)/.exec(out);
      if (mqtt && http) {
        clearTimeout(timer);
        resolve({ mqtt: Number(mqtt[1]), http: Number(http[1]) });
      }
    };
    child.stdout.on('data', check);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`gateway exited with ${code} before it started:\n${out}`));
    });
  });
  return {
    child,
    mqttPort: ports.mqtt,
    httpPort: ports.http,
    output: () => out,
    stop: async () => {
      if (child.exitCode === null) child.kill('SIGTERM');
      return exited;
    },
    kill: async () => {
      if (child.exitCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}
