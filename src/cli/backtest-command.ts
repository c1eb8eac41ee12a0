import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { InvalidArgumentError, type Command } from 'commander';
import { pino, type Logger } from 'pino';
import { loadRulesDir, type RuleSet } from '../rules/index.js';
import { compareRuns, horizonOf, RecordingRun, type BacktestDiff } from '../runtime/backtest.js';
import { parseEventsNdjson, type CheckpointState, type ReplayError } from '../runtime/index.js';
import { retainedEvents } from '../runtime/journal-replay.js';
import { RuleError, type Event, type Profile } from '../shared/index.js';
import { openStoreSnapshot } from '../store/index.js';
import { exists, noJournal, notData, readProfiles } from './replay-command.js';
import { backtestText, errorLines, iso, profileDependent, ProfilesMissingError } from './run-report.js';
import { exitWithError, helpAfter, parsePositiveInt } from './util.js';

interface BacktestFlags {
  rules: string;
  against: string;
  events?: string;
  journal?: string;
  profiles?: string;
  withoutProfiles?: boolean;
  until?: number;
  format: 'text' | 'json';
  limit: number;
}

/** What both runs went over, for the report's first line. */
interface Span {
  source: { events: string } | { journal: string; fromSeq: number; toSeq: number };
  events: number;
  fromAt: number | undefined;
  toAt: number | undefined;
  unprofiled: string[];
}

interface Outcome {
  span: Span;
  diff: BacktestDiff;
  errors: { old: ReplayError[]; new: ReplayError[] };
}

export function registerBacktestCommand(program: Command): void {
  program
    .command('backtest')
    .description(
      'run recorded events through two rule sets and print what the new rules decide differently, per scenario',
    )
    .requiredOption('--rules <dir>', 'the rules to try (a rules directory)')
    .requiredOption('--against <dir>', 'the rules to compare with (e.g. those in force)')
    .option(
      '--events <file>',
      'NDJSON events, as `vigil replay` takes them ({actor, type, at, data?, source?} a line)',
    )
    .option('--journal <dir>', "the events the journal in a gateway's data directory retains (read only)")
    .option(
      '--profiles <file>',
      'NDJSON profiles ({"id": ..., fields}); with --journal, instead of the store\'s',
    )
    .option(
      '--without-profiles',
      'with --events: run rules that read profiles with none (every profile field missing)',
    )
    .option(
      '--until <ms>',
      'with --events: fire timers up to this time (default: last event + the longest period)',
      parsePositiveInt,
    )
    .option('--format <format>', 'text or json', parseFormat, 'text')
    .option(
      '--limit <n>',
      'changed actions listed per scenario in text (the summary counts all)',
      parsePositiveInt,
      20,
    )
    .addHelpText(
      'after',
      helpAfter(
        [
          'Both rule sets run from the same start over the same events, on virtual time, with the policy of each:',
          'the timers of each fire as the rules schedule them. An action has the same id in both runs when the same',
          'input completed the same match, so the actions are compared one by one. Each changed action is one of:',
          '  + fires newly        sent by --rules, not decided by --against',
          '  - no longer fires    sent by --against, not decided by --rules',
          '  ~ changed payload    decided by both, the same verdict, another payload',
          '  ! changed suppression  sent by one and suppressed (or not decided) by the other, or another reason',
          'With --journal DATA_DIR: the events the journal retains, from its oldest checkpoint (whose state both',
          'runs continue from, for the scenarios it holds) or from empty state; each judged by its profile at that',
          "moment, as the journal's profile records say, else by the store's (a copy), else by --profiles.",
          'Recorded timer firings, emitted events and rules swaps are not replayed: each run makes its own.',
          'With --events FILE: the profiles of --profiles FILE; rules that read profiles are refused without it,',
          'unless --without-profiles. --format json prints one JSON object: scenarios, changes and errors.',
        ],
        '0 compared, 1 bad events or rules, 2 the backtest failed (no journal, a store that cannot be copied).',
      ),
    )
    .action(async (flags: BacktestFlags) => {
      try {
        process.exitCode = await backtestCommand(flags);
      } catch (err) {
        exitWithError(err);
      }
    });
}

function parseFormat(value: string): 'text' | 'json' {
  if (value !== 'text' && value !== 'json') throw new InvalidArgumentError('expected text or json');
  return value;
}

async function loadRules(dir: string, flag: string): Promise<RuleSet> {
  const loaded = await loadRulesDir(dir);
  if (!loaded.ok) {
    process.stderr.write(`the rules of ${flag} ${dir} do not load:\n`);
    throw new RuleError(loaded.problems);
  }
  return loaded.rules;
}

async function backtestCommand(flags: BacktestFlags): Promise<number> {
  if ((flags.events === undefined) === (flags.journal === undefined))
    exitWithError('give either --events FILE or --journal DATA_DIR');
  if (flags.journal !== undefined && (flags.until !== undefined || flags.withoutProfiles === true))
    exitWithError('--until and --without-profiles go with --events');
  const next = await loadRules(flags.rules, '--rules');
  const old = await loadRules(flags.against, '--against');
  const logger = pino({ level: 'warn' }, pino.destination(2));
  const outcome =
    flags.events !== undefined
      ? await fromEvents(flags.events, next, old, flags, logger)
      : await fromJournal(flags.journal as string, next, old, flags, logger);
  if (outcome === undefined) return 1;
  print(outcome, flags);
  return 0;
}

