import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { loadRulesDir, shippedRulesDir } from '../rules/index.js';
import { parseEventsNdjson, replay } from '../runtime/replay.js';
import { RuleError, type Profile } from '../shared/index.js';
import { exitWithError, parsePositiveInt } from './util.js';

interface ReplayFlags {
  rules?: string;
  profiles?: string;
  until?: number;
  gatewayId?: string;
}

export function registerReplayCommand(program: Command): void {
  program
    .command('replay')
    .argument(
      '<events>',
      'NDJSON file of events ({actor, type, at, data, source?} per line), e.g. from `run --record`',
    )
    .description(
      'run recorded events through the rules on virtual time and print the decided actions as NDJSON',
    )
    .option('--rules <dir>', 'rules directory (default: the shipped rules)')
    .option('--profiles <file>', 'NDJSON profiles ({"id": ..., fields}) the rules may read')
    .option(
      '--until <ms>',
      'fire timers up to this time (default: last event + the longest period)',
      parsePositiveInt,
    )
    .option('--gateway-id <id>', 'gateway id stamped on the actions', 'replay')
    .action(async (eventsFile: string, flags: ReplayFlags) => {
      try {
        const loaded = await loadRulesDir(flags.rules ?? shippedRulesDir());
        if (!loaded.ok) throw new RuleError(loaded.problems);
        const parsed = parseEventsNdjson(await readFile(eventsFile, 'utf8'));
        if (!parsed.ok) {
          for (const e of parsed.errors) process.stderr.write(`${eventsFile}:${e}\n`);
          process.exitCode = 1;
          return;
        }
        const profiles = flags.profiles !== undefined ? await readProfiles(flags.profiles) : undefined;
        const out = replay(loaded.rules, parsed.events, {
          gateway: flags.gatewayId ?? 'replay',
          ...(profiles ? { profiles } : {}),
          ...(flags.until !== undefined ? { untilMs: flags.until } : {}),
          arbitrate: true,
        });
        for (const line of out) process.stdout.write(JSON.stringify(line) + '\n');
      } catch (err) {
        exitWithError(err);
      }
    });
}

async function readProfiles(file: string): Promise<Map<string, Profile>> {
  const profiles = new Map<string, Profile>();
  const lines = (await readFile(file, 'utf8')).split('\n');
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    try {
      const p = JSON.parse(line) as Profile;
      if (typeof p.id === 'string') profiles.set(p.id, p);
      else process.stderr.write(`${file}:${i + 1}: profile without a string id, skipped\n`);
    } catch {
      process.stderr.write(`${file}:${i + 1}: not valid JSON, skipped\n`);
    }
  });
  return profiles;
}
