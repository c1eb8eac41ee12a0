import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterEach, describe, expect, test, type TestContext } from 'vitest';
import type { Action } from '../../src/shared/index.js';
import { CredentialStore, hashSecret } from '../../src/credentials/index.js';
import { AuditLog, openStore, type Store } from '../../src/store/index.js';
import { mountTmpfs, type Tmpfs } from '../helpers/tmpfs.js';
import { captureLogs } from './durability-faults.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function tmpfs(ctx: TestContext, bytes: number): Promise<Tmpfs> {
  const mounted = await mountTmpfs(bytes);
  if (typeof mounted === 'string') ctx.skip(mounted);
  cleanups.push(() => mounted.unmount());
  return mounted;
}

async function waitFor(predicate: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function action(n: number): Action {
  return {
    id: `a${n}`,
    gateway: 'gw1',
    scenario: 'reading',
    action: 'log-reading',
    actor: 'dev-1',
    priority: 50,
    category: 'maintenance',
    decidedAt: 1_000 + n,
    eventAt: 990 + n,
    payload: { n },
  };
}

// Not compressible, so that LevelDB's tables take the room their contents need.
const noise = randomBytes(64 * 1024).toString('base64');
const profile = (n: number) => ({
  site: 'north',
  n,
  note: noise.slice((n * 397) % 60_000, ((n * 397) % 60_000) + 400),
});

describe('LevelDB on a disk that fills up', () => {
  test('a failed flush stops its writes, reads go on; once there is room it is reopened under the same handles and nothing written is lost', async (ctx) => {
    const disk = await tmpfs(ctx, 8 * 1024 * 1024);
    const dir = join(disk.path, 'data');
    const { logger, lines } = captureLogs();
    // A small write buffer: LevelDB flushes its memtable into a table often, and a flush that finds the disk
    // full leaves the error that fails every later write until the database is reopened.
    let store: Store = await openStore(dir, {
      logger,
      writeBufferBytes: 64 * 1024,
      writeFault: { retryMinMs: 20, retryMaxMs: 200 },
    });
    cleanups.push(() => store.close());
    const audit = await AuditLog.open(store.sublevels.audit, { flushEveryMs: 10 });
    cleanups.push(() => audit.close());
    const credentials = new CredentialStore(store.sublevels.creds);
    await credentials.setHash('dev-1', hashSecret('s1'), 'upsert');
    for (let n = 0; n < 5; n++) await store.outbox.add(action(n));

    // Room for the log, not for the table the memtable is flushed into: the flush fails in the background,
    // and LevelDB keeps that error for every later write until it is reopened.
    disk.fill(96 * 1024);
    const written: number[] = [];
    let failure: unknown;
    for (let n = 0; n < 20_000 && failure === undefined; n++) {
      try {
        await store.profiles.put(`p${n}`, profile(n));
        written.push(n);
      } catch (err) {
        failure = err;
      }
    }
    expect(failure, 'the disk never filled').toBeDefined();
    expect(String(failure)).toMatch(/\.ldb: No space left on device/);
    expect(store.health()).toMatchObject({ state: 'refusing-writes', fault: { diskFull: true } });
    expect(lines.some((l) => l.level === 50 && String(l.msg).startsWith('STORAGE FAULT'))).toBe(true);

    // Writes are refused at once, through every handle; reads go on.
    await expect(store.outbox.add(action(100))).rejects.toThrow(/reopened/);
    await expect(credentials.setHash('dev-2', hashSecret('s2'), 'upsert')).rejects.toThrow();
    expect(store.outbox.next(1_000).some((a) => a.id === 'a100')).toBe(false);
    audit.append({
      at: 1,
      id: 'a1',
      scenario: 'reading',
      actor: 'dev-1',
      category: 'maintenance',
      priority: 50,
    });
    await audit.flush();
    expect(audit.lost).toBe(1);
    expect(await credentials.verify('dev-1', 'wrong')).toBe('wrong-secret');
    expect(await store.sublevels.profiles.get(`p${written[0]}`)).toEqual(profile(written[0] as number));
    // Still refused while the disk is full, whatever the time.
    await new Promise((r) => setTimeout(r, 300));
    expect(store.health().state).toBe('refusing-writes');
    await expect(store.profiles.put('late', profile(0))).rejects.toThrow();

    await disk.drain();
    await waitFor(() => store.health().state === 'ok', 5_000, 'LevelDB reopened');
    expect(store.health().reopens).toBe(1);
    expect(lines.some((l) => String(l.msg).startsWith('LevelDB reopened'))).toBe(true);
    // The same objects write again.
    await store.outbox.add(action(100));
    await credentials.setHash('dev-2', hashSecret('s2'), 'upsert');
    await store.profiles.put('late', profile(0));
    audit.append({
      at: 2,
      id: 'a2',
      scenario: 'reading',
      actor: 'dev-1',
      category: 'maintenance',
      priority: 50,
    });
    await audit.flush();
    expect(audit.lost).toBe(1);
    expect((await audit.list()).map((e) => e.id)).toContain('a2');

    // Opened anew: every write that was reported done is there.
    await audit.close();
    await store.close();
    store = await openStore(dir);
    for (const n of written) expect(await store.sublevels.profiles.get(`p${n}`)).toEqual(profile(n));
    expect(await store.profiles.get('late')).toEqual(profile(0));
    expect(store.outbox.next(100).map((a) => a.id)).toEqual(['a0', 'a1', 'a2', 'a3', 'a4', 'a100']);
    expect((await new CredentialStore(store.sublevels.creds).list()).map((c) => c.id).sort()).toEqual([
      'dev-1',
      'dev-2',
    ]);
  });
});
