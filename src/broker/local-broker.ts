import { pino, type Logger } from 'pino';
import { startBroker } from './broker.js';
import type { Broker } from './types.js';

const NO_HOOKS = {
  onPublish: () => undefined,
  onConnected: () => undefined,
  onDisconnected: () => undefined,
};

/**
 * A plain MQTT broker on 127.0.0.1 with no device handling: the local "cloud" of the demo and the
 * tests. Subscribe in process with `broker.subscribe` to miss nothing published to it.
 */
export function startLocalBroker(
  opts: { port?: number; maxPacketBytes?: number; logger?: Logger } = {},
): Promise<Broker> {
  return startBroker({
    host: '127.0.0.1',
    port: opts.port ?? 0,
    maxPacketBytes: opts.maxPacketBytes ?? 1024 * 1024,
    logger: opts.logger ?? pino({ level: 'silent' }),
    hooks: NO_HOOKS,
  });
}
