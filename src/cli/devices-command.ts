import { InvalidArgumentError, type Command } from 'commander';
import { parseDurationMs, VigilError } from '../shared/index.js';
import { GatewayClient } from '../api/index.js';
import {
  CredentialStore,
  DeviceCredentialError,
  generateSecret,
  hashSecret,
  type CredentialInfo,
} from '../credentials/index.js';
import { openOrFindGateway, type Access } from './gateway-access.js';
import type { CommandIo } from './profiles-command.js';
import { errorText, helpAfter } from './util.js';

const EXIT_OK = 0;
const EXIT_REFUSED = 1;
const EXIT_FATAL = 2;

type DeviceIo = Pick<CommandIo, 'stdout' | 'stderr'>;

export function registerDevicesCommands(program: Command): Command {
  const io: DeviceIo = { stdout: process.stdout, stderr: process.stderr };
  const devices = program
    .command('devices')
    .description('device credentials: a secret per device, of which the gateway keeps only a hash');
  const data = ['--data <dir>', 'data directory of the gateway', './data'] as const;
  const running =
    'When a gateway is running on the data directory, the command goes through its local HTTP API ' +
    '(found in DIR/gateway.json); a secret never crosses it, only its hash.';
  // add, rotate and remove: a device id, the data directory, and what the command does with them.
  const idCommand = (
    name: string,
    idHelp: string,
    description: string,
    help: string,
    run: (id: string, dataDir: string, flags: { overlap?: number }) => Promise<number>,
  ): Command =>
    devices
      .command(name)
      .argument('<id>', idHelp)
      .option(...data)
      .description(description)
      .addHelpText('after', help)
      .action(async (id: string, flags: { data: string; overlap?: number }) => {
        process.exitCode = await run(id, flags.data, flags);
      });
  idCommand(
    'add',
    'device id: 1-128 letters, digits and _ . : @ -',
    'create a credential; prints the secret once, alone on the last line',
    helpAfter(
      [
        'The device connects with client id = user name = ID and the secret as its password. The secret is',
        'shown this once only: keep it, e.g. `SECRET=$(vigil devices add dev-1 | tail -n 1)`.',
        running,
      ],
      '0 added, 1 refused (the device has a credential, or the id is invalid), 2 failed.',
    ),
    (id, dataDir) => addCommand(id, dataDir, io, 'add'),
  );
  idCommand(
    'rotate',
    'device id',
    'replace the secret of a device; prints the new one once, alone on the last line',
    helpAfter(
      [
        'The old secret stops working for new connections, at once or after --overlap (e.g. 24h, while the',
        'device takes its new secret); a connection made with it stays up until it ends (`vigil devices remove`',
        'ends it at once).',
        running,
      ],
      '0 rotated, 1 refused (no credential for that device), 2 failed.',
    ),
    (id, dataDir, flags) => addCommand(id, dataDir, io, 'rotate', flags.overlap ?? 0),
  ).option(
    '--overlap <duration>',
    'how long the old secret still admits new connections (30s, 10m, 24h)',
    parseOverlap,
  );
  idCommand(
    'remove',
    'device id',
    "delete a device's credential and end its connection",
    helpAfter([running], '0 removed, 1 no such credential, 2 failed.'),
    (id, dataDir) => removeCommand(id, dataDir, io),
  );
  devices
    .command('list')
    .option(...data)
    .option('--json', 'one JSON object per line')
    .description('list the devices that have a credential (never their secrets or hashes)')
    .action(async (flags: { data: string; json?: boolean }) => {
      process.exitCode = await listCommand(flags.data, io, flags.json === true);
    });
  devices
    .command('hash')
    .description('read a secret on stdin and print its hash, for a profile import ("credential" field)')
    .addHelpText(
      'after',
      [
        '',
        'For provisioning from elsewhere: generate a secret, give it to the device, and import',
        '{"id": "dev-1", "credential": "<hash>", ...} with `vigil profiles import`. E.g.',
        '  SECRET=$(openssl rand -base64 32); printf %s "$SECRET" | vigil devices hash',
      ].join('\n'),
    )
    .action(async () => {
      process.exitCode = await hashCommand(process.stdin, io);
    });
  return devices;
}

