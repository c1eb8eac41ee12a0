import { createRequire } from 'node:module';

/** The part of the `debug` package this module relies on. */
export interface DebugFactory {
  (namespace: string): DebugInstance;
}
interface DebugInstance {
  (...args: unknown[]): void;
  readonly enabled: boolean;
}
type Log = (
  a?: unknown,
  b?: unknown,
  c?: unknown,
  d?: unknown,
  e?: unknown,
  f?: unknown,
  g?: unknown,
) => void;

/**
 * `debug` (4.x) collects a call's arguments into an array before it checks whether its namespace is enabled.
 * mqtt-packet calls it unguarded some twenty times per packet it parses, so with debugging off every publish
 * still allocates about 2 KB of argument arrays (docs/benchmarks.md). This factory returns instances that check
 * first: fixed parameters cost nothing when disabled; enabled, the arguments go to the real instance (trailing
 * `undefined`s dropped, as the caller passed at most seven). Everything else (`enable`, `extend`, `namespace`,
 * setting `enabled`) is the real one's, through the prototype chain.
 */
export function quietDebugFactory(real: DebugFactory): DebugFactory {
  const factory = function quietDebug(namespace: string): DebugInstance {
    const inner = real(namespace);
    const log: Log = (a, b, c, d, e, f, g) => {
      if (!inner.enabled) return;
      const args = [a, b, c, d, e, f, g];
      let n = args.length;
      while (n > 1 && args[n - 1] === undefined) n--;
      inner(...args.slice(0, n));
    };
    return Object.setPrototypeOf(log, inner) as DebugInstance;
  };
  return Object.setPrototypeOf(factory, real) as DebugFactory;
}

/**
 * Has mqtt-packet (aedes's parser) get quiet `debug` instances: must run before aedes is loaded. Does nothing where
 * modules are not loaded from node_modules (the single executable's bundle) or mqtt-packet was loaded already.
 */
function installForMqttPacket(): void {
  try {
    const fromAedes = createRequire(createRequire(import.meta.url).resolve('aedes'));
    const fromPacket = createRequire(fromAedes.resolve('mqtt-packet'));
    if (fromPacket.cache[fromPacket.resolve('mqtt-packet/parser.js')] !== undefined) return;
    const path = fromPacket.resolve('debug');
    const real = fromPacket('debug') as DebugFactory;
    const cached = fromPacket.cache[path];
    if (cached === undefined || cached.exports !== real) return;
    cached.exports = quietDebugFactory(real);
  } catch {
    // Not resolvable this way (bundled): aedes runs with the `debug` it has.
  }
}

installForMqttPacket();
