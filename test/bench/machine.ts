import { execFileSync, spawnSync } from 'node:child_process';
import { cpus, loadavg, release, totalmem } from 'node:os';
import type { BenchOptions } from './bench-options.js';
import type { MachineRecord } from './results.js';
import { hasMosquitto, MOSQUITTO } from './systems.js';

function git(args: string[]): string | undefined {
  try {
    return execFileSync('git', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return undefined;
  }
}

function mosquittoVersion(): string | null {
  if (!hasMosquitto()) return null;
  // `mosquitto -h` prints its version on the first line and exits with 3.
  const out = spawnSync(MOSQUITTO, ['-h'], { encoding: 'utf8' });
  const line = `${out.stdout}${out.stderr}`.split('\n')[0]?.trim();
  return line !== undefined && line.length > 0 ? line : 'mosquitto';
}

/** Where the figures come from: the machine, its load, the code, and what ran. */
export function machineInfo(o: BenchOptions): MachineRecord {
  const commit = git(['rev-parse', '--short', 'HEAD']) ?? 'unknown';
  const dirty = (git(['status', '--porcelain', '--untracked-files=no']) ?? '').length > 0;
  return {
    date: new Date().toISOString(),
    commit: dirty ? `${commit} (with uncommitted changes)` : commit,
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    memoryGB: Math.round(totalmem() / 2 ** 30),
    kernel: release(),
    node: process.version,
    mosquitto: mosquittoVersion(),
    loadAverageAtStart: loadavg().map((n) => Math.round(n * 100) / 100),
    quick: o.quick,
    gateway: o.binary !== undefined ? `binary ${o.binary}` : 'node dist/cli.js',
    fleet: {
      devices: o.devices,
      profiles: o.profiles,
      payload: 'JSON telemetry {temp, hum, bat, ts}, about 60 bytes',
      thresholdScenarios: o.thresholds,
    },
  };
}
