import type { Command } from 'commander';
import { checkRulesDir } from '../rules/index.js';
import { registerBundleCommands } from './bundle-command.js';
import { exitWithError } from './util.js';

export function registerRulesCommands(program: Command): Command {
  const rules = program.command('rules').description('check and package rule files');
  rules
    .command('check')
    .argument('<dir>', 'rules directory (scenarios, templates/, policy.yaml)')
    .description('validate every rule file; prints file:line: message for each problem')
    .action(async (dir: string) => {
      try {
        const problems = await checkRulesDir(dir);
        if (problems.length === 0) {
          process.stdout.write(`${dir}: rules OK\n`);
          return;
        }
        for (const line of problems) process.stderr.write(`${line}\n`);
        process.stderr.write(`${problems.length} problem${problems.length === 1 ? '' : 's'} found\n`);
        process.exitCode = 1;
      } catch (err) {
        exitWithError(err);
      }
    });
  registerBundleCommands(rules);
  return rules;
}
