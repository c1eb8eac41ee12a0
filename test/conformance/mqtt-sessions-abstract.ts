// aedes-persistence's abstract test suite, which every aedes persistence is held to, run against MqttSessions over
// a real LevelDB. It is written for node:test, so it runs under it: `npm run test:persistence` (part of `npm test`).
import { createRequire } from 'node:module';
import { after, test } from 'node:test';
import { MqttSessions, openStore } from '../../src/store/index.js';
import { tempDir } from '../helpers/temp.js';

type AbstractSuite = (opts: {
  test: typeof test;
  persistence: () => Promise<MqttSessions>;
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

let instances = 0;
abstractSuite({
  test,
  // Each test gets a store of its own: a sublevel no other test writes.
  persistence: () => MqttSessions.open(store.db, { name: `abstract-${instances++}` }),
  testAsync: true,
});
