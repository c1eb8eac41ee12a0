// aedes-persistence's abstract test suite run against the edge thread's persistence (`threads: 2`): EdgeSessions,
// its calls and their answers encoded and decoded as they cross between the threads, answered by MqttSessions
// over a real LevelDB. Run under node:test with the store's own suite (`npm run test:persistence`).
import { createRequire } from 'node:module';
import { after, test, type TestContext } from 'node:test';
import { decode, encode } from 'cbor-x';
import { EdgeSessions } from '../../src/app/edge-sessions.js';
import { asPacket } from '../../src/app/edge-wire.js';
import { serveSessions } from '../../src/app/session-service.js';
import { MqttSessions, openStore } from '../../src/store/index.js';
import { tempDir } from '../helpers/temp.js';

type AbstractSuite = (opts: {
  test: typeof test;
  persistence: () => Promise<EdgeSessions>;
  testAsync: boolean;
}) => void;

const require = createRequire(import.meta.url);
const abstractSuite = require('aedes-persistence/abstract.js') as AbstractSuite;

const dir = await tempDir();
const store = await openStore(dir.path);
after(async () => {
  await store.close();
  await dir.remove();
});

/** A value as the other thread reads it: encoded, decoded, its payloads copied out. */
function crossed<T>(value: T): T {
  const back = decode(encode(value)) as T;
  return (Array.isArray(back) ? back.map(asPacket) : asPacket(back)) as T;
}

// This test changes the broker's id under a running persistence; the copy on the other thread keeps the id it
// was set up with. aedes never changes its id.
const NOT_ACROSS_THREADS = new Set(['stream all will message for unknown brokers']);
const suiteTest = ((name: string, fn: (t: TestContext) => Promise<void>) =>
  NOT_ACROSS_THREADS.has(name) ? test.skip(name, fn) : test(name, fn)) as typeof test;

let instances = 0;
abstractSuite({
  test: suiteTest,
  persistence: async () => {
    const sessions = await MqttSessions.open(store.db, { name: `edge-abstract-${instances++}` });
    const serve = serveSessions(sessions);
    const call = async (method: Parameters<typeof serve>[0], args: unknown[]) =>
      crossed(await serve(method, crossed(args)));
    return new EdgeSessions(call, (method, args) => void call(method, args));
  },
  testAsync: true,
});
