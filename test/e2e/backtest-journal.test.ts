import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import type { BacktestChange, ScenarioDiff } from '../../src/runtime/backtest.js';
import { runCli } from '../helpers/cli.js';
import { startGatewayProcess } from '../helpers/gateway-process.js';
import { connectDevice, crashScene, waitUntil, writeRules } from './crash-harness.js';

// Needs `npm run build` first: the gateway and the command line are the built dist/cli.js.

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const hot = (threshold: number, payload: string) => `id: hot
description: A reading above a fixed threshold.
priority: 50
category: maintenance
when:
  event: telemetry
  where: data.temp > ${threshold}
then:
  action: hot
  to: [upstream]
  payload:
${payload}
`;

const overLimit = (payload: string) => `id: over-limit
description: A reading above the limit in the device's profile.
priority: 40
category: notice
when:
  event: telemetry
  where: data.temp > profile.maxTemp
then:
  action: over-limit
  to: [upstream]
  payload:
${payload}
`;

const OLD_RULES = {
  'hot.yaml': hot(50, '    n: data.n'),
  'over-limit.yaml': overLimit('    n: data.n'),
};

// Tried: a lower threshold (one more reading fires), a payload with the profile's site, and a contact cap of
// one notice per hour per device (the second over-limit of dev-a is held back).
const NEW_RULES = {
  'hot.yaml': hot(40, '    n: data.n'),
  'over-limit.yaml': overLimit('    n: data.n\n    site: profile.site'),
  'policy.yaml': 'policy:\n  contact:\n    max: 1\n    per: 1h\n    except: [maintenance]\n',
};

interface Report {
  events: number;
  from: string;
  to: string;
  scenarios: ScenarioDiff[];
  changes: BacktestChange[];
  errors: { old: unknown[]; new: unknown[] };
}

