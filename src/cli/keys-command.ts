import type { Command } from 'commander';
import { writeKeyPair } from '../sync/index.js';
import { exitWithError } from './util.js';

export function registerKeysCommand(program: Command): void {
  program
    .command('keygen')
    .description('make an Ed25519 key pair to sign rule bundles with')
    .requiredOption('--out <dir>', 'directory for private.pem and public.pem (created if missing)')
    .addHelpText(
      'after',
      [
        '',
        'private.pem signs bundles (`vigil rules bundle --key`): keep it off the gateways. public.pem is what a',
        'gateway trusts (`vigil run --trusted-key`, or sync.trustedKeys in the config file). Existing files are',
        'never replaced.',
      ].join('\n'),
    )
    .action(async (flags: { out: string }) => {
      try {
        const pair = await writeKeyPair(flags.out);
        process.stdout.write(
          `key ${pair.id}\nprivate key ${pair.privatePath}\npublic key  ${pair.publicPath}\n`,
        );
      } catch (err) {
        exitWithError(err);
      }
    });
}
