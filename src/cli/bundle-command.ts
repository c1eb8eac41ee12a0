import { readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Command } from 'commander';
import { loadConfig } from '../config/index.js';
import { compileRuleFiles } from '../rules/index.js';
import {
  ConfigError,
  formatProblem,
  StoreLockedError,
  VigilError,
  type RuleProblem,
} from '../shared/index.js';
import { GatewayClient, isProcessAlive, readGatewayInfo, type UnchangedAnswer } from '../api/index.js';
import { openStore } from '../store/index.js';
import {
  applyToStore,
  BundleStore,
  createBundle,
  KeyRing,
  openBundle,
  readBundleFiles,
  readSigningKey,
  readTrustedKeys,
  type RulesStatus,
} from '../sync/index.js';
import { pickVersion, recordVersion, VERSION_FILE, type PickedVersion } from './bundle-version.js';
import { errorText, parsePositiveInt } from './util.js';

/** Where the commands write; a test passes its own. */
export interface BundleIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
}

const EXIT_OK = 0;
const EXIT_REFUSED = 1;
const EXIT_FATAL = 2;

/** `rules bundle`, `rules verify` and `rules apply`, under the `rules` command. */
export function registerBundleCommands(rules: Command): void {
  const io: BundleIo = { stdout: process.stdout, stderr: process.stderr };
  rules
    .command('bundle')
    .argument('<dir>', 'rules directory (scenarios, templates/, policy.yaml)')
    .requiredOption('--key <file>', 'Ed25519 private key (PEM) from `vigil keygen`')
    .option(
      '--version <n>',
      `bundle version, greater than the one the gateways run; default: one above the last (${VERSION_FILE} beside the key)`,
      parsePositiveInt,
    )
    .requiredOption('--out <file>', 'where to write the signed bundle')
    .description('pack a rules directory into one signed bundle, once its rules compile')
    .addHelpText(
      'after',
      '\nExit status: 0 written, 1 the rules have problems (listed as file:line: message), 2 failure.',
    )
    .action(async (dir: string, flags: { key: string; version?: number; out: string }) => {
      process.exitCode = await bundleCommand(dir, flags, io);
    });
  rules
    .command('verify')
    .argument('<file>', 'a signed rules bundle')
    .requiredOption('--pub <file>', 'trusted Ed25519 public key (PEM); repeat for several', collect, [])
    .description('check the signature of a bundle and compile its rules, as a gateway would')
    .addHelpText('after', '\nExit status: 0 valid, 1 refused (the reason is printed), 2 failure.')
    .action(async (file: string, flags: { pub: string[] }) => {
      process.exitCode = await verifyCommand(file, flags.pub, io);
    });
  rules
    .command('apply')
    .argument('<file>', 'a signed rules bundle')
    .option('--data <dir>', 'data directory of the gateway (default ./data, or the config file’s)')
    .option('-c, --config <file>', 'the gateway’s config file: its data directory and trusted keys')
    .option('--trusted-key <file>', 'trusted public key (PEM); repeat for several', collect, [])
    .description('apply a bundle to a gateway under the same checks as one from the cloud')
    .addHelpText(
      'after',
      [
        '',
        'When a gateway is running on the data directory, the bundle goes through its local HTTP API and is',
        'checked against that gateway’s trusted keys; it is swapped in between two events. Otherwise it is',
        'checked against --trusted-key (or the config file’s sync.trustedKeys) and stored for the next start.',
        '',
        'Exit status: 0 applied or already running, 1 rejected (the reason is printed), 2 failure.',
      ].join('\n'),
    )
    .action(async (file: string, flags: { data?: string; config?: string; trustedKey: string[] }) => {
      process.exitCode = await applyCommand(file, flags, io);
    });
}

/** `vigil rules bundle DIR`; resolves to the exit status. */
async function bundleCommand(
  dir: string,
  flags: { key: string; version?: number | undefined; out: string },
  io: BundleIo,
): Promise<number> {
  try {
    if (flags.version !== undefined && flags.version < 1) {
      return fatal(io, new ConfigError('--version must be 1 or more'));
    }
    const signer = await readSigningKey(flags.key);
    const files = await readBundleFiles(dir).catch((err: unknown) => {
      throw new VigilError(
        'VIGIL_BUNDLE_INPUT',
        `cannot read the rules directory ${dir}: ${(err as Error).message}`,
      );
    });
    if (files.length === 0) {
      return fatal(io, new VigilError('VIGIL_BUNDLE_INPUT', `${dir} holds no rule files (*.yaml)`));
    }
    const compiled = compileRuleFiles(files);
    if (!compiled.ok) {
      printProblems(io, compiled.problems, (file) => join(dir, file));
      io.stderr.write(`no bundle written: fix the rules first\n`);
      return EXIT_REFUSED;
    }
    const picked: PickedVersion =
      flags.version !== undefined
        ? { version: flags.version }
        : await pickVersion(flags.key, flags.out, signer);
    const { version } = picked;
    const bundle = createBundle({ version, createdAt: new Date().toISOString(), files }, signer);
    // Written aside, then renamed: a bundle that is there is whole.
    const tmp = `${flags.out}.${process.pid}.tmp`;
    await writeFile(tmp, bundle);
    await rename(tmp, flags.out);
    io.stdout.write(
      `${flags.out}: bundle version ${version}, ${files.length} files, ` +
        `${compiled.rules.scenarios.length} scenarios${compiled.rules.policy ? ' and a policy' : ''}, ` +
        `${bundle.length} bytes, signed by key ${signer.id}\n`,
    );
    if (picked.reason !== undefined) io.stdout.write(`version ${version}: ${picked.reason}\n`);
    await recordVersion(flags.key, version).catch((err: unknown) => {
      io.stderr.write(
        `warning: version ${version} was not recorded beside the key: ${(err as Error).message}\n`,
      );
    });
    return EXIT_OK;
  } catch (err) {
    return fatal(io, err);
  }
}

