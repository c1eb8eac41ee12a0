import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { compileRuleFiles, type LoadResult } from '../../src/rules/index.js';
import { openStore, type Store } from '../../src/store/index.js';
import {
  BundleStore,
  chooseStartupRules,
  createBundle,
  keyId,
  RuleSync,
  type BundleFile,
  type RulesStatus,
  type RunningRules,
  type SigningKey,
  type TrustedKey,
} from '../../src/sync/index.js';
import { Harness, rulesFrom } from './engine-harness.js';

const quiet = pino({ level: 'silent' });

const HOT = (limit: number) => `
id: hot
priority: 50
category: maintenance
when:
  event: telemetry
  where: data.temp > ${limit}
then:
  action: cool-down
  to: [upstream]
`;
const QUIET = (forWhat: string) => `
id: quiet
priority: 80
category: support
when:
  absent: heartbeat
  for: ${forWhat}
then:
  action: check-device
  to: [upstream]
`;
const POLICY = 'policy:\n  cooldown: 10m\n';
const BROKEN =
  'id: broken\npriority: 10\ncategory: x\nwhen:\n  event: telemetry\n  where: data.temp >\nthen:\n  action: a\n  to: [upstream]\n';

function files(map: Record<string, string>): BundleFile[] {
  return Object.entries(map).map(([path, text]) => ({ path, text }));
}

function keyPair(): { signer: SigningKey; trusted: TrustedKey } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const id = keyId(publicKey);
  return { signer: { id, key: privateKey }, trusted: { id, key: publicKey, source: 'test' } };
}

