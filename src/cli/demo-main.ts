import { Command } from 'commander';
import { addDemoOptions, demoOptionsFrom, runDemo } from './demo.js';
import { exitWithError } from './util.js';

// `npm run demo -- --devices 500` lands here.
const program = addDemoOptions(new Command('vigil-demo').description('Vigil demo'));
await program.parseAsync(process.argv);
try {
  await runDemo(demoOptionsFrom(program.opts()));
  process.exit(0);
} catch (err) {
  exitWithError(err);
}