/** `vigil devices add|rotate ID`; resolves to the exit status. The secret is made here, whichever way it is stored. */
export async function addCommand(
  id: string,
  dataDir: string,
  io: DeviceIo,
  mode: 'add' | 'rotate',
  overlapMs = 0,
): Promise<number> {
  const secret = generateSecret();
  const status = await withAccess(dataDir, io, { readOnly: mode === 'rotate' }, async (access) => {
    if (access.kind === 'local') {
      const store = new CredentialStore(access.store.sublevels.creds);
      await store.setHash(id, hashSecret(secret), mode, 'cli', overlapMs);
    } else {
      await new GatewayClient(access.info).setCredentialHash(id, hashSecret(secret), mode, overlapMs);
    }
  });
  if (status !== EXIT_OK) return status;
  io.stdout.write(
    `device ${id} ${mode === 'add' ? 'added' : 'has a new secret'}. It connects with client id = user name = ${id} ` +
      'and this secret as the password; it is shown this once only (the gateway keeps a hash):\n',
  );
  io.stdout.write(`${secret}\n`);
  return EXIT_OK;
}

/** `vigil devices remove ID`. */
export async function removeCommand(id: string, dataDir: string, io: DeviceIo): Promise<number> {
  let removed = false;
  const status = await withAccess(dataDir, io, { readOnly: true }, async (access) => {
    removed =
      access.kind === 'local'
        ? await new CredentialStore(access.store.sublevels.creds).remove(id)
        : await new GatewayClient(access.info).removeCredential(id);
  });
  if (status !== EXIT_OK) return status;
  if (!removed) {
    io.stderr.write(
      errorText(new DeviceCredentialError('VIGIL_DEVICE_UNKNOWN', `device ${id} has no credential`)),
    );
    return EXIT_REFUSED;
  }
  io.stdout.write(`device ${id} removed; it can no longer connect\n`);
  return EXIT_OK;
}

/** `vigil devices list`. */
export async function listCommand(dataDir: string, io: DeviceIo, json: boolean): Promise<number> {
  let devices: CredentialInfo[] = [];
  const status = await withAccess(dataDir, io, { readOnly: true }, async (access) => {
    devices =
      access.kind === 'local'
        ? await new CredentialStore(access.store.sublevels.creds).list()
        : await new GatewayClient(access.info).devices();
  });
  if (status !== EXIT_OK) return status;
  if (json) {
    for (const d of devices) io.stdout.write(`${JSON.stringify(d)}\n`);
    return EXIT_OK;
  }
  if (devices.length === 0) {
    io.stdout.write('no device has a credential; `vigil devices add ID` creates one\n');
    return EXIT_OK;
  }
  const width = Math.max(2, ...devices.map((d) => d.id.length));
  io.stdout.write(`${'ID'.padEnd(width)}  ${'SECRET SET'.padEnd(24)}  SOURCE\n`);
  for (const d of devices) {
    io.stdout.write(
      `${d.id.padEnd(width)}  ${new Date(d.updatedAt).toISOString().padEnd(24)}  ${d.source}\n`,
    );
  }
  return EXIT_OK;
}

/** `vigil devices hash`: the secret on stdin (one trailing newline ignored), its hash on stdout. */
export async function hashCommand(input: AsyncIterable<unknown>, io: DeviceIo): Promise<number> {
  const chunks: Buffer[] = [];
  for await (const chunk of input) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk)));
  const secret = Buffer.concat(chunks)
    .toString('utf8')
    .replace(/\r?\n$/, '');
  if (secret.length < 16) {
    io.stderr.write(
      errorText(
        new VigilError('VIGIL_DEVICE_SECRET', 'expected a secret of at least 16 characters on stdin'),
      ),
    );
    return EXIT_REFUSED;
  }
  io.stdout.write(`${hashSecret(secret)}\n`);
  return EXIT_OK;
}

/** Runs `work` on the local store or through the running gateway; maps refusals and failures to exit statuses. */
async function withAccess(
  dataDir: string,
  io: DeviceIo,
  opts: { readOnly: boolean },
  work: (access: Access) => Promise<void>,
): Promise<number> {
  try {
    const access = await openOrFindGateway(dataDir, opts);
    if (access.kind === 'gateway') {
      io.stderr.write(
        `${dataDir} is in use by the running gateway (pid ${access.info.pid}): going through ${access.info.http}\n`,
      );
    }
    try {
      await work(access);
    } finally {
      if (access.kind === 'local') await access.store.close();
    }
    return EXIT_OK;
  } catch (err) {
    io.stderr.write(errorText(err));
    return err instanceof DeviceCredentialError ? EXIT_REFUSED : EXIT_FATAL;
  }
}

function parseOverlap(text: string): number {
  const ms = parseDurationMs(text);
  if (ms === undefined || ms < 0)
    throw new InvalidArgumentError('expected a duration such as 30s, 10m or 24h');
  return ms;
}