let dir: string;
let store: Store;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'vigil-rule-sync-'));
  store = await openStore(dir);
});
afterEach(async () => {
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

function setup(
  opts: {
    dirFiles?: Record<string, string>;
    trusted?: TrustedKey[];
    initial?: RunningRules;
    ready?: Promise<unknown>;
  } = {},
) {
  const dirFiles = opts.dirFiles ?? { 'hot.yaml': HOT(50), 'quiet.yaml': QUIET('1m') };
  const h = new Harness(rulesFrom(dirFiles));
  const target = h.loop;
  const published: RulesStatus[] = [];
  const keys = keyPair();
  let loadDir: () => Promise<LoadResult> = () => Promise.resolve(compileRuleFiles(files(dirFiles)));
  const sync = new RuleSync({
    gateway: 'gw-test',
    trustedKeys: opts.trusted ?? [keys.trusted],
    bundles: new BundleStore(store.sublevels.rules),
    target,
    engine: { gateway: 'gw-test' },
    initial: opts.initial ?? { source: 'dir', version: 0, floor: 0 },
    loadDir: () => loadDir(),
    publish: (s) => published.push(s),
    logger: quiet,
    now: () => Date.parse('2026-11-26T12:00:00Z'),
    ...(opts.ready ? { ready: opts.ready } : {}),
  });
  const bundle = (version: number, map: Record<string, string>, signer = keys.signer) =>
    createBundle({ version, createdAt: '2026-11-26T11:00:00Z', files: files(map) }, signer);
  return { h, target, sync, published, keys, bundle, setDir: (f: typeof loadDir) => (loadDir = f) };
}

const hotActions = (h: Harness) => h.actions.filter((a) => a.scenario === 'hot').length;

describe('rule bundles applied between two events', () => {
  test('a valid bundle swaps the rules, is stored and reported as applied', async () => {
    const { h, sync, published, bundle } = setup();
    h.feed({ actor: 'd1', type: 'telemetry', at: 1_000, data: { temp: 55 } });
    expect(hotActions(h)).toBe(1);

    const status = await sync.applyBundle(
      bundle(1, { 'hot.yaml': HOT(60), 'quiet.yaml': QUIET('1m') }),
      'cloud',
    );
    expect(status).toMatchObject({
      gateway: 'gw-test',
      version: 1,
      status: 'applied',
      source: 'cloud',
      running: 1,
      time: '2026-11-26T12:00:00.000Z',
      scenarios: { kept: ['quiet'], changed: ['hot'], added: [], removed: [] },
    });
    expect(published).toEqual([status]);
    h.feed({ actor: 'd1', type: 'telemetry', at: 2_000, data: { temp: 55 } });
    expect(hotActions(h)).toBe(1);
    h.feed({ actor: 'd1', type: 'telemetry', at: 3_000, data: { temp: 65 } });
    expect(hotActions(h)).toBe(2);
    expect(sync.running).toMatchObject({ source: 'bundle', version: 1, floor: 1 });
    expect(await new BundleStore(store.sublevels.rules).current()).toMatchObject({
      version: 1,
      hash: status?.hash,
    });
  });

  test('inForce says who signed the rules in force, since when, and what became of the latest change', async () => {
    const { sync, bundle, keys } = setup();
    const now = Date.parse('2026-11-26T12:00:00Z');
    expect(sync.inForce).toEqual({ source: 'dir', version: 0, floor: 0, since: now });
    const applied = await sync.applyBundle(bundle(3, { 'hot.yaml': HOT(60) }), 'cloud');
    expect(sync.inForce).toMatchObject({
      source: 'bundle',
      version: 3,
      hash: applied?.hash,
      signer: keys.signer.id,
      createdAt: '2026-11-26T11:00:00Z',
      since: now,
      lastChange: { status: 'applied', version: 3 },
    });
    const stale = await sync.applyBundle(bundle(2, { 'hot.yaml': HOT(70) }), 'local');
    expect(sync.inForce).toMatchObject({ version: 3, signer: keys.signer.id, lastChange: stale });
    expect(stale).toMatchObject({ status: 'rejected', reason: 'stale-version' });

    // A gateway that starts with the stored bundle reads its signer and date from the store.
    const restarted = setup({ initial: { ...sync.running }, trusted: [keys.trusted] }).sync;
    await expect.poll(() => restarted.inForce.signer).toBe(keys.signer.id);
    expect(restarted.inForce).toMatchObject({ version: 3, since: now, createdAt: '2026-11-26T11:00:00Z' });
    expect(restarted.inForce.lastChange).toBeUndefined();
  });

  test('the bundle already running, met again, is ignored without a status', async () => {
    const { sync, published, bundle } = setup();
    const b = bundle(4, { 'hot.yaml': HOT(60) });
    await sync.applyBundle(b, 'cloud');
    expect(await sync.applyBundle(b, 'cloud')).toBeUndefined();
    expect(published.map((s) => s.status)).toEqual(['applied']);
  });

  test('an older or equal version, an untrusted key, a flipped byte or an invalid rule are rejected and the old rules keep deciding', async () => {
    const { h, sync, published, bundle } = setup();
    await sync.applyBundle(bundle(5, { 'hot.yaml': HOT(60), 'quiet.yaml': QUIET('1m') }), 'cloud');
    const flipped = bundle(9, { 'hot.yaml': HOT(10) });
    const at = flipped.indexOf('data.temp > 10');
    flipped[at] = 'D'.charCodeAt(0);

    const outcomes = [
      await sync.applyBundle(bundle(4, { 'hot.yaml': HOT(10) }), 'cloud'),
      await sync.applyBundle(bundle(5, { 'hot.yaml': HOT(10) }), 'cloud'),
      await sync.applyBundle(bundle(9, { 'hot.yaml': HOT(10) }, keyPair().signer), 'cloud'),
      await sync.applyBundle(flipped, 'cloud'),
      await sync.applyBundle(bundle(9, { 'hot.yaml': HOT(10), 'broken.yaml': BROKEN }), 'local'),
    ];
    expect(outcomes.map((o) => [o?.status, o?.reason, o?.version, o?.running])).toEqual([
      ['rejected', 'stale-version', 4, 5],
      ['rejected', 'stale-version', 5, 5],
      ['rejected', 'untrusted-key', null, 5],
      ['rejected', 'bad-signature', null, 5],
      ['rejected', 'invalid-rules', 9, 5],
    ]);
    expect(outcomes[0]?.detail).toBe('version 4 is not greater than the running version 5');
    expect(outcomes[4]?.problems).toEqual([expect.objectContaining({ file: 'broken.yaml', line: 6 })]);
    expect(outcomes[4]?.detail).toMatch(/^1 problem: broken\.yaml:6:\d+: /);
    expect(published).toHaveLength(6);

    // Still version 5: 55 is not above its limit of 60, 65 is.
    h.feed({ actor: 'd1', type: 'telemetry', at: 1_000, data: { temp: 55 } });
    h.feed({ actor: 'd2', type: 'telemetry', at: 1_000, data: { temp: 65 } });
    expect(h.actions.map((a) => a.actor)).toEqual(['d2']);
    expect(sync.running.version).toBe(5);
    expect((await new BundleStore(store.sublevels.rules).current())?.version).toBe(5);
  });

  test('scenarios left unchanged keep their state and timers; changed and removed ones lose theirs', async () => {
    const { h, sync, bundle } = setup({
      dirFiles: {
        'hot.yaml': HOT(50),
        'quiet.yaml': QUIET('1m'),
        'quiet2.yaml': QUIET('2m').replace('id: quiet', 'id: quiet2'),
      },
    });
    h.feed({ actor: 'd1', type: 'heartbeat', at: 0 });
    expect(h.timers.has('quiet:d1')).toBe(true);
    expect(h.timers.has('quiet2:d1')).toBe(true);

    // quiet unchanged, quiet2 removed, hot changed.
    const status = await sync.applyBundle(
      bundle(1, { 'hot.yaml': HOT(70), 'quiet.yaml': QUIET('1m') }),
      'cloud',
    );
    expect(status?.scenarios).toEqual({ kept: ['quiet'], changed: ['hot'], added: [], removed: ['quiet2'] });
    expect(h.timers.has('quiet:d1')).toBe(true);
    expect(h.timers.has('quiet2:d1')).toBe(false);
    h.advanceTo(60_000);
    expect(h.actions.map((a) => [a.scenario, a.actor])).toEqual([['quiet', 'd1']]);

    // Now quiet changes: its pending silence is dropped with its timer.
    h.feed({ actor: 'd2', type: 'heartbeat', at: 70_000 });
    expect(h.timers.has('quiet:d2')).toBe(true);
    const next = await sync.applyBundle(
      bundle(2, { 'hot.yaml': HOT(70), 'quiet.yaml': QUIET('5m') }),
      'cloud',
    );
    expect(next?.scenarios?.changed).toEqual(['quiet']);
    expect(h.timers.has('quiet:d2')).toBe(false);
    h.advanceTo(10 * 60_000);
    expect(h.actions).toHaveLength(1);
  });

  test('a kept timer keeps the deadline it is armed for, such as the grace period after a restart', async () => {
    const { h, sync, bundle } = setup();
    h.feed({ actor: 'd1', type: 'heartbeat', at: 0 });
    // As recovery arms a timer that was overdue while the gateway was down: later than the state's deadline.
    h.timers.schedule('quiet:d1', 90_000);
    await sync.applyBundle(bundle(1, { 'hot.yaml': HOT(70), 'quiet.yaml': QUIET('1m') }), 'cloud');
    expect(h.timers.dueAt('quiet:d1')).toBe(90_000);
  });

  test('the arbiter keeps its memory across a swap and weighs by the new policy', async () => {
    const { h, target, sync, bundle } = setup({ dirFiles: { 'hot.yaml': HOT(50), 'policy.yaml': POLICY } });
    h.feed({ actor: 'd1', type: 'telemetry', at: 0, data: { temp: 55 } });
    const candidate = h.effects.flatMap((e) => (e.kind === 'decide' ? [e.candidate] : []))[0];
    if (!candidate) throw new Error('no candidate');
    expect(target.rules.arbiter.decide([candidate], 0)[0]?.suppressed).toBeUndefined();
    const before = target.rules.arbiter;

    await sync.applyBundle(bundle(1, { 'hot.yaml': HOT(50), 'policy.yaml': POLICY }), 'cloud');
    expect(target.rules.arbiter).not.toBe(before);
    // The cooldown started before the swap still holds the repeat back.
    expect(target.rules.arbiter.decide([candidate], 60_000)[0]?.suppressed).toBe('cooldown');
    expect(target.rules.rules.policy?.cooldownMs).toBe(600_000);
  });

  test('a bundle that cannot be stored is rejected and the rules stay', async () => {
    const { h, sync, bundle } = setup();
    await store.close();
    const status = await sync.applyBundle(bundle(1, { 'hot.yaml': HOT(90) }), 'cloud');
    expect(status).toMatchObject({ status: 'rejected', reason: 'store-failed', running: 0 });
    h.feed({ actor: 'd1', type: 'telemetry', at: 1_000, data: { temp: 55 } });
    expect(hotActions(h)).toBe(1);
    store = await openStore(dir);
  });

  test('changes are applied one at a time, in the order they came', async () => {
    const { sync, published, bundle } = setup();
    const all = await Promise.all([
      sync.applyBundle(bundle(1, { 'hot.yaml': HOT(61) }), 'cloud'),
      sync.applyBundle(bundle(3, { 'hot.yaml': HOT(63) }), 'cloud'),
      sync.applyBundle(bundle(2, { 'hot.yaml': HOT(62) }), 'cloud'),
    ]);
    expect(all.map((s) => [s?.version, s?.status])).toEqual([
      [1, 'applied'],
      [3, 'applied'],
      [2, 'rejected'],
    ]);
    expect(published.map((s) => s.version)).toEqual([1, 3, 2]);
  });
});

describe('while the gateway recovers, and when it stops', () => {
  test('changes wait until recovery is done, then apply in the order they came', async () => {
    let recovered = (): void => undefined;
    const ready = new Promise<void>((resolve) => (recovered = resolve));
    const { h, sync, published, bundle } = setup({ ready });
    const applying = sync.applyBundle(bundle(1, { 'hot.yaml': HOT(60) }), 'cloud');
    await new Promise((r) => setImmediate(r));
    h.feed({ actor: 'd1', type: 'telemetry', at: 1_000, data: { temp: 55 } });
    expect(published).toEqual([]);
    expect(hotActions(h)).toBe(1);
    recovered();
    expect(await applying).toMatchObject({ status: 'applied', version: 1 });
  });

  test('stopping drops the changes still waiting, and the later ones', async () => {
    const { sync, published, bundle } = setup({ ready: new Promise(() => undefined) });
    const waiting = expect(sync.applyBundle(bundle(1, { 'hot.yaml': HOT(60) }), 'cloud')).rejects.toThrow(
      /stopping/,
    );
    await sync.stop();
    await waiting;
    await expect(sync.applyBundle(bundle(2, { 'hot.yaml': HOT(61) }), 'cloud')).rejects.toThrow(/stopping/);
    await expect(sync.reloadDir()).rejects.toThrow(/stopping/);
    expect(published).toEqual([]);
    expect(sync.running.version).toBe(0);
  });
});

describe('local rules directory (SIGHUP)', () => {
  test('reloads the directory with the same compile-then-swap; an invalid one leaves the rules as they were', async () => {
    const { h, sync, setDir } = setup();
    setDir(() => Promise.resolve(compileRuleFiles(files({ 'hot.yaml': HOT(60) }))));
    expect(await sync.reloadDir()).toMatchObject({
      status: 'applied',
      source: 'dir',
      version: null,
      running: 0,
      scenarios: { changed: ['hot'], removed: ['quiet'] },
    });
    setDir(() => Promise.resolve(compileRuleFiles(files({ 'hot.yaml': BROKEN.replace('broken', 'hot') }))));
    expect(await sync.reloadDir()).toMatchObject({ status: 'rejected', reason: 'invalid-rules' });
    h.feed({ actor: 'd1', type: 'telemetry', at: 1_000, data: { temp: 61 } });
    expect(hotActions(h)).toBe(1);
  });

  test('is refused while a bundle is in force', async () => {
    const { sync, bundle } = setup();
    await sync.applyBundle(bundle(2, { 'hot.yaml': HOT(60) }), 'cloud');
    expect(await sync.reloadDir()).toMatchObject({
      status: 'rejected',
      reason: 'managed-by-bundle',
      running: 2,
    });
  });
});

describe('rules at start-up', () => {
  test('the stored bundle comes ahead of the local directory; without a trusted key for it, the directory runs and its version stays the floor', async () => {
    const dirRules = rulesFrom({ 'hot.yaml': HOT(50) });
    const bundles = new BundleStore(store.sublevels.rules);
    expect(await chooseStartupRules({ bundles, trustedKeys: [], dirRules, logger: quiet })).toEqual({
      rules: dirRules,
      running: { source: 'dir', version: 0, floor: 0 },
    });

    const { sync, bundle, keys } = setup();
    const applied = await sync.applyBundle(bundle(7, { 'hot.yaml': HOT(77) }), 'cloud');
    const trusted = await chooseStartupRules({
      bundles,
      trustedKeys: [keys.trusted],
      dirRules,
      logger: quiet,
    });
    expect(trusted.running).toEqual({ source: 'bundle', version: 7, hash: applied?.hash, floor: 7 });
    expect(trusted.rules.scenarios.map((s) => s.id)).toEqual(['hot']);
    expect(trusted.rules.scenarios[0]?.fingerprint).not.toBe(dirRules.scenarios[0]?.fingerprint);

    const other = await chooseStartupRules({
      bundles,
      trustedKeys: [keyPair().trusted],
      dirRules,
      logger: quiet,
    });
    expect(other).toEqual({ rules: dirRules, running: { source: 'dir', version: 0, floor: 7 } });
  });
});
