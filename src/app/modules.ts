import type { Logger } from 'pino';

/** What every started module gives back: a way to stop it. */
export interface Started {
  stop(): Promise<void> | void;
}

/**
 * The modules of a gateway, in the order they were started. Each is started with what it needs passed in (the
 * modules started before it, never one after); stopping runs in reverse, so a module stops while everything it
 * uses still runs. A module that fails to stop is logged and the others still stop.
 */
export class Modules {
  private readonly started: Array<{ name: string; stop: () => Promise<void> | void }> = [];

  constructor(private readonly logger: Logger) {}

  async start<T extends Started>(name: string, start: () => Promise<T> | T): Promise<T> {
    const module = await start();
    this.started.push({ name, stop: () => module.stop() });
    return module;
  }

  /** Registers a stop for something opened without a module of its own. */
  onStop(name: string, stop: () => Promise<void> | void): void {
    this.started.push({ name, stop });
  }

  async stopAll(): Promise<void> {
    for (const { name, stop } of this.started.splice(0).reverse()) {
      try {
        await stop();
      } catch (err) {
        this.logger.error({ err, module: name }, 'error while stopping');
      }
    }
  }
}
