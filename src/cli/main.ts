import { Command } from 'commander';
import { registerSimCommand } from '../../firmware-sim/index.js';
import { registerActionsCommands } from './actions-command.js';
import { registerDemoCommand } from './demo.js';
import { registerDevicesCommands } from './devices-command.js';
import { registerKeysCommand } from './keys-command.js';
import { registerProfilesCommands } from './profiles-command.js';
import { registerReplayCommand } from './replay-command.js';
import { registerRulesCommands } from './rules-command.js';
import { registerRunCommand } from './run-command.js';
import { exitWithError } from './util.js';
import { versionReport } from './version.js';

const program = new Command('vigil')
  .description(
    'Vigil: an edge event gateway. Devices publish over MQTT, scenarios decide, actions reach devices and the cloud.',
  )
  // Computed only when asked: it may run git, and reports which native addons loaded.
  .option('-V, --version', 'print the version, commit, Node version and the native addons in use')
  .on('option:version', () => {
    process.stdout.write(`${versionReport()}\n`);
    process.exit(0);
  })
  .showHelpAfterError('(add --help for usage)')
  // Program options only before a command: `rules bundle --version N` is the bundle's version.
  .enablePositionalOptions();

registerRunCommand(program);
registerRulesCommands(program);
registerKeysCommand(program);
registerReplayCommand(program);
registerProfilesCommands(program);
registerDevicesCommands(program);
registerActionsCommands(program);
registerSimCommand(program);
registerDemoCommand(program);

// Not a top-level await: the single executable runs the bundle as CommonJS.
program.parseAsync(process.argv).catch((err: unknown) => exitWithError(err, 1));
