import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { Presets, SingleBar } from 'cli-progress';
import type { Command } from 'commander';
import { VigilError } from '../shared/index.js';
import { GatewayClient } from '../api/index.js';
import { CredentialStore, credentialImportTarget } from '../credentials/index.js';
import type { ImportSummary } from '../store/index.js';
import { ProfileImportError, importProfiles, storeExists } from '../store/index.js';
import { openOrFindGateway } from './gateway-access.js';
import { errorText, helpAfter, noData } from './util.js';

/** Where the commands write; a test passes its own. */
export interface CommandIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  /** Draw a progress bar (stderr is a terminal) rather than print periodic lines. */
  interactive: boolean;
}

const EXIT_OK = 0;
const EXIT_REJECTED = 1;
const EXIT_FATAL = 2;
const PLAIN_PROGRESS_EVERY_MS = 2_000;
const READ_CHUNK_BYTES = 1024 * 1024;

export function registerProfilesCommands(program: Command): Command {
  const io: CommandIo = { stdout: process.stdout, stderr: process.stderr, interactive: process.stderr.isTTY };
  const profiles = program.command('profiles').description('import and read device profiles');
  profiles
    .command('import')
    .argument('<file>', 'NDJSON file: one JSON object per line, each with a string "id"')
    .option('--data <dir>', 'data directory of the gateway', './data')
    .description('import device profiles; a profile replaces any stored one with the same id')
    .addHelpText(
      'after',
      helpAfter(
        [
          'Each line is a profile, e.g. {"id":"dev-1","maxTemp":50,"site":"north"}. Bad lines are reported as',
          'FILE:LINE: reason and skipped; the good ones are imported. When a gateway is running on the data',
          'directory, the import goes through its local HTTP API (found in DIR/gateway.json).',
        ],
        '0 every line imported, 1 some lines rejected (the others imported), 2 the import failed.',
      ),
    )
    .action(async (file: string, flags: { data: string }) => {
      process.exitCode = await importCommand(file, flags.data, io);
    });
  profiles
    .command('get')
    .argument('<id>', 'device id')
    .option('--data <dir>', 'data directory of the gateway', './data')
    .description('print the profile of one device as JSON')
    .addHelpText(
      'after',
      helpAfter(
        ['When a gateway is running on the data directory, the profile is read through its local HTTP API.'],
        '0 found, 1 no profile with that id, 2 the read failed.',
      ),
    )
    .action(async (id: string, flags: { data: string }) => {
      process.exitCode = await getCommand(id, flags.data, io);
    });
  return profiles;
}

