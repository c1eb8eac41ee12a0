import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { GenRequest, GenResponse } from './load-protocol.js';

const ENTRY = fileURLToPath(new URL('./load-gen.ts', import.meta.url));

/** The load generator's child process, asked one thing at a time. */
export class LoadGenClient {
  private constructor(private readonly child: ChildProcess) {}

  static start(): LoadGenClient {
    const child = fork(ENTRY, [], {
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    return new LoadGenClient(child);
  }

  get pid(): number {
    return this.child.pid ?? 0;
  }

  /** Sends one request and resolves to its answer; an `error` answer or the child's exit rejects. */
  request<K extends GenResponse['kind']>(
    req: GenRequest,
    expect: K,
  ): Promise<Extract<GenResponse, { kind: K }>> {
    return new Promise((resolve, reject) => {
      const onExit = (code: number | null): void => {
        this.child.off('message', onMessage);
        reject(new Error(`the load generator exited (${code}) during '${req.kind}'`));
      };
      const onMessage = (res: GenResponse): void => {
        this.child.off('exit', onExit);
        this.child.off('message', onMessage);
        if (res.kind === 'error') reject(new Error(`load generator: ${res.message}`));
        else if (res.kind !== expect)
          reject(new Error(`load generator answered '${res.kind}' to '${req.kind}'`));
        else resolve(res as Extract<GenResponse, { kind: K }>);
      };
      this.child.on('message', onMessage);
      this.child.once('exit', onExit);
      this.child.send(req);
    });
  }

  /** Closes its connections and ends it. */
  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    try {
      await this.request({ kind: 'close' }, 'closed');
    } catch {
      // It is going away either way.
    }
    this.child.disconnect();
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(timer);
  }
}
