import { Command } from 'commander';
import { registerSimCommand } from './command.js';

// `npm run sim -- --devices 10` is `vigil sim --devices 10`: the same command, run on its own.
const program = new Command('vigil').showHelpAfterError('(add --help for usage)');
registerSimCommand(program);
await program.parseAsync([...process.argv.slice(0, 2), 'sim', ...process.argv.slice(2)]);
