// The `vigil profiles` commands on their own, so that a test can run them as a separate process.
import { Command } from 'commander';
import { registerProfilesCommands } from '../../src/cli/profiles-command.js';

const program = new Command('vigil');
registerProfilesCommands(program);
await program.parseAsync(process.argv);
