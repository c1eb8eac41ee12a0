import { Readable } from 'node:stream';
import type { MqttSessions } from '../store/index.js';
import { asPacket, SESSION_METHODS, type SessionMethod } from './edge-wire.js';

const METHODS: ReadonlySet<string> = new Set(SESSION_METHODS);

/**
 * Answers the edge thread's persistence calls (`EdgeSessions`, `threads: 2`) with this thread's `MqttSessions`:
 * `setup` with the subscriptions it holds (the edge thread keeps a copy), a stream as one list, packets with their
 * payloads as `Buffer`s.
 */
export function serveSessions(
  sessions: MqttSessions,
): (method: SessionMethod, args: unknown[]) => Promise<unknown> {
  const calls = sessions as unknown as Record<SessionMethod, (...args: unknown[]) => unknown>;
  return async (method, args) => {
    if (!METHODS.has(method)) throw new Error(`no session call ${String(method)}`);
    if (method === 'setup') {
      await sessions.setup(args[0] as { id: string });
      return sessions.subscriptionsHeld();
    }
    const result = await calls[method].apply(sessions, args.map(asPacket));
    return result instanceof Readable ? result.toArray() : (result ?? null);
  };
}
