import { Command } from 'commander';
import { addDemoOptions, demoOptionsFrom, runDemoUntilStopped } from './demo.js';
import { exitWithError } from './util.js';

// `npm run demo -- --devices 500` lands here.
const program = addDemoOptions(new Command('vigil-demo').description('Vigil demo'));
await program.parseAsync(process.argv);
try {
  await runDemoUntilStopped(demoOptionsFrom(program.opts()));
  process.exit(0);
} catch (err) {
  exitWithError(err);
}
