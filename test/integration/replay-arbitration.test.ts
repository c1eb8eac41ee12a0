import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { expect, test } from 'vitest';

/**
 * The acceptance case of arbitration, through the built `vigil replay`: the shipped policy (copied into the
 * fixture's rules) over one customer's morning. Build first (`npm run build`).
 */
const CLI = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));
const RULES = fileURLToPath(new URL('../fixtures/rules/arbitration', import.meta.url));
const EVENTS = fileURLToPath(new URL('../fixtures/arbitration/events.ndjson', import.meta.url));
const SHIPPED_POLICY = fileURLToPath(new URL('../../rules/policy.yaml', import.meta.url));
const MIN = 60_000;

async function replay(): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [CLI, 'replay', '--rules', RULES, EVENTS], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const [code] = (await once(child, 'close')) as [number | null];
  return { code, stdout, stderr };
}

test('the fixture applies the policy exactly as shipped', async () => {
  expect(await readFile(`${RULES}/policy.yaml`, 'utf8')).toBe(await readFile(SHIPPED_POLICY, 'utf8'));
});

test('vigil replay: support then offer → exclusive:support, a third capped action → contact, a repeat → cooldown', async () => {
  const run = await replay();
  expect(run.code, run.stderr).toBe(0);
  // The summary on stderr: per scenario, what was sent and suppressed; no expression failed.
  expect(run.stderr).toMatch(/^support-callback +1 +1 +0$/m);
  expect(run.stderr).not.toMatch(/^error /m);
  const lines = run.stdout
    .trimEnd()
    .split('\n')
    .map((line) => JSON.parse(line) as Record<string, unknown>);
  const seen = lines.map(({ scenario, actor, category, eventAt, suppressed, to }) => ({
    scenario,
    actor,
    category,
    eventAt,
    to,
    ...(suppressed !== undefined ? { suppressed } : {}),
  }));
  const line = (scenario: string, actor: string, category: string, atMin: number, suppressed?: string) => ({
    scenario,
    actor,
    category,
    eventAt: atMin * MIN,
    to: ['upstream'],
    ...(suppressed !== undefined ? { suppressed } : {}),
  });
  expect(seen).toEqual([
    // Support is never capped, but a repeat within 10 minutes is held back.
    line('support-callback', 'd1', 'support', 0),
    line('support-callback', 'd1', 'support', 5, 'cooldown'),
    // No offer while d1 has had a support action in the last 2 hours; d2 has not.
    line('upgrade-offer', 'd1', 'offer', 10, 'exclusive:support'),
    line('upgrade-offer', 'd2', 'offer', 10),
    // Two capped actions within the hour go; the third does not. The suppressed offer did not count.
    line('firmware-notice', 'd1', 'notice', 20),
    line('usage-notice', 'd1', 'notice', 25),
    line('bill-notice', 'd1', 'notice', 30, 'contact'),
    // Still within 2 hours of the support action; past them, the offer goes.
    line('upgrade-offer', 'd1', 'offer', 110, 'exclusive:support'),
    line('upgrade-offer', 'd1', 'offer', 121),
  ]);
  // Every line is a whole action: what the cloud would have received, or what it was spared.
  for (const l of lines) {
    expect(l.gateway).toBe('replay');
    expect(typeof l.id).toBe('string');
    expect(typeof l.payload).toBe('object');
  }
  expect(new Set(lines.map((l) => l.id)).size).toBe(lines.length);
});