/** `vigil rules verify FILE`; resolves to the exit status. */
async function verifyCommand(file: string, pubs: readonly string[], io: BundleIo): Promise<number> {
  try {
    const keys = await readTrustedKeys(pubs);
    const bytes = await readBundle(file);
    const opened = openBundle(bytes, keys);
    if (!opened.ok) {
      io.stderr.write(`${file}: refused (${opened.reason}): ${opened.detail}\n`);
      return EXIT_REFUSED;
    }
    const { content } = opened;
    const compiled = compileRuleFiles(content.files);
    if (!compiled.ok) {
      printProblems(io, compiled.problems, (f) => `${file}:${f}`);
      io.stderr.write(`${file}: signature good (key ${opened.keyId}), but the rules have problems\n`);
      return EXIT_REFUSED;
    }
    io.stdout.write(
      `${file}: valid bundle version ${content.version} of ${content.createdAt}, signed by key ${opened.keyId}\n` +
        `${content.files.length} files: ${content.files.map((f) => f.path).join(', ')}\n` +
        `${compiled.rules.scenarios.length} scenarios: ${compiled.rules.scenarios.map((s) => s.id).join(', ')}\n` +
        `sha256 ${opened.hash}\n`,
    );
    return EXIT_OK;
  } catch (err) {
    return fatal(io, err);
  }
}

/** `vigil rules apply FILE`; resolves to the exit status. */
async function applyCommand(
  file: string,
  flags: { data?: string | undefined; config?: string | undefined; trustedKey: readonly string[] },
  io: BundleIo,
): Promise<number> {
  try {
    const config = await loadConfig({
      file: flags.config,
      env: process.env,
      overrides: { data: flags.data },
    });
    const dataDir = config.data;
    const bytes = await readBundle(file);
    let store;
    try {
      store = await openStore(dataDir);
    } catch (err) {
      if (!(err instanceof StoreLockedError)) throw err;
    }
    if (store === undefined) {
      const info = await readGatewayInfo(dataDir);
      if (info === undefined || !isProcessAlive(info.pid)) {
        return fatal(
          io,
          new VigilError(
            'VIGIL_STORE_LOCKED',
            `${dataDir} is in use by another process, and it is not a running gateway to go through`,
          ),
        );
      }
      if (flags.trustedKey.length > 0) {
        io.stderr.write(
          `the running gateway (pid ${info.pid}) checks the bundle with its own trusted keys\n`,
        );
      }
      return report(io, file, await new GatewayClient(info).applyBundle(bytes));
    }
    try {
      const paths = flags.trustedKey.length > 0 ? flags.trustedKey : config.sync.trustedKeys;
      if (paths.length === 0) {
        return fatal(
          io,
          new VigilError(
            'VIGIL_KEY_FILE',
            'no trusted key to check the bundle with: pass --trusted-key PUBLIC.pem or --config FILE',
          ),
        );
      }
      // A signed key list applied on this data directory replaces the configured keys, as on the gateway.
      const ring = await KeyRing.open(store.sublevels.state, await readTrustedKeys(paths), {
        info: () => undefined,
        warn: () => undefined,
      });
      const outcome = await applyToStore({
        gateway: config.gatewayId,
        bundles: new BundleStore(store.sublevels.rules),
        bundle: bytes,
        trustedKeys: ring.keys,
        now: Date.now(),
      });
      return report(io, file, outcome);
    } finally {
      await store.close();
    }
  } catch (err) {
    return fatal(io, err);
  }
}

function report(io: BundleIo, file: string, outcome: RulesStatus | UnchangedAnswer | undefined): number {
  if (outcome === undefined || outcome.status === 'unchanged') {
    io.stdout.write(`${file}: this bundle is already the one in force; nothing changed\n`);
    return EXIT_OK;
  }
  if (outcome.status === 'applied') {
    const s = outcome.scenarios;
    const changes = s
      ? ` (scenarios kept ${s.kept.length}, changed ${s.changed.length}, added ${s.added.length}, removed ${s.removed.length})`
      : '';
    io.stdout.write(
      `${file}: applied bundle version ${String(outcome.version)}${changes}: ${outcome.detail}\n`,
    );
    return EXIT_OK;
  }
  if (outcome.problems) printProblems(io, outcome.problems, (f) => `${file}:${f}`);
  io.stderr.write(
    `${file}: rejected (${outcome.reason ?? 'unknown'}): ${outcome.detail}; version ${outcome.running} stays in force\n`,
  );
  return EXIT_REFUSED;
}

function printProblems(
  io: BundleIo,
  problems: readonly RuleProblem[],
  where: (file: string) => string,
): void {
  for (const p of problems) io.stderr.write(`${formatProblem({ ...p, file: where(p.file) })}\n`);
  io.stderr.write(`${problems.length} problem${problems.length === 1 ? '' : 's'} found\n`);
}

async function readBundle(file: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (err) {
    throw new VigilError('VIGIL_BUNDLE_INPUT', `cannot read ${file}: ${(err as Error).message}`);
  }
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

function fatal(io: BundleIo, err: unknown): number {
  io.stderr.write(errorText(err));
  return EXIT_FATAL;
}
