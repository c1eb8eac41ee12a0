import { InvalidArgumentError, type Command } from 'commander';
import { GatewayClient } from '../api/index.js';
import type { AuditEntry, AuditQuery } from '../store/index.js';
import { AuditLog, DEFAULT_AUDIT_LIMIT, MAX_AUDIT_LIMIT, storeExists } from '../store/index.js';
import { openOrFindGateway } from './gateway-access.js';
import { errorText, helpAfter, noData } from './util.js';

/** Where the command writes; a test passes its own. */
export interface ActionsIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
}

export interface ActionsLogFlags {
  data: string;
  actor?: string | undefined;
  suppressed?: boolean | undefined;
  limit: number;
  json?: boolean | undefined;
}

const EXIT_OK = 0;
const EXIT_FATAL = 2;

export function registerActionsCommands(program: Command): Command {
  const io: ActionsIo = { stdout: process.stdout, stderr: process.stderr };
  const actions = program.command('actions').description('what arbitration decided about actions');
  actions
    .command('log')
    .description('print the audit log of decisions: actions sent, and actions suppressed with the reason')
    .option('--actor <id>', 'only the actions of this device')
    .option('--suppressed', 'only actions that were not sent')
    .option(
      '--limit <n>',
      `at most this many, newest first (1 to ${MAX_AUDIT_LIMIT})`,
      parseLimit,
      DEFAULT_AUDIT_LIMIT,
    )
    .option('--json', 'one JSON object per line')
    .option('--data <dir>', 'data directory of the gateway', './data')
    .addHelpText(
      'after',
      helpAfter(
        [
          'Each line: the time, "sent" or "suppressed REASON", the scenario, then actor, group, category,',
          'priority and action id. Reasons: cooldown, exclusive:CATEGORY, contact, ttl (waited in the',
          'outbox past its ttl). The log keeps the newest 100,000 suppressions and 100,000 sent actions.',
          'When a gateway is running on the data directory, the log is read through its local HTTP API.',
        ],
        '0 printed (perhaps nothing), 2 the log could not be read.',
      ),
    )
    .action(async (flags: ActionsLogFlags) => {
      process.exitCode = await actionsLogCommand(flags, io);
    });
  return actions;
}

/** `vigil actions log`; resolves to the exit status. */
async function actionsLogCommand(flags: ActionsLogFlags, io: ActionsIo): Promise<number> {
  const query: AuditQuery = { limit: flags.limit };
  if (flags.actor !== undefined) query.actor = flags.actor;
  if (flags.suppressed === true) query.suppressed = true;
  let entries: AuditEntry[];
  try {
    if (!(await storeExists(flags.data))) {
      return fatal(io, noData(flags.data));
    }
    entries = await readLog(flags.data, query);
  } catch (err) {
    return fatal(io, err);
  }
  for (const entry of entries)
    io.stdout.write(`${flags.json === true ? JSON.stringify(entry) : formatEntry(entry)}\n`);
  if (entries.length === 0) {
    const what = flags.suppressed === true ? 'suppressed actions' : 'decisions';
    const whose = flags.actor === undefined ? '' : ` for ${JSON.stringify(flags.actor)}`;
    io.stderr.write(`no ${what}${whose} in the audit log of ${flags.data}\n`);
  }
  return EXIT_OK;
}

/** One entry as a line: `TIME  sent|suppressed REASON  SCENARIO  actor=… [group=…] category=… priority=… id=…`. */
function formatEntry(entry: AuditEntry): string {
  const outcome = entry.reason === undefined ? 'sent' : `suppressed ${entry.reason}`;
  const group = entry.group === undefined ? '' : ` group=${entry.group}`;
  return (
    `${new Date(entry.at).toISOString()}  ${outcome}  ${entry.scenario}  actor=${entry.actor}${group} ` +
    `category=${entry.category} priority=${entry.priority} id=${entry.id}`
  );
}

async function readLog(dataDir: string, query: AuditQuery): Promise<AuditEntry[]> {
  const access = await openOrFindGateway(dataDir, { readOnly: true });
  if (access.kind === 'gateway') return new GatewayClient(access.info).auditLog(query);
  try {
    const log = await AuditLog.open(access.store.sublevels.audit);
    return await log.list(query);
  } finally {
    await access.store.close();
  }
}

function parseLimit(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < 1 || n > MAX_AUDIT_LIMIT)
    throw new InvalidArgumentError(`expected a whole number from 1 to ${MAX_AUDIT_LIMIT}`);
  return n;
}

function fatal(io: ActionsIo, err: unknown): number {
  io.stderr.write(errorText(err));
  return EXIT_FATAL;
}
