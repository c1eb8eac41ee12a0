import { readFile, writeFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { createKeyList, readSigningKey, readTrustedKey, writeKeyPair } from '../sync/index.js';
import { exitWithError } from './util.js';

const collect = (value: string, previous: string[]): string[] => [...previous, value];

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
  program
    .command('keys')
    .description('signed trusted-key lists for gateways (docs/sync.md, "Rotating signing keys")')
    .command('rotate')
    .description('sign a new trusted-key list with a key the gateways trust now')
    .requiredOption('--key <file>', 'Ed25519 private key (PEM) the gateways trust now')
    .requiredOption('--seq <n>', 'sequence of the list: greater than that of the list in force (0 at first)')
    .requiredOption(
      '--trust <file>',
      'public key (PEM) to trust, repeated: the whole trusted set',
      collect,
      [],
    )
    .option('--revoke <id>', 'id of a key never to trust again, repeated', collect, [])
    .requiredOption(
      '--out <file>',
      'where to write the signed list (publish it, retained, on vigil/{gw}/keys)',
    )
    .action(async (flags: { key: string; seq: string; trust: string[]; revoke: string[]; out: string }) => {
      try {
        const signer = await readSigningKey(flags.key);
        const keys = await Promise.all(flags.trust.map((path) => readFile(path, 'utf8')));
        const ids = await Promise.all(flags.trust.map(async (path) => (await readTrustedKey(path)).id));
        const list = createKeyList(
          { seq: Number(flags.seq), createdAt: new Date().toISOString(), keys, revoked: flags.revoke },
          signer,
        );
        await writeFile(flags.out, list, { flag: 'wx' });
        process.stdout.write(
          `${flags.out}: key list ${flags.seq}, trusting ${ids.join(', ')}${flags.revoke.length > 0 ? `, revoking ${flags.revoke.join(', ')}` : ''}, signed by key ${signer.id}\n`,
        );
      } catch (err) {
        exitWithError(err);
      }
    });
}
