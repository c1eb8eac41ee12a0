import { access, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { InvalidArgumentError, type Command } from 'commander';
import { pino } from 'pino';
import { loadRulesDir, shippedRulesDir } from '../rules/index.js';
import { parseEventsNdjson, replay, type ReplayError } from '../runtime/replay.js';
import { replayJournal, type JournalReplay } from '../runtime/journal-replay.js';
import { RuleError, VigilError, type Profile } from '../shared/index.js';
import { openStoreSnapshot } from '../store/index.js';
import { errorLines, iso, profileDependent, ProfilesMissingError, runSummary } from './run-report.js';
import { exitWithError, helpAfter, parsePositiveInt } from './util.js';

interface ReplayFlags {
  rules?: string;
  profiles?: string;
  until?: number;
  gatewayId?: string;
  journal?: string;
  from?: number;
  to?: number;
  withoutProfiles?: boolean;
}

export function registerReplayCommand(program: Command): void {
  program
    .command('replay')
    .argument(
      '[events]',
      'NDJSON file of events ({actor, type, at, data, source?} per line), e.g. from `run --record`',
    )
    .description(
      'run recorded events (or the journal a gateway retained) through the rules on virtual time and print the decided actions as NDJSON',
    )
    .option('--rules <dir>', 'rules directory (default: the shipped rules); not with --journal')
    .option('--profiles <file>', 'NDJSON profiles ({"id": ..., fields}) the rules may read')
    .option(
      '--until <ms>',
      'fire timers up to this time (default: last event + the longest period); not with --journal',
      parsePositiveInt,
    )
    .option('--gateway-id <id>', 'gateway id stamped on the actions', 'replay')
    .option('--journal <dir>', "replay the journal retained in a gateway's data directory (read only)")
    .option(
      '--from <time>',
      'with --journal: actions decided from this time (ISO 8601 or ms since the epoch)',
      parseTime,
    )
    .option('--to <time>', 'with --journal: actions decided up to this time', parseTime)
    .option(
      '--without-profiles',
      'without --journal: run rules that read profiles with none given (every profile field missing)',
    )
    .addHelpText(
      'after',
      helpAfter(
        [
          'With --journal DATA_DIR nothing in DATA_DIR is written (a running gateway may own it): the replay',
          'starts from the newest checkpoint kept at or before --from (or the oldest; or empty state while the',
          'journal still begins at its first record) and applies every record after it as recovery does, with',
          'the rules and profiles the journal records at each moment. A device whose profile the journal records',
          'no change of is judged by its profile in the store as it is now, read from a copy of the store made in',
          'the temporary directory (TMPDIR), or by --profiles FILE, which takes precedence over the store.',
          'It prints the actions decided within --from..--to, with the ids the gateway gave them, and a summary',
          'How much is retained is set by durability.retention (docs/durability.md).',
          'Either way stdout has the actions as NDJSON, and stderr the time range (ISO 8601), a table per scenario',
          '(sent, suppressed, errors) and each expression that failed, with its time, scenario and actor. Given an',
          'events file, rules that read profiles are refused without --profiles unless --without-profiles.',
        ],
        '0 replayed, 1 bad events file, 2 the replay failed (no data, no journal, a range not retained, a store that cannot be copied).',
      ),
    )
    .action(async (eventsFile: string | undefined, flags: ReplayFlags) => {
      try {
        if (flags.journal !== undefined) await journalCommand(flags.journal, eventsFile, flags);
        else if (eventsFile === undefined) exitWithError('give an NDJSON events file, or --journal DATA_DIR');
        else await eventsCommand(eventsFile, flags);
      } catch (err) {
        exitWithError(err);
      }
    });
}

async function eventsCommand(eventsFile: string, flags: ReplayFlags): Promise<void> {
  if (flags.from !== undefined || flags.to !== undefined) exitWithError('--from and --to go with --journal');
  const loaded = await loadRulesDir(flags.rules ?? shippedRulesDir());
  if (!loaded.ok) throw new RuleError(loaded.problems);
  const parsed = parseEventsNdjson(await readFile(eventsFile, 'utf8'));
  if (!parsed.ok) {
    for (const e of parsed.errors) process.stderr.write(`${eventsFile}:${e}\n`);
    process.exitCode = 1;
    return;
  }
  const profiles = flags.profiles !== undefined ? await readProfiles(flags.profiles) : undefined;
  if (profiles === undefined && flags.withoutProfiles !== true) {
    const reading = profileDependent(loaded.rules);
    if (reading.length > 0) throw new ProfilesMissingError(reading);
  }
  const errors: ReplayError[] = [];
  const out = replay(loaded.rules, parsed.events, {
    gateway: flags.gatewayId ?? 'replay',
    ...(profiles ? { profiles } : {}),
    ...(flags.until !== undefined ? { untilMs: flags.until } : {}),
    arbitrate: true,
    onError: (e) => errors.push(e),
  });
  for (const line of out) process.stdout.write(JSON.stringify(line) + '\n');
  const times = parsed.events.map((ev) => ev.at);
  const range = times.length === 0 ? '' : `, ${iso(Math.min(...times))} to ${iso(Math.max(...times))}`;
  const report = [
    `replayed ${parsed.events.length} events${range}`,
    ...runSummary(out, errors),
    ...errorLines(errors),
  ];
  if (profiles === undefined && flags.withoutProfiles === true)
    report.push('run without profiles (--without-profiles)');
  process.stderr.write(report.join('\n') + '\n');
}

/** `vigil replay --journal DATA_DIR`: the retained journal, replayed read-only. */
async function journalCommand(
  dataDir: string,
  eventsFile: string | undefined,
  flags: ReplayFlags,
): Promise<void> {
  if (eventsFile !== undefined) exitWithError('give either an events file or --journal, not both');
  if (flags.rules !== undefined || flags.until !== undefined || flags.withoutProfiles === true) {
    exitWithError(
      '--rules, --until and --without-profiles do not go with --journal: the journal records the rules, the timer firings and the profiles',
    );
  }
  const journalDir = join(dataDir, 'journal');
  if (!(await exists(dataDir))) throw notData(`${dataDir} does not exist`);
  if (!(await exists(journalDir))) throw noJournal(dataDir);
  const logger = pino({ level: 'warn' }, pino.destination(2));
  const profiles = flags.profiles !== undefined ? await readProfiles(flags.profiles) : undefined;
  // The store is copied before the journal is read: a profile change is recorded before it is written, so every
  // change the copy holds is in the journal read after it, and the journal's records say when it happened.
  const store = await openStoreSnapshot(dataDir);
  let result: JournalReplay | undefined;
  try {
    result = await replayJournal({
      dir: journalDir,
      gateway: flags.gatewayId ?? 'replay',
      fromMs: flags.from,
      toMs: flags.to,
      store: store?.profiles,
      profiles,
      logger,
    });
  } finally {
    await store?.close();
  }
  if (result === undefined) throw noJournal(dataDir);
  for (const line of result.actions) process.stdout.write(JSON.stringify(line) + '\n');
  const start = result.startSeq === 0 ? 'empty state' : `the checkpoint at record ${result.startSeq}`;
  process.stderr.write(
    `replayed ${result.records} records from ${start} (${iso(result.startAt)}); retained: ` +
      `${iso(result.retained.fromAt)} to ${iso(result.retained.toAt)}, records ${result.retained.fromSeq} to ${result.retained.toSeq}\n`,
  );
  for (const line of [...runSummary(result.actions, result.errors), ...errorLines(result.errors)])
    process.stderr.write(`${line}\n`);
  if (store === undefined) process.stderr.write(`${dataDir} holds no profile store\n`);
  if (result.unprofiled.length > 0) {
    process.stderr.write(
      `${result.unprofiled.length} devices were judged without a profile (neither the journal nor a store has one; --profiles FILE gives them)\n`,
    );
  }
}

export function noJournal(dataDir: string): VigilError {
  return notData(`${dataDir} holds no journal (no ${join(dataDir, 'journal')}/*.wal)`);
}

export function notData(message: string): VigilError {
  return new VigilError('VIGIL_DATA_MISSING', `${message}: not a Vigil data directory with a journal`, {
    hint: "pass the gateway's data directory (its `data` setting, ./data by default)",
  });
}

export async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

/** ISO 8601 or milliseconds since the epoch. */
function parseTime(value: string): number {
  const ms = /^\d+$/.test(value) ? Number(value) : Date.parse(value);
  if (!Number.isFinite(ms)) throw new InvalidArgumentError('expected an ISO 8601 time or ms since the epoch');
  return ms;
}

export async function readProfiles(file: string): Promise<Map<string, Profile>> {
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