/** `vigil profiles import FILE`; resolves to the exit status. */
async function importCommand(file: string, dataDir: string, io: CommandIo): Promise<number> {
  let totalBytes: number;
  try {
    const info = await stat(file);
    if (!info.isFile()) return fatal(io, new VigilError('VIGIL_PROFILE_IMPORT', `${file} is not a file`));
    totalBytes = info.size;
  } catch (err) {
    return fatal(
      io,
      new VigilError('VIGIL_PROFILE_IMPORT', `cannot read ${file}: ${(err as Error).message}`),
    );
  }
  const access = await openOrFindGateway(dataDir).catch((err: unknown) => ({ kind: 'failed', err }) as const);
  if (access.kind === 'failed') return fatal(io, access.err);
  const input = createReadStream(file, { highWaterMark: READ_CHUNK_BYTES });
  const progress = progressReporter(io, file, totalBytes);
  let summary: ImportSummary;
  try {
    if (access.kind === 'local') {
      try {
        // A `credential` in a line goes to the credentials, never into the profile.
        const target = credentialImportTarget({
          profiles: access.store.profiles,
          credentials: new CredentialStore(access.store.sublevels.creds),
        });
        summary = await importProfiles(target, input, {
          onProgress: (p) => progress.update(p.bytesRead, p.imported),
        });
      } finally {
        await access.store.close();
      }
    } else {
      io.stderr.write(
        `${dataDir} is in use by the running gateway (pid ${access.info.pid}): importing through ${access.info.http}\n`,
      );
      summary = await new GatewayClient(access.info).importProfiles(input, {
        onBytes: (sent) => progress.update(sent),
      });
    }
  } catch (err) {
    progress.stop();
    input.destroy();
    if (err instanceof ProfileImportError) {
      io.stderr.write(`${count(err.partial.imported)} profiles were imported before the failure\n`);
    }
    return fatal(io, err);
  }
  progress.stop();
  for (const e of summary.errors) io.stderr.write(`${file}:${e.line}: ${e.message}\n`);
  const unlisted = summary.rejected - summary.errors.length;
  if (unlisted > 0) io.stderr.write(`${file}: ${count(unlisted)} more rejected lines not listed\n`);
  const seconds = summary.elapsedMs / 1000;
  const rate = seconds >= 1 ? `, ${count(Math.round(summary.imported / seconds))}/s` : '';
  io.stdout.write(
    `imported ${count(summary.imported)} profiles from ${file} in ${seconds.toFixed(1)} s${rate}\n`,
  );
  if (summary.rejected > 0) {
    io.stdout.write(
      `rejected ${count(summary.rejected)} line${summary.rejected === 1 ? '' : 's'}: fix them and import again\n`,
    );
    return EXIT_REJECTED;
  }
  return EXIT_OK;
}

/** `vigil profiles get ID`; resolves to the exit status. */
async function getCommand(id: string, dataDir: string, io: CommandIo): Promise<number> {
  if (!(await storeExists(dataDir))) {
    return fatal(io, noData(dataDir));
  }
  try {
    const access = await openOrFindGateway(dataDir, { readOnly: true });
    let profile;
    if (access.kind === 'local') {
      try {
        profile = await access.store.profiles.get(id);
      } finally {
        await access.store.close();
      }
    } else {
      profile = await new GatewayClient(access.info).profile(id);
    }
    if (profile === undefined) {
      io.stderr.write(`no profile with id ${JSON.stringify(id)} in ${dataDir}\n`);
      return EXIT_REJECTED;
    }
    io.stdout.write(`${JSON.stringify(profile, null, 2)}\n`);
    return EXIT_OK;
  } catch (err) {
    return fatal(io, err);
  }
}

interface ProgressReporter {
  update(bytes: number, imported?: number): void;
  stop(): void;
}

function progressReporter(io: CommandIo, file: string, totalBytes: number): ProgressReporter {
  if (io.interactive) {
    const bar = new SingleBar(
      {
        stream: io.stderr,
        format:
          'importing {bar} {percentage}% | {done} of {total_mb} MB | {imported} profiles | ETA {eta_formatted}',
        hideCursor: true,
      },
      Presets.shades_classic,
    );
    bar.start(Math.max(totalBytes, 1), 0, { done: mb(0), total_mb: mb(totalBytes), imported: '-' });
    return {
      update: (bytes, imported) =>
        bar.update(bytes, { done: mb(bytes), imported: imported === undefined ? '-' : count(imported) }),
      stop: () => bar.stop(),
    };
  }
  let lastAt = Date.now();
  return {
    update(bytes) {
      const now = Date.now();
      if (now - lastAt < PLAIN_PROGRESS_EVERY_MS) return;
      lastAt = now;
      const percent = totalBytes > 0 ? Math.floor((bytes / totalBytes) * 100) : 100;
      io.stderr.write(`importing ${file}: ${percent}% (${mb(bytes)} of ${mb(totalBytes)} MB)\n`);
    },
    stop() {},
  };
}

function fatal(io: CommandIo, err: unknown): number {
  io.stderr.write(errorText(err));
  return EXIT_FATAL;
}

function count(n: number): string {
  return n.toLocaleString('en-US');
}

function mb(bytes: number): string {
  return (bytes / (1024 * 1024)).toFixed(1);
}
