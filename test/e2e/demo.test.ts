import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, test } from 'vitest';

const DEMO = fileURLToPath(new URL('../../dist/demo.js', import.meta.url));
/** How long the demo is watched; actions must be printed in each third of it. */
const WATCH_MS = 30_000;

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

/** `[  12.3s] scenario actor -> action {…}`: the seconds of every action line. */
function actionStamps(out: string): number[] {
  return [...out.matchAll(/^\[\s*(\d+\.\d)s\] (?!live:)\S+\s+\S+\s+-> \S+/gm)].map((m) => Number(m[1]));
}

describe('npm run demo (dist/demo.js)', () => {
  test(
    'prints the dashboard first, actions for the whole run with a live line, and the summary after Ctrl-C',
    { timeout: WATCH_MS + 40_000 },
    async () => {
      // A small fleet and a short cadence, so that the same devices are reported again within the run.
      const child = spawn(
        process.execPath,
        [DEMO, '--devices', '40', '--rate', '40', '--cadence', '3s', '--print', '1000'],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      const pid = child.pid;
      if (pid === undefined) throw new Error('the demo did not start');
      cleanups.push(() => {
        if (child.exitCode === null) process.kill(pid, 'SIGKILL');
      });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (out += d.toString()));
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));

      await expect.poll(() => out, { timeout: 20_000 }).toMatch(/publishes until Ctrl-C/);
      const first = out.split('\n')[0] ?? '';
      const url = /dashboard on (http:\/\/127\.0\.0\.1:\d+\/)/.exec(first)?.[1];
      expect(url, first).toBeDefined();
      const page = await fetch(url ?? '');
      expect(page.status).toBe(200);
      expect(await page.text()).toContain('<title>Vigil');

      await sleep(WATCH_MS);
      process.kill(pid, 'SIGINT');
      expect(await exited).toBe(0);

      const stamps = actionStamps(out);
      const third = WATCH_MS / 3 / 1_000;
      for (const [from, to] of [
        [0, third],
        [third, 2 * third],
        [2 * third, 3 * third],
      ] as const) {
        const inThird = stamps.filter((s) => s >= from && s < to);
        expect(inThird.length, `action lines between ${from} s and ${to} s:\n${out}`).toBeGreaterThan(0);
      }
      // The live line (printed every 5 s when stdout is not a terminal) counts events throughout.
      const live = [...out.matchAll(/^\[\s*(\d+\.\d)s\] live: events (\d+)/gm)];
      expect(live.length).toBeGreaterThanOrEqual(4);
      expect(Number(live.at(-1)?.[2])).toBeGreaterThan(Number(live[0]?.[2]));
      // Then the summary it always ended with, after the fleet stopped early.
      expect(out).toMatch(/stopped early/);
      expect(out).toMatch(/^Summary$/m);
      const upstream = Number(/actions received upstream (\d+)/.exec(out)?.[1]);
      expect(upstream).toBe(stamps.length);
    },
  );
});
