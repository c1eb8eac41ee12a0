import { createRequire } from 'node:module';
import { format } from 'node:util';
import { afterEach, expect, test } from 'vitest';
import { quietDebugFactory, type DebugFactory } from '../../src/broker/quiet-debug.js';

interface RealDebug extends DebugFactory {
  debug: RealDebug;
  enable(namespaces: string): void;
  disable(): string;
  log: (...args: unknown[]) => void;
  formatArgs: (this: unknown, args: unknown[]) => void;
}

// `.debug` is the package's own factory, also where loading the broker already put the quiet one in front of it.
const real = (createRequire(import.meta.url)('debug') as RealDebug).debug;
const saved = { log: real.log, formatArgs: real.formatArgs };

afterEach(() => {
  real.disable();
  real.log = saved.log;
  real.formatArgs = saved.formatArgs;
});

/** Captures what the real `debug` would print, formatted but without colours or time. */
function capture(): string[] {
  const out: string[] = [];
  real.formatArgs = function (this: unknown) {
    // Keep the arguments as they were formatted: no namespace prefix, no diff.
  };
  real.log = (...args: unknown[]) => out.push(format(...args));
  return out;
}

test('a disabled namespace prints nothing; enabled, it prints what the real debug prints, format applied', () => {
  const out = capture();
  const debug = quietDebugFactory(real)('vigil-test:parser');
  debug('parse: packet.length: %d, list: %d', 12, 3);
  expect(out).toEqual([]);

  real.enable('vigil-test:*');
  debug('parse: packet.length: %d, list: %d', 12, 3);
  debug('_parseDisconnect');
  expect(out).toEqual(['parse: packet.length: 12, list: 3', '_parseDisconnect']);
});

test('the instance is the real one in all but the call: namespace, extend and the enabled override', () => {
  const out = capture();
  const quiet = quietDebugFactory(real);
  const debug = quiet('vigil-test:writer') as ReturnType<DebugFactory> & {
    namespace: string;
    enabled: boolean;
  };
  expect(debug.namespace).toBe('vigil-test:writer');
  expect(debug.enabled).toBe(false);
  debug.enabled = true;
  debug('forced on');
  expect(out).toEqual(['forced on']);
  expect(typeof (quiet as unknown as RealDebug).enable).toBe('function');
});

test("aedes's mqtt-packet gets the quiet factory, and its parser's debug output still comes out when enabled", async () => {
  await import('../../src/broker/index.js');
  const fromAedes = createRequire(createRequire(import.meta.url).resolve('aedes'));
  const fromPacket = createRequire(fromAedes.resolve('mqtt-packet'));
  const used = fromPacket('debug') as RealDebug;
  expect(used).not.toBe(used.debug);
  expect((used as unknown as { name: string }).name).toBe('quietDebug');

  const out = capture();
  const mqttPacket = fromPacket('mqtt-packet') as {
    parser: (opts: object) => { parse(buf: Buffer): number; on(ev: string, fn: () => void): void };
  };
  const parser = mqttPacket.parser({ protocolVersion: 4 });
  parser.on('packet', () => undefined);
  const publish = Buffer.from([0x30, 0x07, 0x00, 0x01, 0x74, 0x68, 0x65, 0x6c, 0x6f]);
  parser.parse(publish);
  expect(out).toEqual([]);
  real.enable('mqtt-packet:parser');
  parser.parse(publish);
  expect(out).toContain('_parsePublish');
});
