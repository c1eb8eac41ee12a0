import { Command } from 'commander';
import { registerSimCommand } from '../../firmware-sim/index.js';
import { registerDemoCommand } from './demo.js';
import { registerProfilesCommands } from './profiles-command.js';
import { registerReplayCommand } from './replay-command.js';
import { registerRulesCommands } from './rules-command.js';
import { registerRunCommand } from './run-command.js';
import { packageVersion } from './version.js';

const program = new Command('vigil')
  .description(
    'Vigil: an edge event gateway. Devices publish over MQTT, scenarios decide, actions reach devices and the cloud.',
  )
  .version(`vigil ${packageVersion()} (node ${process.version})`, '-V, --version')
  .showHelpAfterError('(add --help for usage)');

registerRunCommand(program);
registerRulesCommands(program);
registerReplayCommand(program);
registerProfilesCommands(program);
registerSimCommand(program);
registerDemoCommand(program);

await program.parseAsync(process.argv);
