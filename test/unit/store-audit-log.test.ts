import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import type { Action } from '../../src/shared/index.js';
import {
  AuditLog,
  auditEntryOf,
  openStore,
  type AuditEntry,
  type AuditLogOptions,
  type Store,
} from '../../src/store/index.js';
import { parseAuditQuery } from '../../src/api/index.js';

let dir: string;
let store: Store;
let log: AuditLog | undefined;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'vigil-audit-'));
  store = await openStore(dir);
});

afterEach(async () => {
  await log?.close();
  log = undefined;
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

async function open(opts: AuditLogOptions = {}): Promise<AuditLog> {
  log = await AuditLog.open(store.sublevels.audit, opts);
  return log;
}

async function reopen(opts: AuditLogOptions = {}): Promise<AuditLog> {
  await log?.close();
  await store.close();
  store = await openStore(dir);
  return open(opts);
}

function entry(n: number, over: Partial<AuditEntry> = {}): AuditEntry {
  return {
    at: 1_000 + n,
    id: `a${n}`,
    scenario: 'upgrade-offer',
    actor: 'd1',
    category: 'offer',
    priority: 30,
    ...over,
  };
}

const ids = (entries: readonly AuditEntry[]): string[] => entries.map((e) => e.id);

describe('AuditLog', () => {
  test('lists decisions newest first, sent and suppressed merged, and filters by actor and suppression', async () => {
    const audit = await open();
    audit.append(entry(1));
    audit.append(entry(2, { actor: 'd2', reason: 'contact' }));
    audit.append(entry(3, { reason: 'exclusive:support', group: 'household-7' }));
    audit.append(entry(4, { actor: 'd2' }));
    audit.append(entry(5, { reason: 'ttl' }));

    expect(ids(await audit.list())).toEqual(['a5', 'a4', 'a3', 'a2', 'a1']);
    expect(ids(await audit.list({ suppressed: true }))).toEqual(['a5', 'a3', 'a2']);
    expect(ids(await audit.list({ actor: 'd1' }))).toEqual(['a5', 'a3', 'a1']);
    expect(ids(await audit.list({ actor: 'd2', suppressed: true }))).toEqual(['a2']);
    expect(ids(await audit.list({ limit: 2 }))).toEqual(['a5', 'a4']);
    expect((await audit.list({ actor: 'd1', suppressed: true }))[1]).toEqual(
      entry(3, { reason: 'exclusive:support', group: 'household-7' }),
    );
  });

  test('entries survive a reopen, and later ones list before them', async () => {
    const first = await open();
    first.append(entry(1, { reason: 'cooldown' }));
    first.append(entry(2));
    const second = await reopen();
    second.append(entry(3, { reason: 'contact' }));
    expect(ids(await second.list())).toEqual(['a3', 'a2', 'a1']);
    expect(ids(await second.list({ suppressed: true }))).toEqual(['a3', 'a1']);
  });

  test('keeps the newest suppressions up to its cap, apart from the sent actions, also across reopens', async () => {
    const audit = await open({ maxSuppressed: 5, maxSent: 3 });
    for (let n = 1; n <= 4; n++) audit.append(entry(n, { reason: 'contact' }));
    await audit.flush();
    for (let n = 5; n <= 12; n++) audit.append(entry(n, { reason: 'contact' }));
    audit.append(entry(100));
    expect(ids(await audit.list({ suppressed: true, limit: 100 }))).toEqual([
      'a12',
      'a11',
      'a10',
      'a9',
      'a8',
    ]);

    const again = await reopen({ maxSuppressed: 5, maxSent: 3 });
    for (let n = 13; n <= 14; n++) again.append(entry(n, { reason: 'cooldown' }));
    for (let n = 101; n <= 104; n++) again.append(entry(n));
    expect(ids(await again.list({ limit: 100 }))).toEqual([
      'a104',
      'a103',
      'a102',
      'a14',
      'a13',
      'a12',
      'a11',
      'a10',
    ]);
    // Nothing beyond the caps is left on disk either.
    expect(await store.sublevels.audit.keys().all()).toHaveLength(8);
  });

  test('entries appended together are written in one batch, not one write each', async () => {
    const audit = await open();
    const writes: number[] = [];
    store.sublevels.audit.on('write', (ops: unknown[]) => writes.push(ops.length));
    for (let n = 0; n < 500; n++) audit.append(entry(n, { reason: 'contact' }));
    await audit.flush();
    expect(writes).toEqual([500]);
    expect(await audit.list({ limit: 1_000 })).toHaveLength(500);
  });

  test('after close, appends are ignored and nothing is lost of what came before', async () => {
    const audit = await open();
    audit.append(entry(1));
    await audit.close();
    audit.append(entry(2));
    const again = await reopen();
    expect(ids(await again.list())).toEqual(['a1']);
  });

  test('auditEntryOf keeps what the log needs of an action', () => {
    const action: Action = {
      id: 'x1',
      gateway: 'gw1',
      scenario: 'site-outage',
      action: 'dispatch',
      actor: 'd9',
      group: 'north',
      priority: 80,
      category: 'support',
      decidedAt: 5,
      eventAt: 4,
      payload: { big: 'not kept' },
    };
    expect(auditEntryOf(action, 7, 'cooldown')).toEqual({
      at: 7,
      id: 'x1',
      scenario: 'site-outage',
      actor: 'd9',
      group: 'north',
      category: 'support',
      priority: 80,
      reason: 'cooldown',
    });
    expect(auditEntryOf({ ...action, group: undefined } as unknown as Action, 7)).not.toHaveProperty('group');
  });
});

describe('parseAuditQuery', () => {
  test('reads actor, suppressed and limit, and refuses anything else with a reason', () => {
    expect(parseAuditQuery(new URLSearchParams('actor=d1&suppressed=true&limit=20'))).toEqual({
      ok: true,
      query: { actor: 'd1', suppressed: true, limit: 20 },
    });
    expect(parseAuditQuery(new URLSearchParams(''))).toEqual({ ok: true, query: {} });
    for (const bad of ['limit=0', 'limit=1.5', 'limit=abc', 'suppressed=yes', 'actor=', 'who=d1']) {
      expect(parseAuditQuery(new URLSearchParams(bad)).ok, bad).toBe(false);
    }
  });
});