describe('vigil backtest --journal DATA_DIR', () => {
  test("a changed rule set over a real gateway's journal: what fires newly, no longer, with another payload or suppression", async () => {
    const scene = await crashScene({ rules: OLD_RULES, onCleanup: (c) => cleanups.push(c) });
    const gateway = await startGatewayProcess(scene.args(0));
    cleanups.push(() => gateway.stop());
    // The profiles, imported through the running gateway: recorded in its journal.
    const profiles = join(scene.dir, 'profiles.ndjson');
    await writeFile(
      profiles,
      '{"id":"dev-a","maxTemp":50,"site":"berlin"}\n{"id":"dev-b","maxTemp":80,"site":"hamburg"}\n',
    );
    const imported = await runCli(['profiles', 'import', profiles, '--data', scene.data]);
    expect(imported.code, imported.out).toBe(0);
    const device = await connectDevice(gateway.mqttPort, 'feeder');
    cleanups.push(() => device.endAsync(true));
    const reading = (actor: string, temp: number, n: number) =>
      device.publishAsync(`devices/${actor}/events/telemetry`, JSON.stringify({ temp, n }), { qos: 1 });
    await reading('dev-a', 45, 1); // below hot's 50 (not below 40), below dev-a's 50
    await reading('dev-a', 60, 2); // hot; over dev-a's 50
    await reading('dev-a', 65, 3); // hot; over dev-a's 50 again: the new cap holds it back
    await reading('dev-b', 70, 4); // hot; within dev-b's 80
    await waitUntil(() => scene.cloud.actions.length >= 5, 10_000, 'five actions at the cloud');
    expect(await gateway.stop()).toBe(0);
    const oldDir = join(scene.dir, 'rules');
    const newDir = await writeRules(join(scene.dir, 'rules-new'), NEW_RULES);

    const json = await runCli([
      'backtest',
      '--rules',
      newDir,
      '--against',
      oldDir,
      '--journal',
      scene.data,
      '--format',
      'json',
    ]);
    expect(json.code, json.stderr).toBe(0);
    const report = JSON.parse(json.stdout) as Report;
    expect(report.events).toBeGreaterThanOrEqual(4); // the readings, and the broker's connected
    expect(report.from).toMatch(/^\d{4}-\d\d-\d\dT.*Z$/);
    // The old rules, run again, send what the gateway sent.
    const sentByOld = report.scenarios.reduce((n, s) => n + s.old.sent, 0);
    expect(sentByOld).toBe(scene.cloud.actions.length);
    const row = (id: string) => report.scenarios.find((s) => s.scenario === id);
    expect(row('hot')).toMatchObject({
      old: { sent: 3, suppressed: 0 },
      new: { sent: 4, suppressed: 0 },
      changes: { 'fires-newly': 1, 'no-longer-fires': 0, 'changed-payload': 0, 'changed-suppression': 0 },
    });
    expect(row('over-limit')).toMatchObject({
      old: { sent: 2, suppressed: 0 },
      new: { sent: 1, suppressed: 1 },
      changes: { 'fires-newly': 0, 'no-longer-fires': 0, 'changed-payload': 1, 'changed-suppression': 1 },
    });
    const summary = report.changes.map((c) => [c.kind, c.scenario, c.actor, c.new.payload]);
    expect(summary).toEqual([
      ['fires-newly', 'hot', 'dev-a', { n: 1 }],
      ['changed-payload', 'over-limit', 'dev-a', { n: 2, site: 'berlin' }],
      ['changed-suppression', 'over-limit', 'dev-a', { n: 3, site: 'berlin' }],
    ]);
    const held = report.changes[2];
    expect(held?.old).toMatchObject({ verdict: 'sent', payload: { n: 3 } });
    expect(held?.new).toMatchObject({ verdict: 'suppressed', reason: 'contact' });
    // The ids are those the gateway gave: the over-limit it sent, which the new rules change.
    const cloudIds = new Set(scene.cloud.actions.map(({ action }) => action.id));
    expect(cloudIds.has(report.changes[1]?.id ?? '')).toBe(true);

    // For people: the diff per scenario, then the table.
    const text = await runCli(['backtest', '--rules', newDir, '--against', oldDir, '--journal', scene.data]);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/over \d+ events from the journal in \S+, records \d+ to \d+, \S+Z to \S+Z/);
    expect(text.stdout).toContain('hot: 1 fire newly');
    expect(text.stdout).toMatch(/^ {2}\+ \S+Z dev-a fires newly: \{"n":1\}$/m);
    expect(text.stdout).toContain('over-limit: 1 changed payload, 1 changed suppression');
    expect(text.stdout).toMatch(/^ {2}! \S+Z dev-a sent → suppressed \(contact\)$/m);
    expect(text.stdout).toMatch(/^over-limit +2 +0 +1 +1 +0 +0 +1 +1 +0\/0$/m);

    // The same rules against themselves: no differences.
    const same = await runCli(['backtest', '--rules', oldDir, '--against', oldDir, '--journal', scene.data]);
    expect(same.code, same.stderr).toBe(0);
    expect(same.stdout).toContain('no differences');
  }, 90_000);

  test('--events takes what `vigil replay` takes; rules that read profiles need --profiles or --without-profiles', async () => {
    const scene = await crashScene({ rules: OLD_RULES, onCleanup: (c) => cleanups.push(c) });
    const newDir = await writeRules(join(scene.dir, 'rules-new'), NEW_RULES);
    const events = join(scene.dir, 'events.ndjson');
    await writeFile(
      events,
      [
        { actor: 'dev-a', type: 'telemetry', at: 1_000, data: { temp: 45, n: 1 } },
        { actor: 'dev-a', type: 'telemetry', at: 2_000, data: { temp: 60, n: 2 } },
      ]
        .map((e) => JSON.stringify(e) + '\n')
        .join(''),
    );
    const args = ['backtest', '--rules', newDir, '--against', join(scene.dir, 'rules'), '--events', events];
    const refused = await runCli(args);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('over-limit reads device profiles');
    expect(refused.stderr).toContain('--without-profiles');

    await writeFile(join(scene.dir, 'p.ndjson'), '{"id":"dev-a","maxTemp":50,"site":"berlin"}\n');
    const run = await runCli([...args, '--profiles', join(scene.dir, 'p.ndjson'), '--format', 'json']);
    expect(run.code, run.stderr).toBe(0);
    const report = JSON.parse(run.stdout) as Report;
    expect(report.changes.map((c) => [c.kind, c.scenario])).toEqual([
      ['fires-newly', 'hot'],
      ['changed-payload', 'over-limit'],
    ]);

    const without = await runCli([...args, '--without-profiles']);
    expect(without.code, without.stderr).toBe(0);
    // Every over-limit is an error in both runs, listed with its time.
    expect(without.stdout).toContain('old error 1970-01-01T00:00:01.000Z over-limit dev-a (where)');

    const neither = await runCli(['backtest', '--rules', newDir, '--against', newDir]);
    expect(neither.code).toBe(2);
    expect(neither.stderr).toContain('give either --events FILE or --journal DATA_DIR');
  }, 60_000);
});
