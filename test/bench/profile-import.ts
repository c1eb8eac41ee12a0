// Imports generated profiles NDJSON into a fresh LevelDB and prints the rate.
// node --import tsx test/bench/profile-import.ts [--profiles 1000000] [--batch 1000[,5000...]] [--api]
// --api also imports through the gateway's HTTP route (the profile routes on 127.0.0.1), as `vigil profiles
// import` does when a gateway holds the data directory.
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { GatewayClient, HttpApi, HttpMetrics, mountProfileRoutes } from '../../src/api/index.js';
import { cborInUse, importProfiles, openStore } from '../../src/store/index.js';

const { values } = parseArgs({
  options: {
    profiles: { type: 'string', default: '1000000' },
    batch: { type: 'string', default: '1000' },
    api: { type: 'boolean', default: false },
  },
});
const total = Number(values.profiles);
const batchSizes = values.batch.split(',').map(Number);

const SITES = ['north', 'south', 'east', 'west', 'central'];
const MODELS = ['s-100', 's-200', 'm-300', 'router-x', 'meter-2'];

async function generate(path: string, n: number): Promise<void> {
  const out = createWriteStream(path);
  let seed = 42;
  const rand = (): number => {
    seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648;
    return seed / 2_147_483_648;
  };
  let chunk = '';
  for (let i = 0; i < n; i++) {
    const profile = {
      id: `dev-${String(i).padStart(7, '0')}`,
      maxTemp: 40 + Math.floor(rand() * 30),
      site: SITES[i % SITES.length],
      customer: `cust-${Math.floor(rand() * 400_000)}`,
      model: MODELS[Math.floor(rand() * MODELS.length)],
      installedAt: 1_700_000_000_000 + Math.floor(rand() * 3e10),
    };
    chunk += `${JSON.stringify(profile)}\n`;
    if (chunk.length > 1 << 20) {
      if (!out.write(chunk)) await once(out, 'drain');
      chunk = '';
    }
  }
  out.end(chunk);
  await once(out, 'finish');
}

const dir = await mkdtemp(join(tmpdir(), 'vigil-bench-import-'));
try {
  const file = join(dir, 'profiles.ndjson');
  const genStart = performance.now();
  await generate(file, total);
  const { size } = await stat(file);
  console.log(
    `generated ${total.toLocaleString('en-US')} profiles, ${(size / 1048576).toFixed(1)} MB, ` +
      `in ${((performance.now() - genStart) / 1000).toFixed(1)} s; cbor-x: ${cborInUse()}`,
  );
  for (const [i, batchSize] of batchSizes.entries()) {
    const store = await openStore(join(dir, `db-${i}`));
    try {
      const summary = await importProfiles(store, createReadStream(file, { highWaterMark: 1 << 20 }), {
        batchSize,
      });
      const seconds = summary.elapsedMs / 1000;
      console.log(
        `batch ${batchSize}: imported ${summary.imported.toLocaleString('en-US')} (rejected ${summary.rejected}) ` +
          `in ${seconds.toFixed(2)} s = ${Math.round(summary.imported / seconds).toLocaleString('en-US')} profiles/s; ` +
          `rss ${(process.memoryUsage.rss() / 1048576).toFixed(0)} MB`,
      );
      const countStart = performance.now();
      const counted = await store.profiles.count();
      console.log(
        `  count() = ${counted.toLocaleString('en-US')} in ${(performance.now() - countStart).toFixed(0)} ms`,
      );
    } finally {
      await store.close();
    }
  }
  if (values.api) {
    const store = await openStore(join(dir, 'db-api'));
    const api = new HttpApi({ logger: pino({ level: 'silent' }), metrics: new HttpMetrics(new Registry()) });
    mountProfileRoutes(api, store);
    const { port } = await api.listen('127.0.0.1', 0);
    try {
      const started = performance.now();
      const summary = await new GatewayClient({
        pid: process.pid,
        http: `http://127.0.0.1:${port}`,
      }).importProfiles(createReadStream(file, { highWaterMark: 1 << 20 }));
      const seconds = (performance.now() - started) / 1000;
      console.log(
        `through the HTTP API: imported ${summary.imported.toLocaleString('en-US')} in ${seconds.toFixed(2)} s = ` +
          `${Math.round(summary.imported / seconds).toLocaleString('en-US')} profiles/s`,
      );
    } finally {
      await api.close();
      await store.close();
    }
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}