function runBoth(
  next: RuleSet,
  old: RuleSet,
  profileOf: (actor: string) => Profile | undefined,
  state: CheckpointState | undefined,
  logger: Logger,
): { old: RecordingRun; new: RecordingRun } {
  const engineOpts = { gateway: 'backtest' };
  return {
    old: new RecordingRun(old, engineOpts, profileOf, state, logger),
    new: new RecordingRun(next, engineOpts, profileOf, state, logger),
  };
}

async function fromEvents(
  file: string,
  next: RuleSet,
  old: RuleSet,
  flags: BacktestFlags,
  logger: Logger,
): Promise<Outcome | undefined> {
  const parsed = parseEventsNdjson(await readFile(file, 'utf8'));
  if (!parsed.ok) {
    for (const e of parsed.errors) process.stderr.write(`${file}:${e}\n`);
    return undefined;
  }
  const profiles = flags.profiles !== undefined ? await readProfiles(flags.profiles) : undefined;
  if (profiles === undefined && flags.withoutProfiles !== true) {
    const reading = [...new Set([...profileDependent(next), ...profileDependent(old)])];
    if (reading.length > 0) throw new ProfilesMissingError(reading);
  }
  const runs = runBoth(next, old, (actor) => profiles?.get(actor), undefined, logger);
  const events: Event[] = parsed.events
    .map((ev, i) => ({ ev, i }))
    .sort((a, b) => a.ev.at - b.ev.at || a.i - b.i)
    .map((x) => x.ev);
  for (const ev of events) {
    runs.old.feed(ev);
    runs.new.feed(ev);
  }
  const lastAt = events.at(-1)?.at;
  const until = flags.until ?? (lastAt ?? 0) + horizonOf(next, old);
  runs.old.advanceTo(until);
  runs.new.advanceTo(until);
  const span: Span = {
    source: { events: file },
    events: events.length,
    fromAt: events[0]?.at,
    toAt: lastAt,
    unprofiled: [],
  };
  return outcomeOf(span, runs);
}

async function fromJournal(
  dataDir: string,
  next: RuleSet,
  old: RuleSet,
  flags: BacktestFlags,
  logger: Logger,
): Promise<Outcome> {
  const journalDir = join(dataDir, 'journal');
  if (!(await exists(dataDir))) throw notData(`${dataDir} does not exist`);
  if (!(await exists(journalDir))) throw noJournal(dataDir);
  const given = flags.profiles !== undefined ? await readProfiles(flags.profiles) : undefined;
  // Copied before the journal is read, as `vigil replay --journal` does: every change the copy holds is in the journal.
  const store = await openStoreSnapshot(dataDir);
  try {
    const retained = await retainedEvents({
      dir: journalDir,
      logger,
      store: store?.profiles,
      profiles: given,
    });
    if (retained === undefined) throw noJournal(dataDir);
    const runs = runBoth(next, old, (actor) => retained.profileOf(actor), retained.start.state, logger);
    let events = 0;
    let fromAt: number | undefined;
    let toAt: number | undefined;
    for await (const { event } of retained.events()) {
      runs.old.feed(event);
      runs.new.feed(event);
      events++;
      fromAt ??= event.at;
      toAt = event.at;
    }
    // Up to the journal's last record: the gateway's timers had fired no later than that.
    runs.old.advanceTo(retained.retained.toAt);
    runs.new.advanceTo(retained.retained.toAt);
    const { fromSeq, toSeq } = retained.retained;
    const span: Span = {
      source: { journal: dataDir, fromSeq, toSeq },
      events,
      fromAt,
      toAt,
      unprofiled: retained.unprofiled(),
    };
    return outcomeOf(span, runs);
  } finally {
    await store?.close();
  }
}

function outcomeOf(span: Span, runs: { old: RecordingRun; new: RecordingRun }): Outcome {
  return {
    span,
    diff: compareRuns(runs.old, runs.new),
    errors: { old: runs.old.errors, new: runs.new.errors },
  };
}

function print(outcome: Outcome, flags: BacktestFlags): void {
  const { span, diff, errors } = outcome;
  if (flags.format === 'json') {
    const report = {
      rules: flags.rules,
      against: flags.against,
      source: span.source,
      events: span.events,
      from: span.fromAt === undefined ? null : iso(span.fromAt),
      to: span.toAt === undefined ? null : iso(span.toAt),
      scenarios: diff.scenarios,
      changes: diff.changes,
      errors,
      unprofiled: span.unprofiled,
    };
    process.stdout.write(JSON.stringify(report, null, 2) + '\n');
    return;
  }
  const where =
    'events' in span.source
      ? span.source.events
      : `the journal in ${span.source.journal}, records ${span.source.fromSeq} to ${span.source.toSeq}`;
  const range =
    span.fromAt === undefined || span.toAt === undefined ? '' : `, ${iso(span.fromAt)} to ${iso(span.toAt)}`;
  const lines = [
    `backtest: ${flags.rules} against ${flags.against} over ${span.events} events from ${where}${range}`,
    '',
    ...backtestText(diff, flags.limit),
    ...(errors.old.length + errors.new.length > 0 ? [''] : []),
    ...errorLines(errors.old, 'old '),
    ...errorLines(errors.new, 'new '),
  ];
  if (span.unprofiled.length > 0)
    lines.push(
      `${span.unprofiled.length} devices were judged without a profile (neither the journal nor a store has one; --profiles FILE gives them)`,
    );
  process.stdout.write(lines.join('\n') + '\n');
}
